"""The latency sketch: quantiles within 1 % relative error, merging, and the empty case."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import math
import random

import pytest

from resilience._sketch import _UPPERS, MAX_KEY, MIN_KEY, LatencySketch, bucket_counts, key_of

QUANTILES = [0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]


def lognormal_samples(seed: int, count: int = 200_000) -> list[float]:
    """Request-like durations: median ~50 ms with a long tail."""
    rng = random.Random(seed)
    return [rng.lognormvariate(math.log(0.05), 1.2) for _ in range(count)]


def exact_quantile(ordered: list[float], q: float) -> float:
    """The sample of rank ``q * (n - 1)`` (rounded down) in sorted order."""
    return ordered[math.floor(q * (len(ordered) - 1))]


def sketch_of(samples: list[float]) -> LatencySketch:
    sketch = LatencySketch()
    for sample in samples:
        sketch.add(sample)
    return sketch


@pytest.fixture(scope="module")
def samples() -> list[float]:
    """200,000 log-normal durations from a fixed seed."""
    return lognormal_samples(seed=1234)


@pytest.fixture(scope="module")
def ordered(samples: list[float]) -> list[float]:
    """The samples, sorted: the exact answer."""
    return sorted(samples)


@pytest.fixture(scope="module")
def sketch(samples: list[float]) -> LatencySketch:
    """One sketch of all the samples (tests only read it)."""
    return sketch_of(samples)


@pytest.mark.parametrize("q", QUANTILES)
def test_quantiles_within_one_percent(ordered: list[float], sketch: LatencySketch, q: float) -> None:
    """Every quantile is within 1 % relative error of the exact one computed by sorting."""
    assert pytest.approx(exact_quantile(ordered, q), rel=0.01) == sketch.quantile(q)


def test_summary_count_mean_and_max_are_exact(samples: list[float], sketch: LatencySketch) -> None:
    """Count, mean and max are kept exactly, not estimated."""
    assert len(samples) == sketch.count
    assert max(samples) == sketch.max
    assert pytest.approx(math.fsum(samples) / len(samples), rel=1e-9) == sketch.summary()["mean"]


def test_summary_quantiles_within_one_percent(ordered: list[float], sketch: LatencySketch) -> None:
    """``summary()`` reports p50, p95 and p99 within 1 %."""
    summary = sketch.summary()
    for key, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert pytest.approx(exact_quantile(ordered, q), rel=0.01) == summary[key], key


def test_merge_equals_one_sketch_of_everything(samples: list[float], sketch: LatencySketch) -> None:
    """Merging sketches of two halves gives the buckets, count, max and quantiles of one sketch of all."""
    whole = sketch
    merged = sketch_of(samples[:70_000])
    merged.merge(sketch_of(samples[70_000:]))
    assert whole._buckets == merged._buckets
    assert (whole.count, whole.max) == (merged.count, merged.max)
    assert pytest.approx(whole.total, rel=1e-9) == merged.total
    assert [whole.quantile(q) for q in QUANTILES] == [merged.quantile(q) for q in QUANTILES]


def test_merge_with_empty_changes_nothing(samples: list[float]) -> None:
    """Merging an empty sketch in either direction leaves the summary as it was."""
    sketch = sketch_of(samples[:1_000])
    before = sketch.summary()
    sketch.merge(LatencySketch())
    assert before == sketch.summary()
    empty = LatencySketch()
    empty.merge(sketch)
    assert before == empty.summary()


def test_empty_sketch() -> None:
    """An empty sketch reports zeros, not errors."""
    sketch = LatencySketch()
    assert 0 == sketch.count
    assert 0.0 == sketch.quantile(0.5)
    assert {"mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0} == sketch.summary()


def test_single_sample() -> None:
    """With one sample every quantile is that sample, within 1 %, and never above the max."""
    sketch = LatencySketch()
    sketch.add(0.2)
    for q in QUANTILES:
        assert pytest.approx(0.2, rel=0.01) == sketch.quantile(q)
        assert sketch.quantile(q) <= 0.2


def test_extreme_durations_stay_bounded() -> None:
    """Zero, sub-microsecond and multi-day durations are accepted and share the edge buckets."""
    sketch = LatencySketch()
    for seconds in (0.0, 1e-9, 1e-7, 1e-6, 200_000.0, 1e9):
        sketch.add(seconds)
    assert 6 == sketch.count
    assert 1e9 == sketch.max
    assert 2 == len(sketch._buckets)


@pytest.mark.parametrize("sigma", [0.001, 0.05, 0.4, 1.2, 4.0])
@pytest.mark.parametrize("median", [1e-7, 1.2e-6, 0.05, 3_000.0, 80_000.0])
def test_bulk_counting_matches_add(median: float, sigma: float) -> None:
    """``bucket_counts`` (sorted and bisected, or by log2 when sparse) counts every sample where ``add`` would."""
    rng = random.Random(hash((median, sigma)))
    samples = [rng.lognormvariate(math.log(median), sigma) for _ in range(700)]
    samples[3:6] = [0.0, 1e-9, 1e12]  # zero, below and above the clamped range
    one_by_one = sketch_of(samples)
    counts, highest = bucket_counts(samples)
    assert one_by_one._buckets == counts
    assert max(samples) == highest


def test_bucket_bounds_agree_with_the_formula() -> None:
    """Each bucket's largest sample, used by bisection, is in the bucket, and the next float is not."""
    for key in range(MIN_KEY, MAX_KEY):
        largest = _UPPERS[key - MIN_KEY]
        assert (key, key + 1) == (key_of(largest), key_of(math.nextafter(largest, math.inf)))


