"""Packing short causal-LM examples into rows of up to ``max_length`` tokens, with no attention across examples.

transformers (masking_utils, 5.x here) recognises packed rows by their position ids: when a forward gets
``position_ids`` that restart at 0 for each example, **no** ``attention_mask`` and no KV cache, it builds the
block-diagonal causal mask itself (``find_packed_sequence_indices``; tests cover sdpa and eager), and
rotary or learned position embeddings see each example's own positions. So a packed batch is ``input_ids``,
``labels`` and ``position_ids`` only, and the forward must say ``use_cache=False`` (a model whose config has
``use_cache: true`` otherwise makes a cache, which turns the detection off and lets examples see each other).
The loss then equals the unpacked loss: the first token of each example gets label -100, as nothing before it in
its own example predicts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE = -100


@dataclass(frozen=True)
class PackedRow:
    """Several examples side by side: position ids restart at each; ``examples`` are their indexes."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    examples: tuple[int, ...]


def pack_lengths(lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """Group example indexes into bins of at most ``max_length`` tokens (best fit, longest first).

    Deterministic: ties keep the examples' order. Each bin lists its examples longest first.

    Raises:
        ValueError: an example is longer than ``max_length`` (fit examples to the length before packing).
    """
    bins: list[list[int]] = []
    # free[c]: the bins with exactly c tokens of room; best fit takes the fullest bin the example fits into
    free: list[list[int]] = [[] for _ in range(max_length + 1)]
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        length = lengths[index]
        if not 0 < length <= max_length:
            raise ValueError(f"example {index} has {length} tokens; packing takes 1 to {max_length}")
        room = next((c for c in range(length, max_length + 1) if free[c]), None)
        if room is None:
            bins.append([])
            b, room = len(bins) - 1, max_length
        else:
            b = free[room].pop()
        bins[b].append(index)
        free[room - length].append(b)
    return bins


def pack(examples: Sequence[tuple[Sequence[int], Sequence[int]]], max_length: int) -> list[PackedRow]:
    """``(input_ids, labels)`` pairs packed into rows of at most ``max_length`` tokens."""
    rows = []
    for members in pack_lengths([len(ids) for ids, _ in examples], max_length):
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for index in members:
            example_ids, example_labels = examples[index]
            ids.extend(example_ids)
            labels.extend([IGNORE, *example_labels[1:]])  # nothing of its own precedes the first token
            positions.extend(range(len(example_ids)))
        rows.append(PackedRow(ids, labels, positions, tuple(members)))
    return rows


def collate_packed(rows: Sequence[PackedRow], pad_id: int, pad_to: int | None = None) -> dict[str, Any]:
    """Packed rows as one batch: ``input_ids``, ``labels``, ``position_ids`` (no attention mask, on purpose).

    Rows shorter than the longest (or ``pad_to``) end in padding that is its own segment (positions from 0) and
    learns nothing. Run the model as ``model(**batch, use_cache=False)``.
    """
    import torch

    width = max(pad_to or 0, *(len(r.input_ids) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        ids[i, :n] = torch.tensor(row.input_ids)
        labels[i, :n] = torch.tensor(row.labels)
        positions[i, :n] = torch.tensor(row.position_ids)
        positions[i, n:] = torch.arange(width - n)
    return {"input_ids": ids, "labels": labels, "position_ids": positions}


def collate_padded(examples: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> dict[str, Any]:
    """Unpacked examples as one right-padded batch: ``input_ids``, ``attention_mask``, ``labels``."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (example_ids, example_labels) in enumerate(examples):
        n = len(example_ids)
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(example_ids), torch.tensor(example_labels), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def padding_share(batches: Sequence[Sequence[int]]) -> float:
    """The share of padding in batches padded to their longest member: each batch is its members' lengths."""
    real = sum(sum(batch) for batch in batches)
    total = sum(max(batch) * len(batch) for batch in batches if batch)
    return 1.0 - real / total if total else 0.0
