"""Which way a metric is better, and which values of a metrics dict are numbers."""

from __future__ import annotations

from typing import Any

# Metrics that are minimised; every other metric is maximised (checkpoints/best, sweeps, the leaderboard).
LOWER_IS_BETTER = frozenset({"loss", "mse", "mae", "cer", "wer"})


def is_better(metric: str, new: float, best: float | None) -> bool:
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics dict (what metrics.jsonl, trackers and sweeps take)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
