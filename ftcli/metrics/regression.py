"""Regression metrics in numpy: Pearson, Spearman (ties as scipy ranks them), MSE, MAE."""

from __future__ import annotations

from typing import Any

import numpy as np


def pearson(targets: np.ndarray, preds: np.ndarray) -> float:
    """Pearson's r; 0 where it is undefined (a constant prediction or target)."""
    t, p = targets.astype(np.float64) - targets.mean(), preds.astype(np.float64) - preds.mean()
    denom = np.sqrt((t * t).sum() * (p * p).sum())
    return float((t * p).sum() / denom) if denom > 0 else 0.0


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1…n, ties sharing their mean rank (as scipy.stats.rankdata's default)."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(sorted_x[1:] != sorted_x[:-1]) + 1]
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0  # 1-based ranks start+1 … end, averaged
    out = np.empty(len(x), dtype=np.float64)
    out[order] = np.repeat(mean_rank, ends - starts)
    return out


def spearman(targets: np.ndarray, preds: np.ndarray) -> float:
    return pearson(ranks(targets), ranks(preds))


def regression_metrics(targets: np.ndarray, preds: np.ndarray) -> dict[str, Any]:
    """Pearson, Spearman, MSE (also the training loss) and MAE of predicted scores."""
    err = preds.astype(np.float64) - targets.astype(np.float64)
    mse = float((err * err).mean())
    return {
        "pearson": pearson(targets, preds),
        "spearman": spearman(targets, preds),
        "mse": mse,
        "mae": float(np.abs(err).mean()),
        "loss": mse,
        "examples": len(targets),
    }
