"""Load → map columns and labels → tokenise (cached) → batches (dynamic padding, length grouping)."""

from __future__ import annotations

import hashlib
import itertools
import json
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
class TextData:
    """The splits of a text-classification dataset with integer labels and their names."""

    splits: dict[str, Any]  # split name → datasets.Dataset with text column(s) and "labels"
    label_names: list[str]
    text_columns: list[str]


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


def load_splits(cfg: DatasetConfig, seed: int) -> TextData:
    """Load every configured split, check columns, map labels to ids, and subsample if asked."""
    import datasets

    raw: dict[str, Any] = {}
    if cfg.source == "files":
        if not cfg.train_file:
            raise FtcliError("dataset.train_file is required for dataset=files")
        for split in SPLITS:
            path = getattr(cfg, f"{split}_file")
            if path:
                raw[split] = _load_file(path, split, cfg.quoting)
    else:
        try:
            loaded = datasets.load_dataset(cfg.path, cfg.config_name)
        except Exception as e:
            raise FtcliError(f"dataset.path={cfg.path}: cannot load ({first_line(e)})") from e
        names = {"train": cfg.train_split, "validation": cfg.validation_split, "test": cfg.test_split}
        for split, name in names.items():
            if name and name in loaded:
                raw[split] = loaded[name]
            elif name and split != "test":
                raise FtcliError(f"dataset.{split}_split={name}: not in {cfg.path}; it has {', '.join(loaded)}")
    if "train" not in raw:
        raise FtcliError(f"dataset={cfg.name}: no train split")
    if "validation" not in raw:  # hold out 10% of train, seeded, as a validation split
        parts = raw["train"].train_test_split(test_size=0.1, seed=seed)
        raw["train"], raw["validation"] = parts["train"], parts["test"]

    text_columns = [cfg.text_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
    for split, ds in raw.items():
        if len(ds) == 0:
            raise FtcliError(f"dataset={cfg.name}: the {split} split is empty")
        named = [
            ("text_column", cfg.text_column),
            ("text_pair_column", cfg.text_pair_column),
            ("label_column", cfg.label_column),
        ]
        for key, col in [(k, c) for k, c in named if c]:
            if col not in ds.column_names:
                raise FtcliError(
                    f"dataset.{key}={col}: no such column in the {split} split; it has {', '.join(ds.column_names)}"
                )

    label_names = list(cfg.label_names) if cfg.label_names else _infer_label_names(raw["train"], cfg.label_column)
    splits = {s: _encode_labels(ds, cfg.label_column, label_names, s) for s, ds in raw.items()}
    if cfg.max_train_samples and cfg.max_train_samples < len(splits["train"]):
        splits["train"] = splits["train"].shuffle(seed=seed).select(range(cfg.max_train_samples))
    for split in ("validation", "test"):
        if split in splits and cfg.max_eval_samples and cfg.max_eval_samples < len(splits[split]):
            splits[split] = splits[split].shuffle(seed=seed).select(range(cfg.max_eval_samples))
    keep = set(text_columns) | {"labels"}
    splits = {s: ds.remove_columns([c for c in ds.column_names if c not in keep]) for s, ds in splits.items()}
    return TextData(splits, label_names, text_columns)


def _infer_label_names(ds: Any, column: str) -> list[str]:
    values = ds.unique(column)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return [str(i) for i in range(int(max(values)) + 1)]
    return sorted(str(v) for v in values)


def _encode_labels(ds: Any, column: str, names: list[str], split: str) -> Any:
    """Add an integer "labels" column; strings map through ``names``, integers must be in range."""
    index = {n: i for i, n in enumerate(names)}
    values = ds.unique(column)
    bad = [v for v in values if not (_as_id(v, index, len(names)) is not None)]
    if bad:
        shown = ", ".join(repr(v) for v in bad[:5])
        raise LabelError(
            f"dataset.label_column: the {split} split has labels {shown} outside the label set "
            f"{names} (set dataset.label_names, or fix the data)"
        )
    mapping = {v: _as_id(v, index, len(names)) for v in values}
    # an explicit fingerprint: datasets cannot always hash a closure and would then pick a random one,
    # which defeats every cache downstream
    key = json.dumps([ds._fingerprint, column, sorted(mapping.items(), key=str)], default=str)
    return ds.map(
        lambda b: {"labels": [mapping[v] for v in b[column]]},
        batched=True,
        desc=f"labels ({split})",
        new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
    )


def _as_id(value: Any, index: dict[str, int], n: int) -> int | None:
    if isinstance(value, str):
        return index.get(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value) if 0 <= value < n else None
    return None


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Identity of a tokenizer's behaviour (vocab, normaliser, specials) for cache keys.

    Computed once per tokenizer object (serialising a 30k vocab is not free) and remembered on it."""
    known = getattr(tokenizer, "_ftcli_fingerprint", None)
    if known is None:
        known = _fingerprint_of(tokenizer)
        tokenizer._ftcli_fingerprint = known
    return known


def _fingerprint_of(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # truncation and padding are call-time state (transformers sets them on every call), not behaviour
        backend.no_truncation(), backend.no_padding()
        blob = backend.to_str()  # deterministic (vocab in id order); parsing it back costs 0.25 s
    else:
        blob = repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tokenize(ds: Any, tokenizer: Any, text_columns: list[str], max_length: int) -> Any:
    """Token ids without padding (padding happens per batch). Cached by datasets across runs."""
    key = f"{ds._fingerprint}-{tokenizer_fingerprint(tokenizer)}-{max_length}-{'+'.join(text_columns)}"
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]

    def encode(batch: dict[str, list]) -> dict[str, Any]:
        texts = [batch[c] for c in text_columns]
        texts = [[t if t is not None else "" for t in col] for col in texts]
        return tokenizer(*texts, truncation=True, max_length=max_length)

    return ds.map(
        encode,
        batched=True,
        batch_size=2000,
        remove_columns=text_columns,
        new_fingerprint=fingerprint,
        desc="tokenise",
    )


def content_fingerprint(ds: Any, column: str = "input_ids") -> str:
    """A hash of a token-id column's contents: exact, and independent of how the dataset was made."""
    col = ds.with_format("arrow")[:].column(column).combine_chunks()
    h = hashlib.sha256(np.asarray(col.offsets).tobytes())
    h.update(np.asarray(col.values).tobytes())
    return h.hexdigest()[:16]


def lengths_of(ds: Any) -> np.ndarray:
    """Token count of every example (for sorting and token budgets), read from Arrow, no rows decoded."""
    import pyarrow.compute as pc

    ids = column_of(ds, "input_ids", "arrow")
    return np.asarray(pc.list_value_length(ids).to_numpy(), dtype=np.int64)


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


def text_batches(
    tokenizer: Any, texts: list[str], pairs: list[str] | None, max_length: int, batch_size: int
) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """(row indices, padded tensor batch) over raw texts, longest first (for predict and export checks)."""
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    lengths = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(texts))
    collate = collator(tokenizer)
    for idx in sorted_batches(lengths, batch_size):
        yield idx, collate([{k: enc[k][i] for k in enc} for i in idx])


def collator(tokenizer: Any) -> Any:
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def loader(ds: Any, batch_sampler: Any, tokenizer: Any) -> Any:
    """A DataLoader over ``ds`` whose batches ``batch_sampler`` chooses, padded per batch."""
    from torch.utils.data import DataLoader

    return DataLoader(ds, batch_sampler=batch_sampler, collate_fn=collator(tokenizer), generator=seed_source())


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
