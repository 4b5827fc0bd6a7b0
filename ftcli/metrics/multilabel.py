"""Multi-label metrics in numpy: micro/macro precision, recall and F1, subset accuracy, Hamming loss, per-label
tables, thresholds tuned per label, and calibration of every (row, label) decision. scikit-learn gives the same
numbers (tests check)."""

from __future__ import annotations

from typing import Any

import numpy as np

GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)  # candidate thresholds when tuning


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x.astype(np.float64)))  # no overflow for large |x|


def bce(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy of sigmoid(logits) over every (row, label), as torch computes it."""
    x = logits.astype(np.float64)
    return float((np.logaddexp(0.0, x) - labels * x).mean())


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def multilabel_metrics(labels: np.ndarray, preds: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Micro and macro precision/recall/F1, subset accuracy, Hamming loss and per-label P/R/F1/support of
    multi-hot ``preds`` against multi-hot ``labels`` ([rows, labels] each)."""
    y, p = labels.astype(bool), preds.astype(bool)
    tp, fp, fn = (y & p).sum(0), (~y & p).sum(0), (y & ~p).sum(0)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    TP, FP, FN = tp.sum(), fp.sum(), fn.sum()  # noqa: N806  (the totals of tp, fp, fn)
    return {
        "f1_micro": float(_ratio(2 * TP, 2 * TP + FP + FN)),
        "f1_macro": float(f1.mean()),
        "subset_accuracy": float((y == p).all(1).mean()),
        "precision_micro": float(_ratio(TP, TP + FP)),
        "recall_micro": float(_ratio(TP, TP + FN)),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "hamming_loss": float((y != p).mean()),
        "per_label": {
            n: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(y[:, i].sum()),
            }
            for i, n in enumerate(names)
        },
        "examples": len(labels),
    }


def tune_thresholds(logits: np.ndarray, labels: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per label, the threshold on GRID with the best F1 (ties: the one nearest the current threshold);
    a label without a positive example keeps its current threshold."""
    probs, y = sigmoid(logits), labels.astype(bool)
    best, best_f1 = start.astype(np.float64).copy(), np.full(len(start), -1.0)
    for t in sorted(GRID, key=lambda g: abs(g - 0.5)):  # nearest 0.5 first: a tie keeps the nearer one
        p = probs >= t
        tp, fp, fn = (y & p).sum(0), (~y & p).sum(0), (y & ~p).sum(0)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        better = (f1 > best_f1 + 1e-12) & (y.sum(0) > 0)
        best[better], best_f1[better] = t, f1[better]
    return best


def as_two_classes(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[rows, labels] logits → two-class logits [rows·labels, 2] (softmax of (0, z) is sigmoid(z)), targets."""
    z = logits.astype(np.float64).reshape(-1)
    return np.stack([np.zeros_like(z), z], 1), labels.reshape(-1).astype(np.int64)


def binary_calibration(logits: np.ndarray, labels: np.ndarray, bins: int) -> dict[str, Any]:
    from ftcli.metrics.calibration import expected_calibration_error, reliability_bins
    from ftcli.metrics.classification import softmax

    two, y = as_two_classes(logits, labels)
    probs = softmax(two)
    return {"ece": expected_calibration_error(probs, y, bins), "reliability": reliability_bins(probs, y, bins)}
