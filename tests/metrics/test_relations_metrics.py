"""TACRED scores against cases counted by hand with the official scorer's rules, and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from ftcli.metrics.relations import micro_f1, relation_counts, relation_table, tacred_scores

NO = "no_relation"
# row by row (gold / guess): A/A right; A/B wrong; B/B right; no/A a false guess; no/no nothing;
# B/no a miss; A/A right → correct 3, guessed 5 (A 3, B 2), gold 5 (A 3, B 2)
GOLDS = ["A", "A", "B", NO, NO, "B", "A"]
GUESSES = ["A", "B", "B", "A", NO, NO, "A"]


def test_counts_leave_no_relation_out() -> None:
    correct, guessed, gold = relation_counts(GOLDS, GUESSES)
    assert (dict(correct), dict(guessed), dict(gold)) == ({"A": 2, "B": 1}, {"A": 3, "B": 2}, {"A": 3, "B": 2})


def test_micro_and_macro_scores() -> None:
    # micro P = R = 3/5; per relation A: 2/3 both ways, B: 1/2 → macro F1 (2/3 + 1/2) / 2 = 7/12
    assert tacred_scores(GOLDS, GUESSES) == pytest.approx(
        {"precision": 0.6, "recall": 0.6, "f1": 0.6, "macro_f1": 7 / 12}
    )


def test_the_table_lists_gold_relations_with_their_counts() -> None:
    table = relation_table(GOLDS, GUESSES)
    assert [r["relation"] for r in table] == ["A", "B"]
    assert table[0] == pytest.approx(
        {"relation": "A", "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "correct": 2, "guessed": 3, "gold": 3}
    )
    assert (table[1]["correct"], table[1]["guessed"], table[1]["gold"]) == (1, 2, 2)


def test_always_no_relation_scores_zero_f1_with_precision_one() -> None:
    assert tacred_scores(GOLDS, [NO] * len(GOLDS)) == {"precision": 1.0, "recall": 0.0, "f1": 0.0, "macro_f1": 0.0}
    assert relation_table(["A"], [NO])[0]["precision"] == 1.0  # nothing guessed is not a wrong guess


def test_a_relation_only_guessed_counts_against_precision_but_has_no_row() -> None:
    scores = tacred_scores(["A", NO], ["C", "C"])
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.0, 0.0, 0.0)
    assert [r["relation"] for r in relation_table(["A", NO], ["C", "C"])] == ["A"]


def test_without_gold_relations() -> None:
    assert tacred_scores([NO, NO], [NO, "A"]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "macro_f1": 0.0}
    assert tacred_scores([NO, NO], [NO, NO])["precision"] == 1.0


def test_integer_labels_and_the_vectorised_micro_f1_agree_with_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 5, 400), rng.integers(0, 5, 400)
    preds[:150] = labels[:150]  # some right answers
    expected = metrics.f1_score(labels, preds, labels=[1, 2, 3, 4], average="micro")  # 0 = no relation
    assert micro_f1(0)(labels, preds) == pytest.approx(expected)
    assert tacred_scores(labels.tolist(), preds.tolist(), negative=0)["f1"] == pytest.approx(expected)
    macro = metrics.f1_score(labels, preds, labels=[1, 2, 3, 4], average="macro")
    assert tacred_scores(labels.tolist(), preds.tolist(), negative=0)["macro_f1"] == pytest.approx(macro)
