"""Batches for causal LMs: training rows (padded, or packed with restarting position ids), evaluation rows laid out
so that one forward pass gives the loss, the next-token scores after each prompt and the prompts' KV cache, and
prompts alone (left-padded) for ``ftcli predict``.

An evaluation row is ``[left padding][prompt][answer][right padding]``: every prompt ends at the same position
``P - 1`` (``prompt_width`` is ``P``), so the logits there score the first answer token, and the cache of the first
``P - 1`` positions is exactly what generation from the left-padded prompts would build first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ftcli.data.chat import IGNORE, Encoded
from ftcli.data.packing import collate_packed, pack

MAX_LABEL_WORDS = 20  # answers drawn from at most this many distinct texts are label words (classes)


def encoded_columns(encoded: Encoded) -> dict[str, list[Any]]:
    """An encoded split as dataset columns: ids, labels, where the last answer starts, its text, the file row."""
    examples = encoded.examples
    return {
        "input_ids": [e.input_ids for e in examples],
        "labels": [e.labels for e in examples],
        "prompt_len": [e.prompt_len for e in examples],
        "reference": [e.reference for e in examples],
        "row": [e.row for e in examples],
    }


def collate_train(pad_id: int) -> Any:
    """Right-padded training rows: input_ids, attention_mask, labels, and each row's real tokens (``tokens``)."""

    def collate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "tokens": mask.sum(1)}

    return collate


class PackedRows:
    """Training examples packed into rows of up to ``max_length`` tokens (best fit, once): a map-style dataset of
    rows, their token counts as ``lengths`` (for length-grouped batches)."""

    def __init__(self, ds: Any, max_length: int) -> None:
        examples = list(zip(ds["input_ids"], ds["labels"], strict=True))
        self.rows = pack(examples, max_length)
        self.lengths = [len(r.input_ids) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Any:
        return self.rows[i]


def collate_packed_rows(pad_id: int) -> Any:
    """Packed rows as a batch: input_ids, labels, position_ids (no attention mask: the model builds the
    block-diagonal one), each row's real tokens and examples."""

    def collate(rows: Sequence[Any]) -> dict[str, Any]:
        batch = collate_packed(rows, pad_id)
        batch["tokens"] = torch.tensor([len(r.input_ids) for r in rows])
        batch["examples"] = torch.tensor([len(r.examples) for r in rows])
        return batch

    return collate


def label_words(references: Sequence[str]) -> list[str]:
    """The distinct answers, when there are few of them (label words such as `positive`/`negative`), else []."""
    distinct = sorted({r.strip() for r in references if r.strip()})
    return distinct if len(distinct) <= MAX_LABEL_WORDS else []


def first_tokens(ds: Any) -> list[int]:
    """The first answer token of each label word in ``ds`` (sorted by word), when that token tells the words apart
    (scoring one next-token distribution is then exact); [] otherwise."""
    first: dict[str, set[int]] = {}
    for ids, start, reference in zip(ds["input_ids"], ds["prompt_len"], ds["reference"], strict=True):
        if reference.strip() and start < len(ids):
            first.setdefault(reference.strip(), set()).add(int(ids[start]))
    words = label_words(list(first))
    tokens = [next(iter(first[w])) for w in words if len(first[w]) == 1]
    return tokens if len(tokens) == len(words) and len(set(tokens)) == len(tokens) > 1 else []


def collate_eval(tokenizer: Any, candidates: list[int], generate: bool) -> Any:
    """Evaluation rows (see the module's docstring) with ``targets`` (the loss's labels), ``labels`` (each row's
    reference answer as token ids, -100 padded), ``prompt_width``, the label words' first tokens (``candidates``)
    and whether to generate; ``idx`` kept."""
    pad_id = tokenizer.pad_token_id

    def collate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        width_p = max(r["prompt_len"] for r in rows)
        width = width_p + max(len(r["input_ids"]) - r["prompt_len"] for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            left, n = width_p - r["prompt_len"], len(r["input_ids"])
            ids[i, left : left + n], targets[i, left : left + n] = (
                torch.tensor(r["input_ids"]),
                torch.tensor(r["labels"]),
            )
            mask[i, left : left + n] = 1
        references = [tokenizer(r["reference"], add_special_tokens=False)["input_ids"] for r in rows]
        refs = torch.full((len(rows), max(1, *map(len, references))), IGNORE, dtype=torch.long)
        for i, ref in enumerate(references):
            refs[i, : len(ref)] = torch.tensor(ref, dtype=torch.long)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": (mask.cumsum(1) - 1).clamp(min=0),
            "targets": targets,
            "labels": refs,
            "prompt_width": torch.full((len(rows),), width_p, dtype=torch.long),
            "candidates": torch.tensor([candidates] * len(rows), dtype=torch.long).reshape(len(rows), -1),
            "generate": torch.full((len(rows),), int(generate), dtype=torch.long),
            "idx": torch.tensor([r["idx"] for r in rows]),
        }

    return collate


def left_padded(prompts: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Prompts as one left-padded batch (generation continues every row at the same position)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :], mask[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long), 1
    return {"input_ids": ids, "attention_mask": mask}
