"""Text inputs: tokenise (cached by datasets), pad per batch, and the cache keys that depend on both."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow.compute as pc
from transformers import DataCollatorWithPadding

from ftcli.data.batching import column_of, loader, sorted_batches


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
        blob = backend.to_str()  # deterministic (vocab in id order); parsing it back is not free
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

    ids = column_of(ds, "input_ids", "arrow")
    return np.asarray(pc.list_value_length(ids).to_numpy(), dtype=np.int64)


def text_batches(
    tokenizer: Any, texts: list[str], pairs: list[str] | None, max_length: int, batch_size: int
) -> Iterator[dict[str, Any]]:
    """Padded tensor batches over raw texts, longest first, each with ``idx`` (its rows' positions)."""
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    lengths = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(texts))
    collate = collator(tokenizer)
    for idx in sorted_batches(lengths, batch_size):
        yield {**collate([{k: enc[k][i] for k in enc} for i in idx]), "idx": idx}


def eval_loader(ds: Any, tokenizer: Any, batch_size: int) -> Any:
    """Length-sorted inference batches that carry each example's index (to restore the order)."""
    lengths = lengths_of(ds)
    ds = ds.add_column("idx", list(range(len(ds))))
    return loader(ds, sorted_batches(lengths, batch_size), collator(tokenizer))


def collator(tokenizer: Any) -> Any:

    return DataCollatorWithPadding(tokenizer)
