"""Load a dataset's splits (files or hub), check columns, map labels, subsample; batch samplers.

What is common to every task lives here: where the rows come from, which rows form a batch, and
errors that name the file, the row and the problem. What a row *means* (text or image, a class or a
score) is the task's business (``ftcli/tasks``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config import DatasetConfig, FtcliError, first_line

BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPLITS = ("train", "validation", "test")


class LabelError(FtcliError):
    """Labels in the data that the label set does not hold."""


@dataclass
class Raw:
    """A dataset's splits as loaded, and where each came from (a file name or a hub split) for messages."""

    splits: dict[str, Any]
    where: dict[str, str]


def _load_file(path: str, split: str, quoting: str) -> Any:
    import datasets

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
    import datasets

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
    """Each ``(dataset key, column)`` must exist in every split: the first missing one is named."""
    for split, ds in raw.splits.items():
        for key, col in named:
            if col and col not in ds.column_names:
                raise FtcliError(
                    f"dataset.{key}={col}: no such column in the {split} split; it has {', '.join(ds.column_names)}"
                )


def finish_splits(splits: dict[str, Any], cfg: DatasetConfig, seed: int, keep: list[str]) -> dict[str, Any]:
    """Hold out 10% of train as validation when there is none, take the seeded subsets, keep ``keep``."""
    if "validation" not in splits:
        parts = splits["train"].train_test_split(test_size=0.1, seed=seed)
        splits = {**splits, "train": parts["train"], "validation": parts["test"]}
    if cfg.max_train_samples and cfg.max_train_samples < len(splits["train"]):
        splits["train"] = splits["train"].shuffle(seed=seed).select(range(cfg.max_train_samples))
    for split in ("validation", "test"):
        if split in splits and cfg.max_eval_samples and cfg.max_eval_samples < len(splits[split]):
            splits[split] = splits[split].shuffle(seed=seed).select(range(cfg.max_eval_samples))
    return {s: ds.remove_columns([c for c in ds.column_names if c not in keep]) for s, ds in splits.items()}


# ----------------------------------------------------------------------------------------------
# labels: class ids or numbers, with errors that name the row


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _row_of(ds: Any, column: str, bad: Any) -> int:
    """1-based data row of the first ``bad`` value in ``column`` (what a user finds in the file)."""
    for i, v in enumerate(ds[column]):
        if v is bad or v == bad or (_empty(v) and _empty(bad)):  # NaN equals nothing: compare emptiness
            return i + 1
    return 0


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v))


def class_names(ds: Any, column: str, where: str) -> list[str]:
    """Label names inferred from the train split: a ClassLabel's own names (hub datasets: cifar10's
    airplane … truck), ids 0…max for integer labels, else the sorted strings."""
    names = getattr(ds.features.get(column), "names", None)
    if names:
        return [str(n) for n in names]
    values = ds.unique(column)
    check_class_values(ds, column, values, where)
    if all(_is_int(v) or (isinstance(v, float) and v.is_integer()) for v in values):
        return [str(i) for i in range(int(max(values)) + 1)]
    return sorted(str(v) for v in values)


def check_class_values(ds: Any, column: str, values: list[Any], where: str) -> None:
    """Empty labels and fractional numbers are not classes: name the row and what it probably means."""
    for v in values:
        if _empty(v):
            raise LabelError(f"empty label in row {_row_of(ds, column, v)} of {where} (column '{column}')")
        if isinstance(v, float) and not v.is_integer():
            raise LabelError(
                f"label {v} in row {_row_of(ds, column, v)} of {where} is not a class id: the labels look like "
                "numbers to predict — for a regression use task=text_regression"
            )


def encode_class_labels(ds: Any, column: str, names: list[str], where: str) -> Any:
    """Add an integer "labels" column; strings map through ``names``, integer ids must be in range."""
    values = ds.unique(column)
    check_class_values(ds, column, values, where)
    index = {n: i for i, n in enumerate(names)}
    bad = [v for v in values if _class_id(v, index, len(names)) is None]
    if bad:
        row = _row_of(ds, column, bad[0])
        others = f" (nor are {', '.join(repr(v) for v in bad[1:5])})" if len(bad) > 1 else ""
        raise LabelError(
            f"label {bad[0]!r} in row {row} of {where} is outside the label set {names}{others}; "
            "set dataset.label_names, or fix the data"
        )
    mapping = {v: _class_id(v, index, len(names)) for v in values}
    return _map_labels(ds, column, mapping, where)


