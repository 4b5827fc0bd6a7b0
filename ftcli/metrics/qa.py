"""Extractive question answering scores by the rules of SQuAD's official evaluation scripts (v1.1, v2.0).

Answers are compared after normalisation: lower case, punctuation removed, the articles a/an/the removed,
whitespace collapsed. Exact match is 1 when the normalised strings are equal; F1 is the harmonic mean of
token precision and recall over bags of tokens. Both take the maximum over a question's gold answers.

Unanswerable questions (v2.0): a question with no gold answer is unanswerable. When scoring, gold answers
that normalise to nothing are dropped and a question left with none can only be matched by the empty
string, i.e. by abstaining. For gold answers that all keep some text this is exactly v1.1's rule, so one
scorer serves both.

Scores are fractions in [0, 1] (the scripts print 100×). Keys, and the official v2.0 names they stand for:
``exact_match`` (exact), ``f1``, ``total``; ``has_ans_*`` (HasAns_*), ``no_ans_*`` (NoAns_*);
``best_exact_match`` / ``best_exact_match_thresh`` (best_exact / best_exact_thresh), ``best_f1`` /
``best_f1_thresh``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
PUNCTUATION = frozenset(string.punctuation)  # ASCII only, as in the scripts: "–" or "’" stay


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, drop punctuation, then the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def answer_tokens(text: str) -> list[str]:
    """The tokens F1 counts: the normalised answer split on whitespace."""
    return normalize_answer(text).split()


def gold_answers(golds: Sequence[str]) -> list[str]:
    """v2.0's gold list: answers that normalise to nothing are dropped; none left means unanswerable ([""])."""
    return [g for g in golds if normalize_answer(g)] or [""]


def has_answer(golds: Sequence[str]) -> bool:
    """Whether a question is answerable (the HasAns group): it has a gold answer at all."""
    return len(golds) > 0


def _f1_one(gold: str, prediction: str) -> float:
    gold_tokens, pred_tokens = answer_tokens(gold), answer_tokens(prediction)
    if not gold_tokens or not pred_tokens:  # abstention is right only where there is nothing to find
        return float(gold_tokens == pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(normalize_answer(g) == pred for g in gold_answers(golds)))


def f1(prediction: str, golds: Sequence[str]) -> float:
    """Token F1 of the prediction against its best-matching gold answer."""
    return max(_f1_one(g, prediction) for g in gold_answers(golds))


def question_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Exact match and F1 of each question (the rows a bootstrap resamples)."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} questions")
    em = np.array([exact_match(p, g) for p, g in zip(predictions, golds, strict=True)], dtype=np.float64)
    f = np.array([f1(p, g) for p, g in zip(predictions, golds, strict=True)], dtype=np.float64)
    return em, f


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Exact match and F1 over all questions; with unanswerable questions among them, the HasAns/NoAns split.

    Args:
        predictions: one answer text per question; "" means the model abstains.
        golds: each question's gold answer texts; an empty list marks an unanswerable question.
    """
    em, f = question_scores(predictions, golds)
    out: dict[str, float] = {"exact_match": _mean(em), "f1": _mean(f), "total": float(len(em))}
    answerable = np.array([has_answer(g) for g in golds], dtype=bool)
    if answerable.all():  # v1.1 data: the split would repeat the totals
        return out
    for prefix, rows in (("has_ans", answerable), ("no_ans", ~answerable)):
        if rows.any():  # the official script leaves out a group with no question
            out |= {f"{prefix}_exact_match": _mean(em[rows]), f"{prefix}_f1": _mean(f[rows])}
            out[f"{prefix}_total"] = float(rows.sum())
    return out


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else 0.0


def apply_no_answer_threshold(predictions: Sequence[str], na_scores: Sequence[float], threshold: float) -> list[str]:
    """The official rule: a question abstains ("") when its no-answer score is above ``threshold``."""
    return ["" if s > threshold else p for p, s in zip(predictions, na_scores, strict=True)]


def find_best_thresh(
    predictions: Sequence[str],
    scores: Sequence[float],
    na_scores: Sequence[float],
    answerable: Sequence[bool],
    initial_thresh: float = 0.0,
) -> tuple[float, float]:
    """The official v2.0 search for the no-answer threshold that maximises a score; (best score, threshold).

    It starts from every question abstaining (the unanswerable ones right), then lets questions answer in
    rising order of no-answer score: an answerable one adds its score, an unanswerable one with a non-empty
    prediction costs 1. The threshold is the no-answer score of the last question let in at the best total,
    or ``initial_thresh`` when abstaining everywhere is best (the script's 0.0; pass ``-inf`` for raw logit
    differences, where 0.0 does not mean "everything abstains"). As in the script, tied no-answer scores are
    let in one at a time, and stable sorting keeps the input order among ties.

    Args:
        predictions: each question's best non-empty answer (what it says when it does not abstain).
        scores: each question's exact match or F1 for that answer.
        na_scores: each question's no-answer score; higher means more likely unanswerable.
        answerable: whether each question has a gold answer.
        initial_thresh: the threshold reported when no question should answer.
    """
    n = len(scores)
    if not (len(predictions) == len(na_scores) == len(answerable) == n) or n == 0:
        raise ValueError("find_best_thresh needs one prediction, score, no-answer score and flag per question")
    current: float = sum(1 for a in answerable if not a)
    best = current
    best_thresh = initial_thresh
    for i in sorted(range(n), key=lambda k: na_scores[k]):
        # the script tests the raw prediction string here, not its normalised form
        current += scores[i] if answerable[i] else (-1 if predictions[i] else 0)
        if current > best:
            best, best_thresh = current, na_scores[i]
    return best / n, float(best_thresh)


def best_thresholds(
    predictions: Sequence[str], golds: Sequence[Sequence[str]], na_scores: Sequence[float], initial_thresh: float = 0.0
) -> dict[str, Any]:
    """Best exact match and F1 over no-answer thresholds, with the thresholds (official v2.0 keys, renamed).

    ``predictions`` are the best non-empty answers, before any threshold is applied.
    """
    em, f = question_scores(predictions, golds)
    answerable = [has_answer(g) for g in golds]
    best_em, em_thresh = find_best_thresh(predictions, list(em), na_scores, answerable, initial_thresh)
    best_f1, f1_thresh = find_best_thresh(predictions, list(f), na_scores, answerable, initial_thresh)
    return {
        "best_exact_match": best_em,
        "best_exact_match_thresh": em_thresh,
        "best_f1": best_f1,
        "best_f1_thresh": f1_thresh,
    }
