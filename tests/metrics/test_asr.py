"""WER and CER: hand-counted cases, and jiwer's numbers on random corpora (whitespace oddities included)."""

from __future__ import annotations

import numpy as np
import pytest

from ftcli.metrics.asr import cer, chars, edit_distance, error_rate, wer, words


def test_edit_distance_counts_by_hand() -> None:
    assert edit_distance("kitten", "sitting") == 3  # k→s, e→i, +g
    assert edit_distance("flaw", "lawn") == 2  # -f, +n
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "") == 3
    assert edit_distance("same", "same") == 0
    assert edit_distance(["turn", "left"], ["turn", "right", "now"]) == 2


def test_corpus_rates_sum_edits_before_dividing() -> None:
    refs, hyps = ["one two three four", "go"], ["one too three four", "stop go now"]
    assert wer(refs, hyps) == pytest.approx(3 / 5)  # 1 substitution + 2 insertions over 5 reference words
    # not the mean of per-utterance rates (1/4 and 2/1)
    assert wer(refs, hyps) != pytest.approx((1 / 4 + 2 / 1) / 2)
    assert cer(["ab cd"], [" ab cd\n"]) == 0.0  # outer whitespace does not count
    assert cer(["ab cd"], ["abcd"]) == pytest.approx(1 / 5)  # the space between words does
    assert cer(["ab cd"], ["ab  cd"]) == pytest.approx(1 / 5)  # and so does a repeated one (jiwer 4)


def test_whitespace_rules() -> None:
    assert words("  turn   left ") == ["turn", "left"]
    assert chars(" a  b ") == ["a", " ", " ", "b"]
    assert wer([""], [""]) == 0.0
    assert wer(["", ""], ["a b", "c"]) == 3.0  # no reference words at all: jiwer gives the insertion count


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2 references but 1"):
        wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="unit"):
        error_rate(["a"], ["a"], "phone")


def _sentence(rng: np.random.Generator, vocab: list[str]) -> str:
    seps = [" ", " ", " ", "  ", "\t "]
    n = int(rng.integers(0, 7))
    body = "".join(str(rng.choice(vocab)) + str(rng.choice(seps)) for _ in range(n))
    return str(rng.choice(["", " "])) + body


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_jiwer(seed: int) -> None:
    jiwer = pytest.importorskip("jiwer")
    rng = np.random.default_rng(seed)
    vocab = ["go", "stop", "left", "lef", "right", "up", "on", "off", "seven", "sevn"]
    refs = [_sentence(rng, vocab) for _ in range(40)]
    hyps = [_sentence(rng, vocab) for _ in range(40)]
    refs[0] = "turn left"  # jiwer 4 accepts empty references, but not a corpus of them only
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps))
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps))
