"""Metrics for generated text: exact match and token F1 (SQuAD's), ROUGE-L, accuracy of label words named in an
answer, F1 of the items of JSON-list answers, and perplexity.

Exact match and token F1 normalise as SQuAD v1.1's official script does (lower-case, punctuation and the articles
a/an/the removed, whitespace collapsed); F1 counts shared tokens with their multiplicity.

ROUGE-L is the F-measure of the longest common subsequence of words, computed as Google's ``rouge-score``
package does by default (``RougeScorer(["rougeL"])``): lower-case, every run of characters other than a–z and
0–9 becomes a space (so accented letters split words), no stemming; an empty side scores 0.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ftcli.metrics.qa import exact_match as squad_exact_match
from ftcli.metrics.qa import f1 as squad_f1

NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def exact_match(prediction: str, reference: str) -> float:
    """SQuAD's exact match against one reference (metrics/qa.py: the official normalisation)."""
    return squad_exact_match(prediction, [reference])


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1 against one reference; when either side normalises to nothing, 1 if both do, else 0."""
    return squad_f1(prediction, [reference])


def named_label(answer: str, labels: Sequence[str]) -> int:
    """The index of the label word an answer names first (whole words, any case; the longer one where two start
    together), or -1 when it names none: how a reader takes "The sentiment is positive." as `positive`."""
    best: tuple[int, int, int] | None = None
    for i, label in enumerate(labels):
        if not label.strip():
            continue
        found = re.search(rf"(?<!\w){re.escape(label.strip())}(?!\w)", answer, flags=re.IGNORECASE)
        if found and (best is None or (found.start(), -len(label)) < (best[0], best[1])):
            best = (found.start(), -len(label), i)
    return -1 if best is None else best[2]


def json_items(text: str) -> list[str] | None:
    """The items of a JSON list (each written canonically, keys sorted), or None when ``text`` holds no JSON list;
    an answer with words around its list is read from its first ``[`` to its last ``]``."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end < start:
        return None
    try:
        value: Any = json.loads(text[start : end + 1])
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    return [json.dumps(item, sort_keys=True, ensure_ascii=False) for item in value]


def json_f1(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Micro precision, recall and F1 of the items of JSON-list answers against the references' (each item an exact
    match, counted with multiplicity); an answer that is not a JSON list predicts nothing."""
    hits = predicted = expected = 0
    for prediction, reference in zip(predictions, references, strict=True):
        gold, guess = Counter(json_items(reference) or []), Counter(json_items(prediction) or [])
        hits += sum((gold & guess).values())
        predicted, expected = predicted + sum(guess.values()), expected + sum(gold.values())
    precision = hits / predicted if predicted else 0.0
    recall = hits / expected if expected else 0.0
    f1 = 2 * hits / (predicted + expected) if predicted + expected else 0.0
    return {"json_f1": f1, "json_precision": precision, "json_recall": recall}


def rouge_tokens(text: str) -> list[str]:
    """Words as rouge-score's default tokenizer sees them."""
    return NON_ALPHANUMERIC.sub(" ", text.lower()).split()


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (one row of the table at a time)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str | Sequence[str]) -> float:
    """ROUGE-L F-measure of one prediction; against several references, the best (as ``score_multi``)."""
    if not isinstance(reference, str):
        return max((rouge_l(prediction, r) for r in reference), default=0.0)
    predicted, target = rouge_tokens(prediction), rouge_tokens(reference)
    if not predicted or not target:
        return 0.0
    common = lcs_length(target, predicted)
    precision, recall = common / len(predicted), common / len(target)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def mean_rouge_l(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """The mean ROUGE-L F-measure over examples (each prediction against its own reference or references)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        return float("nan")
    return float(np.mean([rouge_l(p, r) for p, r in zip(predictions, references, strict=True)]))


def mean_token_nll(nll_sums: Sequence[float] | np.ndarray, token_counts: Sequence[int] | np.ndarray) -> float:
    """The mean negative log-likelihood per token over batches: summed NLLs over summed counts, so a batch with
    more answer tokens weighs more (the mean of batch means would not)."""
    total = float(np.sum(token_counts))
    return float(np.sum(nll_sums)) / total if total else float("nan")


def perplexity(mean_nll: float) -> float:
    """exp(mean token NLL, in nats); infinity where that overflows a float."""
    try:
        return math.exp(mean_nll)
    except OverflowError:
        return math.inf
