"""The latency sketch: quantiles within 1 % relative error, merging, and the empty case."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import math
import random

import pytest

from resilience._sketch import LatencySketch

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
