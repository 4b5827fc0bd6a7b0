"""Entity tags and entity-level metrics, with seqeval's semantics (its default, conlleval-style mode).

A tag is ``O`` or ``<prefix>-<type>`` with prefix B (begin), I (inside), E (end) or S (single): IOB1 and IOB2 use
B/I, BIOES all four. :func:`entities` reads any of them the way seqeval's ``get_entities`` does (an I- after O or
after another type starts an entity, as conlleval does), so a tagger's imperfect sequences are scored as seqeval
scores them; tests check the numbers against seqeval itself. Pure Python and numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Entity = tuple[str, int, int]  # (type, first word, last word), inclusive as seqeval counts


def split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") for B-PER, ("O", "") for O; anything else ("", tag)."""
    if tag == "O":
        return "O", ""
    prefix, dash, kind = tag.partition("-")
    return (prefix, kind) if dash and len(prefix) == 1 and kind else ("", tag)


def _ends(prev: str, prev_type: str, tag: str, kind: str) -> bool:
    """Whether the entity open before this tag ends here (seqeval's end_of_chunk)."""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != kind


def _starts(prev: str, prev_type: str, tag: str, kind: str) -> bool:
    """Whether an entity starts at this tag (seqeval's start_of_chunk)."""
    if tag in ("B", "S"):
        return True
    if tag in ("I", "E") and prev in ("E", "S", "O"):
        return True
    return tag != "O" and prev_type != kind


def entities(tags: list[str]) -> list[Entity]:
    """The entities of one sentence's tags, read as seqeval reads them."""
    found: list[Entity] = []
    prev, prev_type, begin = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, kind = split_tag(tag)
        if prefix == "O":
            kind = "_"  # seqeval's type of O
        elif not prefix:  # not a tag of any scheme (checked on input); seqeval reads its first character
            prefix, kind = tag[0], tag[1:].split("-", 1)[-1] or "_"
        if _ends(prev, prev_type, prefix, kind):
            found.append((prev_type, begin, i - 1))
        if _starts(prev, prev_type, prefix, kind):
            begin = i
        prev, prev_type = prefix, kind
    return found


def to_iob2(tags: list[str]) -> list[str]:
    """The same entities as IOB2 tags (B- first, I- after), what the model learns and the pipeline groups."""
    out = ["O"] * len(tags)
    for kind, start, end in entities(tags):
        out[start] = f"B-{kind}"
        for i in range(start + 1, end + 1):
            out[i] = f"I-{kind}"
    return out


def iob2_names(types: list[str]) -> list[str]:
    """O, then B-/I- of every entity type (sorted): the model's tags."""
    return ["O", *[f"{p}-{t}" for t in sorted(types) for p in "BI"]]


def _div(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0  # seqeval's zero_division=0 (its default warns and gives 0)


def counts(gold: list[str], pred: list[str]) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Per entity type: (true positives, predicted, true) of one sentence."""
    g, p = set(entities(gold)), set(entities(pred))
    tp: dict[str, int] = {}
    n_pred: dict[str, int] = {}
    n_true: dict[str, int] = {}
    for kind, *_ in g & p:
        tp[kind] = tp.get(kind, 0) + 1
    for kind, *_ in p:
        n_pred[kind] = n_pred.get(kind, 0) + 1
    for kind, *_ in g:
        n_true[kind] = n_true.get(kind, 0) + 1
    return tp, n_pred, n_true


def entity_metrics(gold: list[list[str]], pred: list[list[str]]) -> dict[str, Any]:
    """Entity-level micro precision/recall/F1, macro F1, per-type precision/recall/F1/support, and the tag
    accuracy of every word (seqeval's accuracy_score), over sentences of tags."""
    tp: dict[str, int] = {}
    n_pred: dict[str, int] = {}
    n_true: dict[str, int] = {}
    for g, p in zip(gold, pred, strict=True):
        for total, part in zip((tp, n_pred, n_true), counts(g, p), strict=True):
            for kind, n in part.items():
                total[kind] = total.get(kind, 0) + n
    kinds = sorted(set(n_pred) | set(n_true))
    per_type = {}
    for k in kinds:
        precision, recall = _div(tp.get(k, 0), n_pred.get(k, 0)), _div(tp.get(k, 0), n_true.get(k, 0))
        per_type[k] = {
            "precision": precision,
            "recall": recall,
            "f1": _div(2 * precision * recall, precision + recall),
            "support": n_true.get(k, 0),
        }
    precision, recall = _div(sum(tp.values()), sum(n_pred.values())), _div(sum(tp.values()), sum(n_true.values()))
    words = sum(len(g) for g in gold)
    right = sum(a == b for g, p in zip(gold, pred, strict=True) for a, b in zip(g, p, strict=True))
    return {
        "f1": _div(2 * precision * recall, precision + recall),
        "precision": precision,
        "recall": recall,
        "f1_macro": float(np.mean([t["f1"] for t in per_type.values()])) if per_type else 0.0,
        "accuracy": _div(right, words),
        "per_type": per_type,
        "entities": sum(n_true.values()),
        "examples": len(gold),
    }


def word_nll(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of every word's tag (what training minimises, over first sub-words)."""
    total, words = 0.0, 0
    for out, gold in zip(outputs, labels, strict=True):
        z = out.astype(np.float64)
        top = z.max(-1, keepdims=True)
        log_norm = (top + np.log(np.exp(z - top).sum(-1, keepdims=True)))[:, 0]
        total += float((log_norm - z[np.arange(len(gold)), gold]).sum())
        words += len(gold)
    return total / max(words, 1)
