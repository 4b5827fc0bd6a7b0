"""Which rows form a batch: length-grouped training batches, sorted inference batches, global batches sharded
over processes, and the loaders' own random generator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate


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


def training_batches(
    lengths: np.ndarray, batch_size: int, processes: int, seed: int, max_tokens: int | None = None, group: bool = True
) -> ShardedBatches:
    """This process's slices of the global training batches (``batch_size`` rows per process), grouped by
    ``lengths`` (``max_tokens`` per process: a token budget) unless ``group`` is off (rows merely shuffled)."""
    budget = max_tokens * processes if max_tokens else None
    sampler = LengthGroupedBatches(lengths, batch_size * processes, seed, budget, group=group)
    return ShardedBatches(sampler, processes)


def in_order(rows: int, batch_size: int) -> list[list[int]]:
    """Inference batches of ``rows`` rows in dataset order."""
    return [list(range(i, min(i + batch_size, rows))) for i in range(0, rows, batch_size)]


def loader(ds: Any, batch_sampler: Any, collate: Any = None, workers: int = 0) -> Any:
    """The one DataLoader builder: rows that ``batch_sampler`` chooses, made a batch by ``collate`` (None: torch's
    default; a dataset with ``__getitems__`` makes its batches itself), with the loaders' own random generator."""

    return DataLoader(
        ds,
        batch_sampler=batch_sampler,
        collate_fn=collate or default_collate,
        generator=seed_source(),
        num_workers=workers,
        persistent_workers=workers > 0,
    )
