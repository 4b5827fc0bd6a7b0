"""ROUGE-L as the rouge-score package computes it; perplexity from token NLLs."""

from __future__ import annotations

import math
import random

import pytest

from ftcli.metrics.generation import lcs_length, mean_rouge_l, mean_token_nll, perplexity, rouge_l, rouge_tokens


def test_tokens_like_rouge_score() -> None:
    assert rouge_tokens("The CAT-sat, on 2 mats!") == ["the", "cat", "sat", "on", "2", "mats"]
    assert rouge_tokens("naïve café") == ["na", "ve", "caf"]  # non-ASCII letters separate words
    assert rouge_tokens(" ... ") == []


def test_rouge_l_by_hand() -> None:
    # LCS of "the cat sat on the mat" and "the cat lay on a mat": the cat on mat = 4; P = 4/6, R = 4/6
    assert rouge_l("the cat lay on a mat", "the cat sat on the mat") == pytest.approx(4 / 6)
    # prediction "cat" (1 word) vs "the cat sat" (3): P = 1, R = 1/3, F = 2 * 1/3 / (4/3) = 0.5
    assert rouge_l("Cat!", "the cat sat") == pytest.approx(0.5)
    assert rouge_l("", "the cat") == 0.0 and rouge_l("dog", "the cat") == 0.0
    assert rouge_l("the cat", ["a dog", "the cat"]) == 1.0  # best of several references
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # the textbook example (CLRS)
    assert mean_rouge_l(["the cat", "dog"], ["the cat", "the cat"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        mean_rouge_l(["a", "b"], ["a"])


def test_rouge_l_equals_rouge_score() -> None:
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    words = ["the", "The", "cat", "sat,", "on", "mat.", "a", "dog!", "naïve", "café", "2", "x-y", "\n", "Paris"]
    rng = random.Random(0)
    pairs = [("The capital of France is Paris.", "Paris"), ("", "a"), ("a", ""), ("...", "the cat")]
    for _ in range(300):
        pairs.append(tuple(" ".join(rng.choices(words, k=rng.randint(0, 12))) for _ in range(2)))  # type: ignore[arg-type]
    for prediction, reference in pairs:
        want = scorer.score(reference, prediction)["rougeL"].fmeasure  # score(target, prediction)
        assert rouge_l(prediction, reference) == pytest.approx(want, abs=1e-12), (prediction, reference)
    predictions, references = [p for p, _ in pairs], [r for _, r in pairs]
    want_mean = sum(scorer.score(r, p)["rougeL"].fmeasure for p, r in pairs) / len(pairs)
    assert mean_rouge_l(predictions, references) == pytest.approx(want_mean)


def test_perplexity() -> None:
    # a model that gives the answer tokens probability 1/2 and 1/4: mean NLL (ln 2 + ln 4) / 2, perplexity √8
    assert perplexity((math.log(2) + math.log(4)) / 2) == pytest.approx(math.sqrt(8))
    assert perplexity(math.log(49152)) == pytest.approx(49152)  # uniform over SmolLM2's vocabulary
    assert perplexity(1e6) == math.inf


def test_mean_token_nll_weighs_tokens_not_batches() -> None:
    # batch 1: 1 token with NLL 3; batch 2: 3 tokens with NLL 1 each → (3 + 3) / 4, not (3 + 1) / 2
    assert mean_token_nll([3.0, 3.0], [1, 3]) == pytest.approx(1.5)
    assert math.isnan(mean_token_nll([], []))
