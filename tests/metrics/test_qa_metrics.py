"""SQuAD scores against cases worked out by hand from the official v1.1 / v2.0 scripts' rules."""

from __future__ import annotations

import math

import pytest

from ftcli.metrics.qa import (
    apply_no_answer_threshold,
    best_thresholds,
    exact_match,
    f1,
    find_best_thresh,
    normalize_answer,
    question_scores,
    squad_scores,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Cat's hat!", "cats hat"),  # punctuation goes first, then the article, then extra spaces
        ("An apple, a day", "apple day"),
        ("theatre Anna", "theatre anna"),  # articles only as whole words
        ("A.B.", "ab"),  # "a." is not the article once the dot is gone: "ab"
        ("the—end", "—end"),  # an em dash is not ASCII punctuation: it stays, and bounds the word "the"
        ("  Über\tMünchen \n", "über münchen"),
        ("", ""),
    ],
)
def test_normalize_answer_follows_the_official_order(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_exact_match_takes_the_best_gold_answer() -> None:
    assert exact_match("the Eiffel Tower", ["Eiffel Tower", "tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel Tower", "tower"]) == 0.0
    assert exact_match("Paris.", ["paris"]) == 1.0


def test_f1_counts_shared_tokens_as_a_bag() -> None:
    # "in the city of Paris" → [in, city, of, paris]; against "Paris": P = 1/4, R = 1 → 2·(1/4)/(5/4) = 0.4
    assert f1("in the city of Paris", ["Paris"]) == pytest.approx(0.4)
    # against "city of Paris" as well: 3 shared, P = 3/4, R = 1 → 6/7; the maximum wins
    assert f1("in the city of Paris", ["Paris", "city of Paris"]) == pytest.approx(6 / 7)
    # a repeated token is shared only as often as the gold has it: P = 1/2, R = 1 → 2/3
    assert f1("paris paris", ["Paris"]) == pytest.approx(2 / 3)
    assert f1("Lima", ["Paris"]) == 0.0


def test_abstaining_is_right_only_without_an_answer() -> None:
    assert (exact_match("", []), f1("", [])) == (1.0, 1.0)
    assert (exact_match("Paris", []), f1("Paris", [])) == (0.0, 0.0)
    assert (exact_match("", ["Paris"]), f1("", ["Paris"])) == (0.0, 0.0)
    # a gold answer that normalises to nothing is dropped (v2.0); "Paris" remains, so abstaining is wrong
    assert exact_match("", ["the", "Paris"]) == 0.0
    # only empty-normalising golds left: the question can only be matched by abstaining
    assert exact_match("", ["The"]) == 1.0


def test_v1_scores_are_means_over_questions() -> None:
    scores = squad_scores(["Paris", "in the city of Paris"], [["Paris"], ["Paris", "paris"]])
    assert scores == pytest.approx({"exact_match": 0.5, "f1": 0.7, "total": 2.0})  # F1 (1 + 0.4) / 2


def test_v2_breaks_scores_down_by_answerability() -> None:
    preds = ["Paris", "", "Lima", "", "city of Rome"]
    golds = [["Paris"], ["Rome"], [], [], ["Rome"]]
    # per question EM 1, 0, 0, 1, 0; F1 1, 0, 0, 1, 2·(1/3)/(4/3) = 0.5
    assert squad_scores(preds, golds) == pytest.approx(
        {
            "exact_match": 2 / 5,
            "f1": 2.5 / 5,
            "total": 5.0,
            "has_ans_exact_match": 1 / 3,
            "has_ans_f1": 1.5 / 3,
            "has_ans_total": 3.0,
            "no_ans_exact_match": 1 / 2,
            "no_ans_f1": 1 / 2,
            "no_ans_total": 2.0,
        }
    )
    em, f = question_scores(preds, golds)
    assert em.tolist() == [1, 0, 0, 1, 0] and f.tolist() == pytest.approx([1, 0, 0, 1, 0.5])


def test_the_no_answer_threshold_abstains_above_it() -> None:
    assert apply_no_answer_threshold(["a", "b", "c"], [0.1, 0.5, 0.9], 0.5) == ["a", "b", ""]


# Four questions: (answerable, best non-empty prediction, its score, no-answer score).
# All abstain: 2 right (the unanswerable). Let in by rising no-answer score: q1 +1 → 3 (best, thresh 0.1),
# q2 unanswerable but answered −1 → 2, q3 +0.5 → 2.5, q4 −1 → 1.5. Best 3/4 at 0.1.
ANSWERABLE = [True, False, True, False]
PREDS = ["Paris", "Lima", "city", "Rome"]
SCORES = [1.0, 0.0, 0.5, 0.0]
NA = [0.1, 0.3, 0.6, 0.9]


def test_find_best_thresh_walks_the_no_answer_scores() -> None:
    assert find_best_thresh(PREDS, SCORES, NA, ANSWERABLE) == (0.75, 0.1)
    # the order of the rows does not matter, only their no-answer scores
    order = [3, 1, 0, 2]
    shuffled = [[x[i] for i in order] for x in (PREDS, SCORES, NA, ANSWERABLE)]
    assert find_best_thresh(*shuffled) == (0.75, 0.1)


def test_find_best_thresh_agrees_with_applying_its_threshold() -> None:
    golds = [["Paris"], [], ["city", "the city"], []]
    preds = apply_no_answer_threshold(PREDS, NA, 0.1)
    assert preds == ["Paris", "", "", ""]
    assert squad_scores(preds, golds)["exact_match"] == 0.75


def test_find_best_thresh_when_abstaining_everywhere_is_best() -> None:
    # the answerable question's answer is wrong (0) and the unanswerable one is answered (−1): never better
    args = (["x", "y"], [0.0, 0.0], [0.5, 0.2], [True, False])
    assert find_best_thresh(*args) == (0.5, 0.0)  # the script reports 0.0
    assert find_best_thresh(*args, initial_thresh=-math.inf) == (0.5, -math.inf)


def test_find_best_thresh_keeps_the_scripts_quirks() -> None:
    # tied no-answer scores are let in one at a time: 2/2 is reported at 0.5, though at 0.5 both answer (1/2)
    assert find_best_thresh(["Paris", "x"], [1.0, 0.0], [0.5, 0.5], [True, False]) == (1.0, 0.5)
    # an answer that normalises to nothing ("the") still counts as answered for an unanswerable question
    assert find_best_thresh(["the"], [1.0], [0.3], [False]) == (1.0, 0.0)


def test_best_thresholds_for_exact_match_and_f1() -> None:
    # q1: F1 0.4 ("in the city of Paris" vs "Paris"), EM 0; q2 unanswerable, answered "Lima"
    preds, golds, na = ["in the city of Paris", "Lima"], [["Paris"], []], [-2.0, 1.0]
    # EM: start 1 (q2 abstains); q1 adds 0 → never better → 1/2 at the initial threshold
    # F1: start 1; q1 adds 0.4 → 1.4 (best, thresh −2.0); q2 −1 → 0.4
    assert best_thresholds(preds, golds, na) == pytest.approx(
        {"best_exact_match": 0.5, "best_exact_match_thresh": 0.0, "best_f1": 0.7, "best_f1_thresh": -2.0}
    )