def _class_id(value: Any, index: dict[str, int], n: int) -> int | None:
    if isinstance(value, str):
        return index.get(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if _is_int(value):
        return int(value) if 0 <= value < n else None
    return None


def encode_float_labels(ds: Any, column: str, where: str) -> Any:
    """Add a float "labels" column (a regression target); anything that is not a number names its row."""
    mapping: dict[Any, float] = {}
    for v in ds.unique(column):
        try:
            number = float(v)
        except (TypeError, ValueError):
            number = math.nan
        if _empty(v) or math.isnan(number) or math.isinf(number):
            what = "empty label" if _empty(v) else f"label {v!r} is not a number"
            raise LabelError(f"{what} in row {_row_of(ds, column, v)} of {where} (column '{column}')")
        mapping[v] = number
    return _map_labels(ds, column, mapping, where)


def _map_labels(ds: Any, column: str, mapping: dict[Any, Any], where: str) -> Any:
    # an explicit fingerprint: datasets cannot always hash a closure and would then pick a random one,
    # which defeats every cache downstream
    key = json.dumps([ds._fingerprint, column, sorted(mapping.items(), key=str)], default=str)
    return ds.map(
        lambda b: {"labels": [mapping[v] for v in b[column]]},
        batched=True,
        desc=f"labels ({where})",
        new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
    )


# ----------------------------------------------------------------------------------------------
# batches


def column_of(ds: Any, name: str, kind: str = "numpy") -> Any:
    """One whole column of a dataset (its selection applied) as a numpy or Arrow array."""
    return ds.select_columns([name]).with_format(kind)[:][name]


def _cut(order: np.ndarray, lengths: np.ndarray, batch_size: int, max_tokens: int | None) -> list[list[int]]:
    """Consecutive batches of ``order``: batch_size rows each, or as many as fit in max_tokens padded tokens."""
    if not max_tokens:
        return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order.tolist():
        longest_if = max(longest, int(lengths[i]))
        if cur and longest_if * (len(cur) + 1) > max_tokens:
            batches.append(cur)
            cur, longest_if = [], int(lengths[i])
        cur.append(i)
        longest = longest_if
    if cur:
        batches.append(cur)
    return batches


class LengthGroupedBatches:
    """Training batches of similar length that keep the randomness SGD needs.

    Each epoch: shuffle all examples, sort by length within chunks of ``chunk_batches`` batches,
    cut into batches, shuffle the batches. Batches hold near-equal lengths (little padding), while
    which examples meet in a batch, and the batch order, change every epoch.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int,
        max_tokens: int | None = None,
        chunk_batches: int = 64,
        group: bool = True,
    ) -> None:
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.max_tokens, self.chunk, self.group = max_tokens, chunk_batches * batch_size, group
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        perm = rng.permutation(len(self.lengths))
        if not self.group:
            return _cut(perm, self.lengths, self.batch_size, self.max_tokens)
        out: list[list[int]] = []
        for start in range(0, len(perm), self.chunk):
            chunk = perm[start : start + self.chunk]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            out += _cut(chunk, self.lengths, self.batch_size, self.max_tokens)
        return [out[i] for i in rng.permutation(len(out))]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()

    def __len__(self) -> int:
        return len(self.batches()) if self.max_tokens else -(-len(self.lengths) // self.batch_size)


def sorted_batches(lengths: np.ndarray, batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Inference batches, longest first (a memory problem shows at once); no randomness needed."""
    order = np.argsort(-lengths, kind="stable")
    return _cut(order, lengths, batch_size, max_tokens)


def seed_source() -> Any:
    """A DataLoader's own generator. Each ``iter(loader)`` draws a seed from it, not from the global RNG
    that dropout uses, so a run resumed mid-epoch replays the uninterrupted run's dropout masks."""
    import torch

    return torch.Generator().manual_seed(0)


class ShardedBatches:
    """Global batches cut into one slice per process, slices in process order.

    Accelerate hands batch ``i`` to process ``i mod n``, so process ``r`` trains on slice ``r`` of every
    global batch: ``n`` processes see exactly the batches one process sees with an ``n``× larger batch
    (same optimizer steps, same examples per step). No ``batch_size`` attribute: slices may differ in size.
    """

    def __init__(self, batches: LengthGroupedBatches, num_processes: int) -> None:
        self.global_batches, self.n = batches, num_processes

    def set_epoch(self, epoch: int) -> None:
        self.global_batches.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches.batches():
            if len(batch) < self.n:  # a tiny last batch: repeat rows so that every process gets one
                batch = (batch * self.n)[: self.n]
            for part in np.array_split(np.asarray(batch), self.n):
                yield part.tolist()

    def __len__(self) -> int:
        return len(self.global_batches) * self.n
