"""``ftcli predict``: label and probabilities for one text, or for every row of a CSV/TSV/JSON(L) file."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config import FtcliError

FORMATS = (".csv", ".tsv", ".json", ".jsonl")


def read_rows(path: Path, quoting: str) -> list[dict[str, Any]]:
    """The rows of a CSV/TSV (header line first) or JSON Lines / JSON array file, as dicts."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FtcliError(f"input={path}: no such file")
    if suffix not in FORMATS:
        raise FtcliError(f"input={path}: unknown format; use one of {', '.join(FORMATS)}")
    text = path.read_text(encoding="utf-8")
    if suffix in (".json", ".jsonl"):
        try:
            if text.lstrip().startswith("["):
                return list(json.loads(text))
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise FtcliError(f"input={path}: not JSON Lines nor a JSON array ({e})") from e
    return list(csv.DictReader(io.StringIO(text, newline=""), **_dialect(suffix, quoting)))


def _dialect(suffix: str, quoting: str, writing: bool = False) -> dict[str, Any]:
    """csv options: tab for .tsv; quoting=none for GLUE-style files with bare quotes inside the text."""
    opts: dict[str, Any] = {"delimiter": "\t" if suffix == ".tsv" else ","}
    opts["quoting"] = csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL
    if writing and quoting == "none":  # a delimiter inside a field cannot be quoted: escape it
        opts["escapechar"] = "\\"
    return opts


def write_rows(path: Path, rows: list[dict[str, Any]], probs: np.ndarray, names: list[str], quoting: str) -> None:
    """The input rows plus ``label`` (``predicted_label`` if the rows have a label already) and the
    probabilities: ``prob_<name>`` columns (CSV/TSV) or a ``probabilities`` dict (JSON/JSONL)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise FtcliError(f"output={path}: unknown format; use one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [names[i] for i in probs.argmax(-1)]
    key = "predicted_label" if rows and "label" in rows[0] else "label"  # keep a gold "label" column intact
    if suffix in (".json", ".jsonl"):
        out = [
            {**r, key: lab, "probabilities": dict(zip(names, map(float, p), strict=True))}
            for r, lab, p in zip(rows, labels, probs, strict=True)
        ]
        text = (
            json.dumps(out, ensure_ascii=False, indent=1)
            if suffix == ".json"
            else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out)
        )
        path.write_text(text, encoding="utf-8")
        return
    columns = list(rows[0]) if rows else []
    header = [*columns, key, *[f"prob_{n}" for n in names]]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, **_dialect(suffix, quoting, writing=True))
        w.writerow(header)
        for r, lab, p in zip(rows, labels, probs, strict=True):
            w.writerow([r.get(c, "") for c in columns] + [lab] + [f"{x:.6f}" for x in p])


def predict_proba(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    pairs: list[str] | None,
    max_length: int,
    batch_size: int,
    accelerator: Any,
) -> np.ndarray:
    """Class probabilities [N, K] in input order; batches are length-sorted (little padding)."""
    import torch

    from ftcli.calibration import softmax
    from ftcli.data import text_batches

    probs = np.empty((len(texts), model.config.num_labels))
    model.eval()
    with torch.inference_mode(), accelerator.autocast():
        for idx, batch in text_batches(tokenizer, texts, pairs, max_length, batch_size):
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            probs[idx] = softmax(model(**batch).logits.float().cpu().numpy())  # off the device per batch
    return probs


def run_predict(cfg: Any) -> dict[str, Any]:
    """``ftcli predict``: one ``text=`` printed, or ``input=`` rows written to ``output=``."""
    from ftcli.checkpoint import load_checkpoint
    from ftcli.config import validate
    from ftcli.evaluate import resolve_checkpoint
    from ftcli.progress import console
    from ftcli.train import inference_batch_size, make_accelerator

    validate(cfg)
    if (cfg.text is None) == (cfg.input is None):
        raise FtcliError('predict needs exactly one of text="..." or input=<file> (with output=<file>)')
    ckpt = resolve_checkpoint(cfg.checkpoint)
    model, tokenizer, run_cfg = load_checkpoint(ckpt)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    max_length = run_cfg.model.max_length if run_cfg is not None else 512
    accelerator = make_accelerator(cfg.hardware, grad_accum=1)
    model.to(accelerator.device)

    if cfg.text is not None:
        pairs = [cfg.text_pair] if cfg.text_pair is not None else None
        p = predict_proba(model, tokenizer, [cfg.text], pairs, max_length, 1, accelerator)[0]
        console.print(f"[bold]{names[int(p.argmax())]}[/]")
        for n, x in zip(names, p, strict=True):
            console.print(f"  {n:<12} {x:.4f}")
        return {
            "label": names[int(p.argmax())],
            "probabilities": dict(zip(names, map(float, p), strict=True)),
        }

    ds = run_cfg.dataset if run_cfg is not None else None
    text_col = cfg.text_column or (ds.text_column if ds is not None else "text")
    pair_col = cfg.text_pair_column or (ds.text_pair_column if ds is not None else None)
    src = Path(cfg.input).expanduser()
    # GLUE-style TSVs need quoting=none; take the training data's setting only for a file of its kind
    same_kind = ds is not None and (
        src.suffix.lower() == Path(ds.get("validation_file") or ds.get("train_file") or "").suffix.lower()
    )
    quoting = cfg.quoting or (ds.quoting if ds is not None and same_kind else "minimal")
    rows = read_rows(src, quoting)
    if not rows:
        raise FtcliError(f"input={cfg.input}: no rows")
    for key, col in (("text_column", text_col), ("text_pair_column", pair_col)):
        if col is not None and col not in rows[0]:
            raise FtcliError(f"{key}={col}: no such column in {cfg.input}; it has {', '.join(rows[0])}")
    texts = [str(r[text_col] or "") for r in rows]
    pairs = [str(r[pair_col] or "") for r in rows] if pair_col else None
    start = time.perf_counter()
    batch_size = inference_batch_size(cfg.batch_size, accelerator.device)
    probs = predict_proba(model, tokenizer, texts, pairs, max_length, batch_size, accelerator)
    rate = len(rows) / max(time.perf_counter() - start, 1e-9)
    dest = Path(cfg.output).expanduser() if cfg.output else Path(cfg.output_dir) / f"predictions{src.suffix}"
    write_rows(dest, rows, probs, names, quoting)
    result: dict[str, Any] = {"rows": len(rows), "output": str(dest), "samples_per_s": rate}
    label_col = ds.label_column if ds is not None else "label"
    gold = [_label_id(r.get(label_col), names) for r in rows]
    if all(g is not None for g in gold):  # the file has labels: say how well the predictions match them
        result["accuracy"] = float((probs.argmax(-1) == np.asarray(gold)).mean())
    acc = f" · accuracy against its '{label_col}' column {result['accuracy']:.4f}" if "accuracy" in result else ""
    console.print(f"{len(rows)} rows ({rate:.0f}/s) → {dest}{acc}")
    return result


def _label_id(value: Any, names: list[str]) -> int | None:
    """A gold label as a class id: a label name, or an integer id (possibly as text)."""
    if value is None:
        return None
    s = str(value).strip()
    if s in names:
        return names.index(s)
    return int(s) if s.lstrip("-").isdigit() and 0 <= int(s) < len(names) else None
