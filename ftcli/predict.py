"""``ftcli predict``: the task's prediction for one input, or for every row of a CSV/TSV/JSON(L) file
(images: also every image in a folder, or in a .txt list of paths)."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError

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


def flatten(pred: dict[str, Any]) -> dict[str, Any]:
    """A prediction as flat columns for CSV/TSV: a dict value (the probabilities) becomes one column each."""
    flat: dict[str, Any] = {}
    for key, value in pred.items():
        if isinstance(value, dict):
            prefix = "prob" if key == "probabilities" else key
            flat.update({f"{prefix}_{k}": f"{v:.6f}" for k, v in value.items()})
        elif isinstance(value, list):  # several labels, entity spans: one JSON cell
            flat[key] = json.dumps(value, ensure_ascii=False)
        else:
            flat[key] = f"{value:.6f}" if isinstance(value, float) else value
    return flat


def write_rows(path: Path, rows: list[dict[str, Any]], preds: list[dict[str, Any]], quoting: str) -> None:
    """The input rows plus each prediction's fields (``predicted_<field>`` where the rows have that column
    already, e.g. a gold ``label``); dict fields flattened to columns in CSV/TSV, kept whole in JSON(L)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise FtcliError(f"output={path}: unknown format; use one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    taken = set(rows[0]) if rows else set()
    preds = [
        {(f"predicted_{k}" if k in taken and not isinstance(v, dict) else k): v for k, v in p.items()} for p in preds
    ]
    if suffix in (".json", ".jsonl"):
        out = [{**r, **p} for r, p in zip(rows, preds, strict=True)]
        text = (
            json.dumps(out, ensure_ascii=False, indent=1)
            if suffix == ".json"
            else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out)
        )
        path.write_text(text, encoding="utf-8")
        return
    flat = [flatten(p) for p in preds]
    columns = list(rows[0]) if rows else []
    header = [*columns, *(flat[0] if flat else {})]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, **_dialect(suffix, quoting, writing=True))
        w.writerow(header)
        for r, p in zip(rows, flat, strict=True):
            w.writerow([r.get(c, "") for c in columns] + list(p.values()))


def run_predict(cfg: Any) -> dict[str, Any]:
    """``ftcli predict``: one input printed (``text=``, ``image=``), or ``input=`` rows written to ``output=``."""
    from omegaconf import OmegaConf

    from ftcli.config.validate import validate
    from ftcli.reporting.progress import console
    from ftcli.runtime.accelerator import inference_batch_size, make_accelerator
    from ftcli.tasks.base import Loaded
    from ftcli.training.checkpoint import load_checkpoint, resolve_checkpoint, task_of

    validate(cfg)
    if sum(cfg.get(k) is not None for k in ("text", "image", "input")) != 1:
        raise FtcliError('predict needs exactly one of text="...", image=<file> or input=<file> (with output=<file>)')
    ckpt = resolve_checkpoint(cfg.checkpoint)
    model, processor, run_cfg = load_checkpoint(ckpt)
    task = task_of(run_cfg, ckpt)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    model_cfg = run_cfg.model if run_cfg is not None else OmegaConf.create({"max_length": 512})
    accelerator = make_accelerator(cfg.hardware)
    model.to(accelerator.device)
    loaded = Loaded(model, processor, model_cfg, accelerator)
    dataset = run_cfg.dataset if run_cfg is not None else None
    if cfg.input is None:
        row, columns = task.single_input(cfg)
        outputs = task.predict_outputs(loaded, [row], columns, 1)
        pred = task.predictions(outputs, names)[0]
        show(pred)
        return pred
    src = Path(cfg.input).expanduser()
    quoting = input_quoting(cfg, dataset, src)
    rows = task.input_rows(src)  # images: a folder or a list of paths
    rows = read_rows(src, quoting) if rows is None else rows
    if not rows:
        raise FtcliError(f"input={cfg.input}: no rows")
    columns = task.input_columns_of(cfg, dataset, rows, str(cfg.input))
    start = time.perf_counter()
    batch_size = inference_batch_size(cfg.batch_size, accelerator.device)
    outputs = task.predict_outputs(loaded, rows, columns, batch_size)
    rate = len(rows) / max(time.perf_counter() - start, 1e-9)
    suffix = src.suffix if src.suffix.lower() in FORMATS else ".csv"  # a folder or a .txt list: CSV
    dest = Path(cfg.output).expanduser() if cfg.output else Path(cfg.output_dir) / f"predictions{suffix}"
    write_rows(dest, rows, task.predictions(outputs, names), quoting)
    result: dict[str, Any] = {"rows": len(rows), "output": str(dest), "samples_per_s": rate}
    result.update(agreement(task, outputs, rows, dataset, names))
    metric = task.metric
    against = f" · {metric} against its labels {result[metric]:.4f}" if metric in result else ""
    console.print(f"{len(rows)} rows ({rate:.0f}/s) → {dest}{against}")
    return result


def input_quoting(cfg: Any, dataset: Any, src: Path) -> str:
    """GLUE-style TSVs need quoting=none: take the training data's setting only for a file of its kind."""
    if cfg.quoting:
        return str(cfg.quoting)
    trained_on = (dataset.get("validation_file") or dataset.get("train_file") or "") if dataset is not None else ""
    same_kind = dataset is not None and src.suffix.lower() == Path(trained_on).suffix.lower()
    return str(dataset.quoting) if same_kind else "minimal"


def agreement(task: Any, outputs: np.ndarray, rows: list[dict[str, Any]], dataset: Any, names: list[str]) -> dict:
    """When the file has the training data's label column, how well the predictions match it."""
    label_col = dataset.label_column if dataset is not None else "label"
    gold = task.gold([r.get(label_col) for r in rows], names) if label_col in rows[0] else None
    return {} if gold is None else {task.metric: task.metrics(outputs, gold, names)[task.metric]}


def show(pred: dict[str, Any]) -> None:
    """One prediction on the terminal: the answer in bold, then what supports it."""
    from ftcli.reporting.progress import console

    for value in pred.values():
        if isinstance(value, dict):
            for k, v in value.items():
                console.print(f"  {k:<12} {v:.4f}")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):  # entity spans
            for v in value:
                console.print(f"  {json.dumps(v, ensure_ascii=False)}", highlight=False)
        elif isinstance(value, list):  # several labels
            console.print(f"[bold]{', '.join(map(str, value)) or '(none)'}[/]")
        else:
            console.print(f"[bold]{value:.4f}[/]" if isinstance(value, float) else f"[bold]{value}[/]")
