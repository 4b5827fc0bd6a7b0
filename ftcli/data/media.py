"""What image and audio data share before decoding: a class folder's files as splits, a table's column of file
paths made absolute (relative to the table that lists them), a hub feature kept undecoded (decoded once, by the
kind's own cache), and ``ftcli predict``'s folder or ``.txt`` list of files as rows."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import datasets

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.data.images.folder import scan_folder
from ftcli.data.tables import Raw, load_raw
from ftcli.reporting.progress import console

STRINGS = ("string", "large_string")  # a column of paths, as datasets types it


def file_splits(dataset: DatasetConfig, column: str, feature: type, suffixes: tuple[str, ...], what: str) -> Raw:
    """A folder's ``what`` files (``dataset.data_dir``, when ``dataset.source`` names a folder), or a table's / hub
    split's ``column``: paths made absolute (relative to the file that lists them), a ``feature`` column (datasets'
    Image or Audio) kept as its undecoded {bytes, path}."""
    if dataset.source in ("imagefolder", "audiofolder"):
        return _folder(dataset, column, suffixes, what)
    raw = load_raw(dataset)
    for split, ds in raw.splits.items():
        if column not in ds.column_names:
            continue  # require_columns names it
        if isinstance(ds.features.get(column), feature):
            ds = ds.cast_column(column, feature(decode=False))
        base = Path(getattr(dataset, f"{split}_file") or ".").expanduser().resolve().parent
        raw.splits[split] = _absolute(ds, column, base, what)
    return raw


def _folder(dataset: DatasetConfig, column: str, suffixes: tuple[str, ...], what: str) -> Raw:
    if not dataset.data_dir:
        raise FtcliError(f"dataset.data_dir is required for dataset={dataset.name} (a folder of {what}s)")
    folder = scan_folder(dataset.data_dir, suffixes, what)
    label = dataset.label_column
    splits = {s: datasets.Dataset.from_dict({column: p, label: y}) for s, (p, y) in folder.splits.items()}
    if folder.ignored:
        shown = ", ".join(Path(p).name for p in folder.ignored[:3])
        n = len(folder.ignored)
        console.print(f"{dataset.data_dir}: {n} file{'s' * (n != 1)} left out (not {what}s: {shown} …)")
    return Raw(splits, folder.where)


def _absolute(ds: Any, column: str, base: Path, what: str) -> Any:
    """Relative paths in a table are relative to the table's folder."""
    if not is_paths(ds, column):
        return ds

    def fix(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {column: [v if v is None else str(base / os.path.expanduser(v)) for v in batch[column]]}

    key = hashlib.sha256(f"{ds._fingerprint}-{base}-{column}".encode()).hexdigest()[:16]
    return ds.map(fix, batched=True, new_fingerprint=key, desc=f"{what} paths")


def is_paths(ds: Any, column: str) -> bool:
    """Whether ``column`` holds file paths (else embedded data)."""
    return getattr(ds.features[column], "dtype", None) in STRINGS


def listed_files(src: Path, key: str, suffixes: tuple[str, ...], what: str) -> list[dict[str, Any]] | None:
    """``ftcli predict input=``: a folder (every ``what`` file in it) or a .txt list of paths (relative to the list's
    folder), as rows {``key``: path}; None for a table (CSV, JSON …), which predict reads itself."""
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise FtcliError(f"input={src}: no {what}s in this folder ({', '.join(suffixes)})")
        return [{key: str(p)} for p in files]
    if src.suffix.lower() == ".txt" and src.is_file():
        lines = [line.strip() for line in src.read_text(encoding="utf-8").splitlines()]
        return [{key: line} for line in lines if line and not line.startswith("#")]
    return None


def file_column(cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str, key: str) -> list[str]:
    """The column of predict's rows that holds the files: ``<key>_column=``, else ``key`` when the rows have it,
    else the column the checkpoint was trained on."""
    option = f"{key}_column"
    trained = dataset.get(option) if dataset is not None else None
    column = cfg.get(option) or (key if key in rows[0] else trained) or key
    if column not in rows[0]:
        raise FtcliError(f"{option}={column}: no such column in {where}; it has {', '.join(rows[0])}")
    return [column]
