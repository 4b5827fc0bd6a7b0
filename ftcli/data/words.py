"""Words to sub-word windows for token classification, and sub-word predictions back to words and entities.

Labels sit on each word's *first* sub-word; its other sub-words (and special tokens) get -100 and are ignored by the
loss and the metrics. A sentence longer than ``model.max_length`` is not cut: it is read in windows of
``model.max_length`` tokens that overlap by ``task.stride`` tokens, and each word is labelled (and scored) in the one
window where it has the most context on both sides. Predictions on raw text group sub-words into entities as
transformers' ``pipeline("token-classification", aggregation_strategy="simple")`` does, with character offsets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ftcli.config.errors import FtcliError
from ftcli.data.batching import sorted_batches
from ftcli.data.text import tokenizer_fingerprint
from ftcli.metrics.classification import softmax

IGNORE = -100


SENTENCE = "sentence"  # each window's sentence (its row in the split), to put sentences together again


@dataclass
class Windows:
    """How a sentence's sub-words become model inputs: the special tokens around each window, how many
    sub-words a window holds, and how far the next one starts."""

    prefix: list[int]
    suffix: list[int]
    budget: int
    step: int
    types: bool  # the tokenizer gives token_type_ids

    def spans(self, n: int) -> list[tuple[int, int]]:
        """[start, end) of each window over ``n`` sub-words."""
        if n <= self.budget:
            return [(0, n)]
        out, start = [], 0
        while True:
            end = min(start + self.budget, n)
            out.append((start, end))
            if end == n:
                return out
            start += self.step

    def wrap(self, ids: list[int]) -> dict[str, list[int]]:
        """One window's sub-words with the special tokens around them."""
        full = [*self.prefix, *ids, *self.suffix]
        row = {"input_ids": full, "attention_mask": [1] * len(full)}
        if self.types:
            row["token_type_ids"] = [0] * len(full)
        return row


def windows_of(tokenizer: Any, max_length: int, stride: int) -> Windows:
    """The tokenizer's special tokens for one sequence (read off an encoded word) and the window sizes."""
    enc = tokenizer("a", return_special_tokens_mask=True)
    ids, special = enc["input_ids"], enc["special_tokens_mask"]
    first = special.index(0)
    last = len(special) - 1 - special[::-1].index(0)
    prefix, suffix = list(ids[:first]), list(ids[last + 1 :])
    budget = max_length - len(prefix) - len(suffix)
    if stride >= budget:
        raise FtcliError(
            f"task.stride={stride}: must be below the {budget} sub-words a window holds "
            f"(model.max_length={max_length} minus special tokens)"
        )
    return Windows(prefix, suffix, budget, budget - stride, "token_type_ids" in enc)


def owner(position: int, spans: list[tuple[int, int]]) -> int:
    """The window in which ``position`` has the most context on both sides (the first of equals)."""
    best, context = 0, -1
    for k, (start, end) in enumerate(spans):
        if start <= position < end and min(position - start, end - 1 - position) > context:
            best, context = k, min(position - start, end - 1 - position)
    return best


def _subwords(tokenizer: Any, sentences: list[list[str]]) -> list[tuple[list[int], list[int]]]:
    """(sub-word ids, word of each) per sentence; a word the tokenizer turns into nothing (a control
    character, an empty token) is read as the unknown token, so every word keeps a first sub-word."""
    enc = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    out = []
    for b, words in enumerate(sentences):
        ids, wids = list(enc["input_ids"][b]), list(enc.word_ids(b))
        if len(set(wids)) < len(words):
            present = set(wids)
            unk = tokenizer.unk_token or "?"
            fixed = [w if i in present else unk for i, w in enumerate(words)]
            again = tokenizer([fixed], is_split_into_words=True, add_special_tokens=False)
            ids, wids = list(again["input_ids"][0]), list(again.word_ids(0))
        out.append((ids, wids))
    return out


def encode_words(ds: Any, column: str, tokenizer: Any, max_length: int, stride: int) -> Any:
    """A split's sentences as windows of sub-words with ``labels`` on owned first sub-words and ``sentence``."""
    layout = windows_of(tokenizer, max_length, stride)

    def encode(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        sentences = [[str(w) for w in words] for words in batch[column]]
        out: dict[str, list] = {}
        for (ids, wids), tags, sentence in zip(_subwords(tokenizer, sentences), batch["labels"], indices, strict=True):
            firsts = {w: p for p, w in reversed(list(enumerate(wids)))}  # word → its first sub-word
            spans = layout.spans(len(ids))
            for k, (start, end) in enumerate(spans):
                labels = [IGNORE] * (end - start)
                for w, p in firsts.items():
                    if start <= p < end and owner(p, spans) == k:
                        labels[p - start] = tags[w]
                row: dict[str, Any] = dict(layout.wrap(ids[start:end]))
                row["labels"] = [IGNORE] * len(layout.prefix) + labels + [IGNORE] * len(layout.suffix)
                row[SENTENCE] = sentence
                for key, value in row.items():
                    out.setdefault(key, []).append(value)
        return out

    key = f"{ds._fingerprint}-{tokenizer_fingerprint(tokenizer)}-{max_length}-{stride}-{column}-words1"
    return ds.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=ds.column_names,
        new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
        desc="tokenise words",
    )


