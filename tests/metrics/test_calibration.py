"""Calibration and intervals on synthetic data whose true answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from ftcli.metrics.calibration import (
    bootstrap_ci,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from ftcli.metrics.classification import macro_f1, softmax


def _two_class(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that put ``conf`` on class 1, and labels that are 1 where ``correct``."""
    probs = np.stack([1 - conf, conf], axis=1)
    return probs, correct.astype(int)


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident() -> None:
    conf = np.full(100, 0.8)
    probs, labels = _two_class(conf, np.arange(100) < 80)  # 80% right at 80% confidence
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    probs, labels = _two_class(np.full(100, 0.99), np.arange(100) < 50)  # 50% right at 99%
    assert expected_calibration_error(probs, labels) == pytest.approx(0.49, abs=1e-9)


def test_reliability_bins_count_every_example_once_including_confidence_one() -> None:
    rng = np.random.default_rng(0)
    conf = np.concatenate([rng.uniform(0.5, 1.0, 500), [1.0, 0.5]])
    probs, labels = _two_class(conf, rng.random(502) < 0.7)
    r = reliability_bins(probs, labels, bins=10)
    assert sum(r["count"]) == 502
    assert r["count"][-1] >= 1 and r["count"][4] >= 1  # 1.0 → last bin; 0.5 → (0.4, 0.5]
    filled = [i for i, c in enumerate(r["count"]) if c]
    for i in filled:
        assert r["edges"][i] <= r["confidence"][i] <= r["edges"][i + 1]


def test_temperature_fit_recovers_the_temperature_that_generated_the_labels() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, size=(20000, 3))
    true_t = 2.0
    p = softmax(logits, true_t)
    labels = (rng.random(len(p))[:, None] > np.cumsum(p, 1)).sum(1)  # sample from softmax(logits / 2)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.05)
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, t), labels)
    assert after < before / 3


def test_macro_f1_agrees_with_sklearn() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    y, p = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    p[p == 3] = 2  # a class never predicted: its F1 is 0, as sklearn's zero_division=0 says
    assert macro_f1(4)(y, p) == pytest.approx(f1_score(y, p, average="macro", labels=range(4), zero_division=0))


def test_bootstrap_interval_covers_the_estimate_with_the_textbook_width() -> None:
    rng = np.random.default_rng(3)
    n = 1000
    y = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.8, y, 1 - y)  # ~80% accurate
    acc = float((pred == y).mean())
    lo, hi = bootstrap_ci(y, pred, {"acc": lambda a, b: float((a == b).mean())}, samples=1000)["acc"]
    assert lo < acc < hi
    normal_width = 2 * 1.96 * np.sqrt(acc * (1 - acc) / n)  # ≈ 0.05
    assert hi - lo == pytest.approx(normal_width, rel=0.15)


def test_calibration_report_without_bootstrap_has_no_interval() -> None:
    logits = np.random.default_rng(4).normal(size=(50, 2))
    labels = np.arange(50) % 2
    assert "ci95" not in calibration_report(logits, labels, bins=10, bootstrap=0)
    assert set(calibration_report(logits, labels, bins=10, bootstrap=50)["ci95"]) == {"accuracy", "f1_macro"}
