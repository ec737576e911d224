"""A log-bucketed latency sketch (the DDSketch idea): quantiles within 1 % relative
error in bounded memory, whatever the number of samples."""

from __future__ import annotations

import math
from math import ceil, log

RELATIVE_ACCURACY = 0.01
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_PER_LOG = 1 / math.log(_GAMMA)
# Samples are clamped to [1 µs, 1 day]: at most ~1,500 buckets per sketch.
_MIN_SECONDS = 1e-6
_MAX_SECONDS = 86_400.0
_MIN_KEY = ceil(log(_MIN_SECONDS) * _PER_LOG)
_MAX_KEY = ceil(log(_MAX_SECONDS) * _PER_LOG)


class LatencySketch:
    """Count, sum, max and quantiles of durations in seconds."""

    __slots__ = ("_buckets", "count", "max", "total")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        # On every monitored call: plain comparisons and module-level names, no min()/max().
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds
        if seconds <= _MIN_SECONDS:
            key = _MIN_KEY
        elif seconds >= _MAX_SECONDS:
            key = _MAX_KEY
        else:
            key = ceil(log(seconds) * _PER_LOG)
        buckets = self._buckets
        buckets[key] = buckets.get(key, 0) + 1

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0 <= q <= 1), 0.0 when empty."""
        if not self.count:
            return 0.0
        rank = q * (self.count - 1)
        seen = 0
        for key in sorted(self._buckets):
            seen += self._buckets[key]
            if seen > rank:
                # the bucket's midpoint (in relative terms) keeps the error under the accuracy
                return min(2 * _GAMMA**key / (_GAMMA + 1), self.max)
        return self.max

    def merge(self, other: LatencySketch) -> None:
        for key, count in other._buckets.items():
            self._buckets[key] = self._buckets.get(key, 0) + count
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def summary(self) -> dict[str, float]:
        mean = self.total / self.count if self.count else 0.0
        return {
            "mean": mean,
            "p50": self.quantile(0.5),
            "p95": self.quantile(0.95),
            "p99": self.quantile(0.99),
            "max": self.max,
        }
