"""How far to trust the numbers: calibration (ECE, reliability bins, temperature scaling) and
bootstrap confidence intervals. NumPy/SciPy only; no torch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ftcli.metrics.classification import accuracy, macro_f1, nll, softmax


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, list[float]]:
    """Equal-width confidence bins of the predicted class: count, mean confidence and accuracy per bin."""
    conf = probs.max(-1)
    correct = (probs.argmax(-1) == labels).astype(np.float64)
    # bin i holds (i/bins, (i+1)/bins]; a confidence of exactly 0 cannot occur (max of a softmax ≥ 1/k)
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    sum_conf = np.bincount(which, weights=conf, minlength=bins)
    sum_correct = np.bincount(which, weights=correct, minlength=bins)
    safe = np.maximum(count, 1)
    return {
        "edges": np.linspace(0, 1, bins + 1).tolist(),
        "count": count.astype(int).tolist(),
        "confidence": (sum_conf / safe).tolist(),
        "accuracy": (sum_correct / safe).tolist(),
    }


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE (Guo et al. 2017): the count-weighted mean |accuracy − confidence| over equal-width bins."""
    r = reliability_bins(probs, labels, bins)
    count = np.asarray(r["count"], dtype=np.float64)
    gap = np.abs(np.asarray(r["accuracy"]) - np.asarray(r["confidence"]))
    return float((count * gap).sum() / max(count.sum(), 1))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 that minimises the NLL of softmax(logits / T) (one scalar: argmax unchanged)."""
    from scipy.optimize import minimize_scalar

    # search log T: the NLL is smooth there and T stays positive; [1/100, 100] covers any sane model
    res = minimize_scalar(lambda lt: nll(logits, labels, float(np.exp(lt))), bounds=(-4.6, 4.6), method="bounded")
    return float(np.exp(res.x))


def bootstrap_ci(
    labels: np.ndarray,
    preds: np.ndarray,
    metrics: Mapping[str, Callable[[np.ndarray, np.ndarray], float]],
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals: resample examples with replacement ``samples`` times."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    values: dict[str, list[float]] = {k: [] for k in metrics}
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        for name, fn in metrics.items():
            values[name].append(fn(labels[idx], preds[idx]))
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return {k: (float(np.percentile(v, lo)), float(np.percentile(v, hi))) for k, v in values.items()}


def calibration_report(
    logits: np.ndarray, labels: np.ndarray, bins: int, bootstrap: int, seed: int = 0
) -> dict[str, Any]:
    """ECE, reliability bins and bootstrap intervals of accuracy and macro F1 for one set of logits."""
    probs = softmax(logits)
    out: dict[str, Any] = {
        "ece": expected_calibration_error(probs, labels, bins),
        "reliability": reliability_bins(probs, labels, bins),
    }
    if bootstrap > 0:
        fns = {"accuracy": accuracy, "f1_macro": macro_f1(logits.shape[-1])}
        out["ci95"] = {
            k: list(v) for k, v in bootstrap_ci(labels, probs.argmax(-1), fns, bootstrap, 0.95, seed).items()
        }
    return out


Split = tuple[np.ndarray, np.ndarray]  # (logits, integer labels) of some rows


def halves(logits: np.ndarray, labels: np.ndarray, seed: int) -> tuple[Split, Split]:
    """A seeded half of the rows to fit on, and the other half to judge on (never the fitting rows)."""
    perm = np.random.default_rng(seed).permutation(len(labels))
    fit, held = perm[: len(perm) // 2], perm[len(perm) // 2 :]
    return (logits[fit], labels[fit]), (logits[held], labels[held])


def temperature_scaling(fit: Split, held: Split, bins: int) -> dict[str, Any]:
    """One temperature fitted by NLL on ``fit``; ECE and reliability bins before → after on ``held``."""
    t = fit_temperature(*fit)
    logits, labels = held
    return {
        "temperature": t,
        "ece_before": expected_calibration_error(softmax(logits), labels, bins),
        "ece_after": expected_calibration_error(softmax(logits, t), labels, bins),
        "reliability_before": reliability_bins(softmax(logits), labels, bins),
        "reliability_after": reliability_bins(softmax(logits, t), labels, bins),
    }
