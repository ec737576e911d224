"""A log-bucketed latency sketch (the DDSketch idea): quantiles within 1 % relative
error in bounded memory, whatever the number of samples, and mergeable.

A sample ``x`` lands in bucket ``ceil(log_gamma(x))`` with ``gamma = 1.01 / 0.99``; a
bucket's midpoint (in relative terms) is within 1 % of every sample in it. Sketches of
different names, outcomes, processes or time buckets merge by adding bucket counts.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import accumulate, repeat
from math import ceil, log2
from operator import add, mul

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_PER_LOG2 = 1 / log2(GAMMA)
# Samples are clamped to [1 µs, 1 day]: at most ~1,300 buckets per sketch.
_MIN_SECONDS = 1e-6
_MAX_SECONDS = 86_400.0
MIN_KEY = ceil(log2(_MIN_SECONDS) * _PER_LOG2)
MAX_KEY = ceil(log2(_MAX_SECONDS) * _PER_LOG2)
_WIDER = {"H": "I", "I": "Q"}  # a count outgrew its counter: the next width (Q: 2**64)
_SPARE = 8  # buckets a sketch's array grows by beyond what it needs now
_WALK = 64  # at most this many buckets are counted by bisection, the rest by log2


def key_of(seconds: float) -> int:
    """The bucket of one sample (the same formula ``bucket_counts`` applies in bulk)."""
    if seconds <= _MIN_SECONDS:
        return MIN_KEY
    if seconds >= _MAX_SECONDS:
        return MAX_KEY
    return ceil(log2(seconds) * _PER_LOG2)


def bucket_counts(samples: Sequence[float]) -> tuple[dict[int, int], float]:
    """``({bucket: count}, max)`` of many samples at once, counted exactly as ``add``
    would, with the per-sample work in C.

    The samples are sorted and each occupied bucket's count found by bisection: a
    dependency's latency over a few hundred calls usually fills few buckets, whatever
    its outliers. Where buckets turn out sparse, the rest goes through ``map`` over
    ``log2``, ``mul`` and ``ceil``, counted by ``Counter``.
    """
    n = len(samples)
    if not n:
        return {}, 0.0
    ordered = sorted(samples)
    highest = ordered[-1]
    if highest <= _MIN_SECONDS:  # sub-microsecond calls all share the lowest bucket
        return {MIN_KEY: n}, highest
    counts: dict[int, int] = {}
    start = 0
    for walked in range(1, _WALK + 1):
        key = key_of(ordered[start])
        end = bisect_right(ordered, _UPPERS[key - MIN_KEY], start)
        counts[key] = end - start
        start = end
        if start == n:
            return counts, highest
        if walked >= 8 and start < 4 * walked:  # sparse buckets: log2 per sample is cheaper
            break
    # ordered[start:] are all above the buckets walked so far, so positive and unseen
    rest = Counter(map(ceil, map(mul, map(log2, ordered[start:]), repeat(_PER_LOG2))))
    for key, count in rest.items():
        edge = MAX_KEY if key > MAX_KEY else key
        counts[edge] = counts.get(edge, 0) + count
    return counts, highest


def _largest_in(key: int) -> float:
    """The largest float ``key_of`` puts in bucket ``key`` (bisection must agree with it)."""
    bound = 2 ** (key / _PER_LOG2)
    while key_of(bound) > key:
        bound = math.nextafter(bound, 0.0)
    while key_of(math.nextafter(bound, math.inf)) <= key:
        bound = math.nextafter(bound, math.inf)
    return bound


# bucket key - MIN_KEY -> the largest sample of that bucket (the last one takes the rest)
_UPPERS = [*(_largest_in(key) for key in range(MIN_KEY, MAX_KEY)), math.inf]


def bucket_value(key: int) -> float:
    """The value a bucket stands for: its midpoint in relative terms."""
    return float(2 * GAMMA**key / (GAMMA + 1))


def bucket_upper(key: int) -> float:
    """The largest sample a bucket holds."""
    return float(GAMMA**key)


class LatencySketch:
    """Count, sum, max and quantiles of durations in seconds.

    Bucket counts live in one array over the range of buckets seen so far (at most
    ~1,300 of them), of 4-byte counters (2-byte with ``compact=True``, for the
    monitor's many window buckets) that widen when a count outgrows them.
    """

    __slots__ = ("_counts", "_low", "count", "max", "total")

    def __init__(self, *, compact: bool = False) -> None:
        self._counts = array("H" if compact else "I")
        self._low = 0  # the bucket key of _counts[0]
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def _cover(self, low: int, high: int) -> None:
        """Make buckets ``low..high`` addressable (with some room to spare)."""
        counts = self._counts
        if not counts:
            self._low = low
            self._counts = array(counts.typecode, bytes(counts.itemsize * (high - low + 1)))
            return
        if low < self._low:
            low = max(MIN_KEY, low - _SPARE)
            self._counts = array(counts.typecode, bytes(counts.itemsize * (self._low - low))) + counts
            self._low = low
        top = self._low + len(self._counts) - 1
        if high > top:
            high = min(MAX_KEY, high + _SPARE)
            self._counts.frombytes(bytes(counts.itemsize * (high - top)))

    def _widen(self) -> None:
        """Move the counts to wider counters (one overflowed)."""
        self._counts = array(_WIDER[self._counts.typecode], self._counts)

    def add(self, seconds: float) -> None:
        """Add one sample."""
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds
        if seconds <= _MIN_SECONDS:
            key = MIN_KEY
        elif seconds >= _MAX_SECONDS:
            key = MAX_KEY
        else:
            key = ceil(log2(seconds) * _PER_LOG2)
        index = key - self._low
        if index < 0 or index >= len(self._counts):
            self._cover(key, key)
            index = key - self._low
        try:
            self._counts[index] += 1
        except OverflowError:
            self._widen()
            self._counts[index] += 1

    def add_counts(self, counts: Mapping[int, int], count: int, total: float, maximum: float) -> None:
        """Add samples already bucketed by :func:`bucket_counts` (with their count, sum, max)."""
        if counts:
            self._cover(min(counts), max(counts))
            low = self._low
            for key, n in counts.items():
                try:
                    self._counts[key - low] += n
                except OverflowError:
                    self._widen()
                    self._counts[key - low] += n
        self.count += count
        self.total += total
        if maximum > self.max:
            self.max = maximum

    def add_many(self, samples: Sequence[float]) -> None:
        """Add many samples at once (same result as ``add`` on each)."""
        if samples:
            counts, highest = bucket_counts(samples)
            self.add_counts(counts, len(samples), sum(samples), highest)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0 <= q <= 1), 0.0 when empty."""
        if not self.count:
            return 0.0
        rank = q * (self.count - 1)
        index = bisect_right(list(accumulate(self._counts)), rank)
        if index >= len(self._counts):
            return self.max
        # the bucket's midpoint (in relative terms) keeps the error under the accuracy
        return min(bucket_value(self._low + index), self.max)

    @property
    def _buckets(self) -> dict[int, int]:
        """``{bucket key: count}`` of the occupied buckets."""
        low = self._low
        return {low + index: count for index, count in enumerate(self._counts) if count}

    def buckets(self) -> list[tuple[int, int]]:
        """``(bucket key, count)`` of the occupied buckets, in increasing order of duration."""
        low = self._low
        return [(low + index, count) for index, count in enumerate(self._counts) if count]

    def merge(self, other: LatencySketch) -> None:
        """Add every sample of ``other`` to this sketch."""
        theirs = other._counts
        if theirs:
            self._cover(other._low, other._low + len(theirs) - 1)
            start = other._low - self._low
            end = start + len(theirs)
            summed = list(map(add, self._counts[start:end], theirs))
            while True:
                try:
                    self._counts[start:end] = array(self._counts.typecode, summed)
                    break
                except OverflowError:
                    self._widen()
        self.count += other.count
        self.total += other.total
        if other.max > self.max:
            self.max = other.max

    def copy(self) -> LatencySketch:
        """An independent sketch with the same samples."""
        twin = LatencySketch(compact=self._counts.typecode == "H")
        twin.merge(self)
        return twin

    def memory(self) -> int:
        """Bytes held by the bucket counts."""
        return self._counts.buffer_info()[1] * self._counts.itemsize

    def summary(self) -> dict[str, float]:
        """``{"mean", "p50", "p95", "p99", "max"}`` in seconds (zeros when empty)."""
        mean = self.total / self.count if self.count else 0.0
        return {
            "mean": mean,
            "p50": self.quantile(0.5),
            "p95": self.quantile(0.95),
            "p99": self.quantile(0.99),
            "max": self.max,
        }
