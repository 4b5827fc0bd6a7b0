"""Speech recognition metrics in numpy: word and character error rates, corpus-level (the edits of every
utterance over the reference length of all of them), as jiwer computes them (tests check against jiwer, which
needs rapidfuzz; this needs nothing)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_SPACES = re.compile(r"\s\s+")


def words(text: str) -> list[str]:
    """Words as jiwer's default transform splits them: runs of whitespace become one space, then split on it."""
    return [w for w in _SPACES.sub(" ", text).strip().split(" ") if w]


def chars(text: str) -> list[str]:
    """Characters as jiwer's CER counts them: every character, spaces between words included, but not the outer
    whitespace."""
    return list(text.strip())


def edit_distance(ref: Sequence[object], hyp: Sequence[object]) -> int:
    """Levenshtein distance (substitutions + deletions + insertions, each costing 1) between two sequences."""
    if not ref or not hyp:
        return len(ref) + len(hyp)
    vocab: dict[object, int] = {}
    a = np.array([vocab.setdefault(t, len(vocab)) for t in ref], dtype=np.int64)
    b = np.array([vocab.setdefault(t, len(vocab)) for t in hyp], dtype=np.int64)
    cols = np.arange(len(b) + 1, dtype=np.int64)
    row = cols.copy()  # distances from the empty prefix of ref
    for i, token in enumerate(a, start=1):
        # Deletion and substitution come from the previous row at once; insertion runs along this row, and
        # min over k <= j of (cand[k] + j - k) is a running minimum of cand[k] - k, so no Python inner loop.
        cand = np.empty_like(row)
        cand[0] = i
        cand[1:] = np.minimum(row[1:] + 1, row[:-1] + (b != token))
        row = np.minimum.accumulate(cand - cols) + cols
    return int(row[-1])


def error_rate(references: Sequence[str], hypotheses: Sequence[str], unit: str = "word") -> float:
    """Corpus-level error rate: the edits of all utterances over the length of all references (``unit``:
    ``word`` for WER, ``char`` for CER). With no reference unit at all it is the count of inserted units, as
    in jiwer.

    Raises:
        ValueError: the two lists differ in length, or the unit is neither ``word`` nor ``char``.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', not {unit!r}")
    split = words if unit == "word" else chars
    edits = total = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = split(ref), split(hyp)
        edits += edit_distance(r, h)
        total += len(r)
    return edits / total if total else float(edits)


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Word error rate over a corpus: (S + D + I) / N words."""
    return error_rate(references, hypotheses, "word")


def cer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Character error rate over a corpus (spaces between words count as characters)."""
    return error_rate(references, hypotheses, "char")
