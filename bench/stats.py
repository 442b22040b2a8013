"""Percentiles and rates of latency samples: the only maths the benchmarks report."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) with linear interpolation between closest ranks.

    The same definition as numpy's default (`linear`): rank `q/100 * (n-1)` of the sorted
    samples. Raises `ValueError` for no samples or `q` outside 0-100.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(samples)
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency percentiles in milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of_seconds(cls, samples: Sequence[float]) -> Latency:
        """Summarise samples given in seconds."""
        return cls(
            count=len(samples),
            p50_ms=round(percentile(samples, 50) * 1000, 2),
            p99_ms=round(percentile(samples, 99) * 1000, 2),
            max_ms=round(max(samples) * 1000, 2),
        )

    def as_dict(self) -> dict[str, float]:
        """The JSON fields (`count`, `p50_ms`, `p99_ms`, `max_ms`)."""
        return {
            "count": self.count,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        }


def rate(count: float, seconds: float) -> float:
    """`count` per second, 0 when no time passed."""
    return count / seconds if seconds > 0 else 0.0


def ratio(value: float, baseline: float) -> float:
    """value / baseline rounded to 3 places; 0 when the baseline is 0 (nothing to compare)."""
    return round(value / baseline, 3) if baseline > 0 else 0.0


def histogram_quantile(
    before: Mapping[float, float], after: Mapping[float, float], q: float
) -> float | None:
    """The upper bound of the bucket holding the `q`-quantile of what a Prometheus histogram
    observed between two snapshots of its cumulative buckets (`le` -> count; the last is
    +Inf); None when it observed nothing."""
    bounds = sorted(after)
    if not bounds:
        return None
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            return bound
    return bounds[-1]
