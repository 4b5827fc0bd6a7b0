"""Rows of a file for ``ftcli predict``: CSV/TSV (a header line first), JSON Lines or a JSON array in; the same
rows with each prediction's fields out (flattened into columns for CSV/TSV, kept whole in JSON)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

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


def placed_rows(path: str | Path, formats: tuple[str, ...], what: str) -> list[tuple[Any, str]]:
    """A training or evaluation file's rows, each with where it is for errors ("row 3 of f.json", "line 4 of
    f.jsonl"): a .json list (or ``{"data": [...]}``), .jsonl, or .csv/.tsv with a header (cells as written). A file
    that is missing, of another format, unreadable or without ``what`` stops in one line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FtcliError(f"{path}: no such file")
    if suffix not in formats:
        raise FtcliError(f"{path}: unknown format; use one of {', '.join(formats)}")
    try:
        text = path.read_text(encoding="utf-8")
        if suffix == ".json":
            placed = _json_placed(text, path)
        elif suffix == ".jsonl":
            placed = _jsonl_placed(text, path)
        else:
            reader = csv.DictReader(io.StringIO(text, newline=""), **_dialect(suffix, "minimal"))
            placed = [(dict(r), f"row {n} of {path}") for n, r in enumerate(reader, 1)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FtcliError(f"{path}: cannot read ({str(e).splitlines()[0]})") from e
    if not placed:
        raise FtcliError(f"{path}: has no {what}")
    return placed


def _json_placed(text: str, path: Path) -> list[tuple[Any, str]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise FtcliError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from e
    items = doc.get("data") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise FtcliError(f"{path}: expected a list of rows (or {{'data': [...]}}), got {type(doc).__name__}")
    return [(r, f"row {n} of {path}") for n, r in enumerate(items, 1)]


def _jsonl_placed(text: str, path: Path) -> list[tuple[Any, str]]:
    placed = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                placed.append((json.loads(line), f"line {n} of {path}"))
            except json.JSONDecodeError as e:
                raise FtcliError(f"line {n} of {path}: not valid JSON ({e.msg})") from e
    return placed


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
