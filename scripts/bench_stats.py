"""The benchmark's statistics: paired per-round ratios and differences, their medians/means and bootstrap intervals.

Standard library only (the bench's parent process and its tests import it without numpy). A speed-up is
claimed only when the 95% interval of the median paired ratio lies above 1.0; an accuracy difference only
when the interval of the mean paired difference excludes 0.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

RESAMPLES = 10_000  # bootstrap resamples: the interval's ends move by < 0.5% between seeds at n = 7
LEVEL = 0.95


@dataclass
class Interval:
    """A statistic of paired values with its percentile-bootstrap interval (None when n < 2)."""

    values: list[float]
    estimate: float
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def bootstrap(
    values: Sequence[float], stat: Callable[[Sequence[float]], float], seed: int = 0, resamples: int = RESAMPLES
) -> Interval:
    """``stat`` of ``values`` and the percentile bootstrap interval at :data:`LEVEL` (seeded: a rerun of the
    report on the same numbers prints the same interval). One value has no interval."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values")
    estimate = float(stat(vals))
    if len(vals) < 2:
        return Interval(vals, estimate, None, None)
    rng = random.Random(seed)
    n = len(vals)
    stats = sorted(stat([vals[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    tail = (1 - LEVEL) / 2
    return Interval(vals, estimate, _quantile(stats, tail), _quantile(stats, 1 - tail))


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def speedup(ours_seconds: Sequence[float], peer_seconds: Sequence[float]) -> Interval:
    """Per-round speed-up peer / ours (whole-process seconds of the same round), its median and interval."""
    if len(ours_seconds) != len(peer_seconds):
        raise ValueError(f"unpaired rounds: {len(ours_seconds)} vs {len(peer_seconds)}")
    return bootstrap([p / o for o, p in zip(ours_seconds, peer_seconds, strict=True)], statistics.median)


def rate_ratio(ours_rate: Sequence[float], peer_rate: Sequence[float]) -> Interval:
    """Per-round ratio ours / peer of a rate (samples/s), its median and interval."""
    return bootstrap([o / p for o, p in zip(ours_rate, peer_rate, strict=True)], statistics.median)


def difference(ours: Sequence[float], peer: Sequence[float], scale: float = 100.0) -> Interval:
    """Per-round difference ours − peer (accuracy in points by default, same seed), its mean and interval."""
    if len(ours) != len(peer):
        raise ValueError(f"unpaired rounds: {len(ours)} vs {len(peer)}")
    return bootstrap([scale * (a - b) for a, b in zip(ours, peer, strict=True)], statistics.fmean)


def speed_verdict(iv: Interval) -> str:
    """'faster' / 'slower' only when the interval excludes 1.0; 'parity' when it holds 1.0."""
    if iv.low is None or iv.high is None:
        return "one round: no interval"
    if iv.low > 1.0:
        return "faster"
    if iv.high < 1.0:
        return "slower"
    return "parity"


def accuracy_verdict(iv: Interval) -> str:
    """'higher' / 'lower' only when the interval excludes 0; else 'equal'."""
    if iv.low is None or iv.high is None:
        return "one round: no interval"
    if iv.low > 0.0:
        return "higher"
    if iv.high < 0.0:
        return "lower"
    return "equal"


def meets(iv: Interval, target: float) -> bool:
    """A speed target is met when the median paired ratio reaches it and its interval lies above 1.0."""
    return iv.estimate >= target and iv.low is not None and iv.low > 1.0