def test_add_many_equals_add() -> None:
    """``add_many`` gives the sketch ``add`` on each sample gives, count, sum and max included."""
    samples = lognormal_samples(seed=9, count=5_000)
    bulk = LatencySketch()
    bulk.add_many(samples)
    single = sketch_of(samples)
    assert (single._buckets, single.count, single.max) == (bulk._buckets, bulk.count, bulk.max)
    assert pytest.approx(single.total) == bulk.total


def test_compact_counters_widen_instead_of_overflowing() -> None:
    """A compact (2-byte) sketch moves to wider counters when a bucket passes 65,535, by add, bulk or merge."""
    sketch = LatencySketch(compact=True)
    sketch.add_counts({-100: 65_535}, 65_535, 1.0, 0.1)
    sketch.add(0.13)
    sketch.add_counts({-100: 1}, 1, 0.1, 0.1)
    other = LatencySketch(compact=True)
    other.add_counts({-100: 65_000}, 65_000, 1.0, 0.1)
    sketch.merge(other)
    assert {-100: 130_536, key_of(0.13): 1} == sketch._buckets
    assert 130_537 == sketch.count


def test_memory_is_one_small_counter_per_bucket_in_range() -> None:
    """Counts live in one array over the occupied range: a compact sketch of a wide spread stays a few KB."""
    sketch = LatencySketch(compact=True)
    sketch.add_many(lognormal_samples(seed=3, count=50_000))
    assert sketch.memory() <= 2 * (MAX_KEY - MIN_KEY + 1)
    assert len(sketch._counts) <= MAX_KEY - MIN_KEY + 1


def test_merging_disjoint_ranges_and_copies() -> None:
    """Sketches over disjoint ranges merge into one covering both; a copy is independent."""
    low, high = LatencySketch(), LatencySketch()
    low.add(0.001)
    high.add(100.0)
    merged = low.copy()
    merged.merge(high)
    high.merge(low)
    assert merged._buckets == high._buckets
    assert 1 == low.count
    assert pytest.approx(100.0, rel=0.01) == merged.quantile(1.0)
    assert pytest.approx(0.001, rel=0.01) == merged.quantile(0.0)
