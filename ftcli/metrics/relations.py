"""Relation extraction scores by the rules of TACRED's official scorer, plus macro F1.

The scorer counts, per relation, how often it was guessed, how often it is the gold label, and how often a
guess was right, leaving ``no_relation`` out of all three: a ``no_relation`` guess is no guess, a
``no_relation`` gold is nothing to find. Micro precision is correct / guessed (1.0 when nothing was guessed),
micro recall correct / gold (0.0 when there is no gold relation). So a model that always says
``no_relation`` scores precision 1, recall 0, F1 0.

The per-relation table uses the same rules per row and lists the relations that occur as gold labels, as
the scorer prints them; macro F1 (not in the scorer) is the mean F1 over those rows. Scores are fractions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

NO_RELATION = "no_relation"


def relation_counts(
    golds: Sequence[Hashable], guesses: Sequence[Hashable], negative: Hashable = NO_RELATION
) -> tuple[Counter, Counter, Counter]:
    """(correct, guessed, gold) counts per relation, as the official scorer counts them."""
    if len(golds) != len(guesses):
        raise ValueError(f"{len(guesses)} predictions for {len(golds)} gold labels")
    correct: Counter = Counter()
    guessed: Counter = Counter()
    gold: Counter = Counter()
    for g, p in zip(golds, guesses, strict=True):
        if p != negative:
            guessed[p] += 1
        if g != negative:
            gold[g] += 1
        if g != negative and g == p:
            correct[g] += 1
    return correct, guessed, gold


def _prf(correct: int, guessed: int, gold: int) -> tuple[float, float, float]:
    # the scorer's conventions: no guess is not a wrong guess (precision 1), nothing to find is recall 0
    precision = correct / guessed if guessed > 0 else 1.0
    recall = correct / gold if gold > 0 else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f


def relation_table(
    golds: Sequence[Hashable], guesses: Sequence[Hashable], negative: Hashable = NO_RELATION
) -> list[dict[str, Any]]:
    """One row per gold relation (sorted): precision, recall, F1, and the correct/guessed/gold counts."""
    correct, guessed, gold = relation_counts(golds, guesses, negative)
    rows = []
    for relation in sorted(gold, key=str):
        p, r, f = _prf(correct[relation], guessed[relation], gold[relation])
        rows.append(
            {
                "relation": relation,
                "precision": p,
                "recall": r,
                "f1": f,
                "correct": correct[relation],
                "guessed": guessed[relation],
                "gold": gold[relation],
            }
        )
    return rows


def tacred_scores(
    golds: Sequence[Hashable], guesses: Sequence[Hashable], negative: Hashable = NO_RELATION
) -> dict[str, float]:
    """Micro precision, recall and F1 without ``negative`` (TACRED's official numbers), and macro F1.

    Args:
        golds: each example's gold relation (names or ids).
        guesses: each example's predicted relation, in the same order.
        negative: the label that means "no relation" (``no_relation``, or its id).
    """
    correct, guessed, gold = relation_counts(golds, guesses, negative)
    p, r, f = _prf(sum(correct.values()), sum(guessed.values()), sum(gold.values()))
    table = relation_table(golds, guesses, negative)
    macro = float(np.mean([row["f1"] for row in table])) if table else 0.0
    return {"precision": p, "recall": r, "f1": f, "macro_f1": macro}


def micro_f1(negative_id: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """TACRED micro F1 over integer labels, vectorised for a bootstrap that calls it a thousand times."""

    def score(labels: np.ndarray, preds: np.ndarray) -> float:
        guessed = int((preds != negative_id).sum())
        gold = int((labels != negative_id).sum())
        correct = int(((labels == preds) & (labels != negative_id)).sum())
        return _prf(correct, guessed, gold)[2]

    return score
