"""A dataset's splits as loaded (files or hub), the columns they must have, held-out validation and seeded
subsets. Errors name the file, the row and the problem."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from ftcli.config.errors import FtcliError, first_line
from ftcli.config.schemas import DatasetConfig

BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


SPLITS = ("train", "validation", "test")


@dataclass
class Raw:
    """A dataset's splits as loaded, and where each came from (a file name or a hub split) for messages."""

    splits: dict[str, Any]
    where: dict[str, str]


def _load_file(path: str, split: str, quoting: str) -> Any:

    file = Path(path).expanduser()
    if not file.is_file():
        raise FtcliError(f"dataset.{split}_file={path}: no such file")
    builder = BUILDERS.get(file.suffix.lower())
    if builder is None:
        raise FtcliError(f"dataset.{split}_file={path}: unknown format; use one of {', '.join(BUILDERS)}")
    kwargs: dict[str, Any] = {}
    if file.suffix.lower() == ".tsv":
        kwargs["delimiter"] = "\t"
    if builder == "csv" and quoting == "none":
        kwargs["quoting"] = 3  # csv.QUOTE_NONE
    if _is_empty(file):
        raise FtcliError(f"dataset.{split}_file={path}: has no examples (empty, or a header line only)")
    try:
        return datasets.load_dataset(builder, data_files={split: str(file)}, split=split, **kwargs)
    except Exception as e:  # a parse error names the file, not a traceback
        raise FtcliError(f"dataset.{split}_file={path}: cannot read ({first_line(e)})") from e


def _is_empty(file: Path) -> bool:
    """No data rows: zero bytes, or a text file with at most a header line (datasets' error is cryptic)."""
    if file.stat().st_size == 0:
        return True
    if file.suffix.lower() == ".parquet":
        return False
    with file.open("rb") as f:
        lines = [line for line in itertools.islice(f, 3) if line.strip()]
    return len(lines) == 0 or (len(lines) == 1 and file.suffix.lower() in (".csv", ".tsv"))


def load_raw(cfg: DatasetConfig) -> Raw:
    """Every configured split, as the files or the hub dataset hold them (no validation split: none)."""

    raw: dict[str, Any] = {}
    where: dict[str, str] = {}
    if cfg.source == "files":
        if not cfg.train_file:
            raise FtcliError("dataset.train_file is required for dataset=files")
        for split in SPLITS:
            path = getattr(cfg, f"{split}_file")
            if path:
                raw[split], where[split] = _load_file(path, split, cfg.quoting), Path(path).name
    else:
        try:
            loaded = datasets.load_dataset(cfg.path, cfg.config_name)
        except Exception as e:
            raise FtcliError(f"dataset.path={cfg.path}: cannot load ({first_line(e)})") from e
        names = {"train": cfg.train_split, "validation": cfg.validation_split, "test": cfg.test_split}
        for split, name in names.items():
            if name and name in loaded:
                raw[split], where[split] = loaded[name], f"the {name} split of {cfg.path}"
            elif name and split != "test":
                raise FtcliError(f"dataset.{split}_split={name}: not in {cfg.path}; it has {', '.join(loaded)}")
    if "train" not in raw:
        raise FtcliError(f"dataset={cfg.name}: no train split")
    for split, ds in raw.items():
        if len(ds) == 0:
            raise FtcliError(f"dataset={cfg.name}: the {split} split is empty")
    return Raw(raw, where)


def require_columns(raw: Raw, named: list[tuple[str, str | None]]) -> None:
    """Each ``(key, column)`` must exist in every split: the first missing one is named with its config key
    (``dataset.text_column``, ``task.caption_column`` …)."""
    for split, ds in raw.splits.items():
        for key, col in named:
            if col and col not in ds.column_names:
                raise FtcliError(
                    f"{key}={col}: no such column in the {split} split; it has {', '.join(ds.column_names)}"
                )


def finish_splits(splits: dict[str, Any], cfg: DatasetConfig, seed: int, keep: list[str]) -> dict[str, Any]:
    """Hold out 10% of train as validation when there is none, take the seeded subsets (every split but train is
    an evaluation split: ``max_eval_samples``), keep the columns ``keep``."""
    if "validation" not in splits:
        parts = splits["train"].train_test_split(test_size=0.1, seed=seed)
        splits = {**splits, "train": parts["train"], "validation": parts["test"]}
    if cfg.max_train_samples and cfg.max_train_samples < len(splits["train"]):
        splits["train"] = splits["train"].shuffle(seed=seed).select(range(cfg.max_train_samples))
    for split in [s for s in splits if s != "train"]:
        if cfg.max_eval_samples and cfg.max_eval_samples < len(splits[split]):
            splits[split] = splits[split].shuffle(seed=seed).select(range(cfg.max_eval_samples))
    return {s: ds.remove_columns([c for c in ds.column_names if c not in keep]) for s, ds in splits.items()}