def collate(tokenizer: Any, keep: tuple[str, ...] = (), tag_labels: bool = True) -> Any:
    """Pad a list of windows to the longest (right): pad ids, mask 0, per-token labels -100 (``tag_labels``; else
    ``labels`` are a row's fixed-size integers, stacked, as ``keep``: extra integer columns)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    pads = {"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0}
    if tag_labels:
        pads["labels"] = IGNORE
    else:
        keep = ("labels", *keep)

    def fn(rows: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(r["input_ids"]) for r in rows)
        batch = {
            k: torch.tensor([list(r[k]) + [pad] * (width - len(r[k])) for r in rows], dtype=torch.long)
            for k, pad in pads.items()
            if k in rows[0]
        }
        for k in keep:
            if k in rows[0]:
                batch[k] = torch.tensor([r[k] for r in rows], dtype=torch.long)
        return batch

    return fn


def sentences_of(logits: np.ndarray, labels: np.ndarray, sentence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows (in dataset order) → sentences: each sentence's [words, tags] logits and its tag ids, read at
    the positions that carry a label (each word's first sub-word, in the window that owns it)."""
    outs: dict[int, list[np.ndarray]] = {}
    golds: dict[int, list[np.ndarray]] = {}
    for row in range(len(sentence)):
        at = labels[row] != IGNORE
        outs.setdefault(int(sentence[row]), []).append(logits[row][at])
        golds.setdefault(int(sentence[row]), []).append(labels[row][at].astype(np.int64))
    order = sorted(outs)
    out, gold = np.empty(len(order), dtype=object), np.empty(len(order), dtype=object)
    for i, s in enumerate(order):
        out[i], gold[i] = np.concatenate(outs[s]), np.concatenate(golds[s])
    return out, gold


def _bi(label: str) -> tuple[str, str]:
    """transformers' TokenClassificationPipeline.get_tag: (B or I, entity type); other labels continue (I)."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def group_simple(labels: list[str], scores: list[float], offsets: list[tuple[int, int]], text: str) -> list[dict]:
    """Adjacent sub-words with the same type and no B- between them form an entity (the pipeline's "simple"
    aggregation); its type is its first label's, its score the mean; groups of O are dropped."""
    groups: list[list[int]] = []
    for i, label in enumerate(labels):
        bi, kind = _bi(label)
        if groups and kind == _bi(labels[groups[-1][-1]])[1] and bi != "B":
            groups[-1].append(i)
        else:
            groups.append([i])
    found = []
    for g in groups:
        kind = labels[g[0]].split("-", 1)[-1]
        if kind == "O":
            continue
        start, end = int(offsets[g[0]][0]), int(offsets[g[-1]][1])
        found.append(
            {
                "entity_group": kind,
                "score": float(np.mean([scores[i] for i in g])),
                "word": text[start:end],
                "start": start,
                "end": end,
            }
        )
    return found


def token_logits(logits: np.ndarray, first: int, spans: list[tuple[int, int]], n: int, shift: int) -> np.ndarray:
    """A text's [sub-words, tags] logits, each sub-word read in the window that owns it (windows ``first``…)."""
    rows = []
    for p in range(n):
        k = owner(p, spans)
        rows.append(logits[first + k][shift + p - spans[k][0]])
    return np.stack(rows) if rows else np.zeros((0, 0))


def text_of(value: Any) -> str:
    """A predict row's text: a string, or (a row of the training data) its tokens joined by spaces."""
    if isinstance(value, list):  # a row of the training data: its tokens
        return " ".join(map(str, value))
    return "" if value is None else str(value)


def entities_of(logits: np.ndarray, names: list[str], offsets: list[tuple[int, int]], text: str) -> list[dict]:
    """A text's entities from its sub-words' logits, grouped as the pipeline's simple aggregation groups them."""
    if not len(logits):
        return []
    scores = softmax(logits, dtype=np.float32)  # the pipeline's softmax, in its precision
    best = scores.argmax(-1)
    labels = [names[int(i)] for i in best]
    return group_simple(labels, [float(scores[i, b]) for i, b in enumerate(best)], offsets, text)


def window_batches(
    tokenizer: Any, layout: Windows, ids: list[list[int]], spans: list[list[tuple[int, int]]], batch_size: int
) -> Iterator[dict[str, Any]]:
    """Every text's windows (an empty text has none), longest first, each batch with ``idx``."""
    windows = [layout.wrap(row[s:e]) for row, own in zip(ids, spans, strict=True) if row for s, e in own]
    if not windows:
        return
    lengths = np.fromiter((len(w["input_ids"]) for w in windows), dtype=np.int64, count=len(windows))
    pad = collate(tokenizer)
    for idx in sorted_batches(lengths, batch_size):
        yield {**pad([windows[i] for i in idx]), "idx": idx}
