"""Prometheus metrics of what ``@monitored`` recorded (``pip install resilience[prometheus]``).

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> from resilience.exporters import prometheus
>>> registry = CollectorRegistry()  # None: prometheus_client's default registry
>>> collector = prometheus.register(registry)
>>> b"# TYPE resilience_calls_total counter" in generate_latest(registry)
True

Series (``name`` is the monitored name):

- ``resilience_calls_total{name,outcome}``: calls by outcome ("ok", "timeout",
  "circuit_open", "connection", "fallback", "dropped", "cancelled", or an exception type);
- ``resilience_call_duration_seconds{name}``: a histogram of call durations;
- ``resilience_retries_total{name,reason}``: retries by reason;
- ``resilience_timeouts_total{name,kind}``: timeouts by kind ("timeout", "total",
  "attempt", "connect", "read", ...);
- ``resilience_circuit_state{name,state}``: 1 for each breaker's current state, 0 for
  the others (closed, open, half-open).

The histogram's buckets are filled from the monitor's latency sketch: a call lands in
the bucket its sketch cell's midpoint falls in, so a duration within 1 % of a bucket
bound may be counted in the neighbouring bucket; count and sum are exact.

**Multi-process mode** (gunicorn-style workers, ``PROMETHEUS_MULTIPROC_DIR`` set before
prometheus_client is first imported): a collector in one worker would only see that
worker's calls. So ``register()`` instead starts mirroring this process's totals into
prometheus_client's own multi-process metric types (their values live in files in that
directory): on every ``flush()``, every ``interval`` seconds from a daemon thread, and
at exit. Call ``register()`` in each worker (gunicorn's ``post_fork`` hook, or at import
in the app) and expose the metrics as prometheus_client documents for that mode::

    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    def metrics():
        prometheus.flush()  # this worker's latest numbers; the others flush on their own
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)

Counters add up across workers; the circuit gauge shows a state as 1 when any live
worker's breaker is in it (``livemax``: call ``multiprocess.mark_process_dead(pid)`` in
gunicorn's ``child_exit`` hook, as for any live gauge).
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from prometheus_client import values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.metrics import Counter, Gauge, Histogram
from prometheus_client.registry import REGISTRY, CollectorRegistry
from prometheus_client.utils import floatToGoString

from resilience import monitor
from resilience._monitor_stats import ExportView
from resilience._sketch import LatencySketch, bucket_value
from resilience.exporters._common import DEFAULT_BUCKETS, circuit_states

__all__ = ["DEFAULT_BUCKETS", "MultiprocessMirror", "ResilienceCollector", "flush", "register"]


_go_float = cast("Callable[[float], str]", floatToGoString)  # untyped upstream
_CALLS = ("resilience_calls", "Monitored calls by outcome.")
_DURATION = ("resilience_call_duration_seconds", "Duration of monitored calls, in seconds.")
_RETRIES = ("resilience_retries", "Retries made inside monitored calls, by reason.")
_TIMEOUTS = ("resilience_timeouts", "Monitored calls that timed out, by timeout kind.")
_CIRCUIT = ("resilience_circuit_state", "Circuit breaker state: 1 for the current state, 0 for the others.")


def _bounds(buckets: Sequence[float]) -> tuple[float, ...]:
    bounds = sorted(float(b) for b in buckets if not math.isinf(float(b)))
    if not bounds or any(b <= 0 for b in bounds) or len(set(bounds)) != len(bounds):
        raise ValueError(f"buckets must be distinct positive bounds in seconds, got {buckets!r}")
    return (*bounds, math.inf)


def _histogram(sketch: LatencySketch, bounds: Sequence[float]) -> list[int]:
    """Calls per bucket (not cumulative), ``bounds`` ending with +Inf.

    Each sketch cell goes to the bucket of its own midpoint, a fixed value: a cell never
    moves to another bucket as calls come, so cumulative buckets only grow.
    """
    counts = [0] * len(bounds)
    for key, count in sketch.buckets():
        counts[bisect_left(bounds, bucket_value(key))] += count
    return counts


class ResilienceCollector:
    """A prometheus_client collector reading ``source`` (the default monitor registry)
    at each scrape; build it with :func:`register`."""

    def __init__(self, source: monitor.Registry, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self.source = source
        self.bounds = _bounds(buckets)

    def describe(self) -> Iterable[Metric]:
        """The families this collector exposes (no samples), for duplicate checks."""
        return self._families([], circuits=False)

    def collect(self) -> Iterable[Metric]:
        """Every series, read now (buffered calls are folded in first)."""
        return self._families(self.source.export(), circuits=True)

    def flush(self) -> None:
        """Nothing to push: the collector reads at scrape time."""

    def close(self) -> None:
        """Nothing to stop (unregister it from its registry to stop exposing it)."""

    def _families(self, views: list[ExportView], *, circuits: bool) -> list[Metric]:
        calls = CounterMetricFamily(*_CALLS, labels=["name", "outcome"])
        duration = HistogramMetricFamily(*_DURATION, labels=["name"])
        retries = CounterMetricFamily(*_RETRIES, labels=["name", "reason"])
        timeouts = CounterMetricFamily(*_TIMEOUTS, labels=["name", "kind"])
        state = GaugeMetricFamily(*_CIRCUIT, labels=["name", "state"])
        for view in views:
            for outcome, count in sorted(view.outcomes.items()):
                calls.add_metric([view.name, outcome], count)
            cumulative, buckets = 0, []
            for bound, count in zip(self.bounds, _histogram(view.latency, self.bounds), strict=True):
                cumulative += count
                buckets.append((_go_float(bound), float(cumulative)))
            duration.add_metric([view.name], buckets, view.latency.total)
            for reason, count in sorted(view.retry_reasons.items()):
                retries.add_metric([view.name, reason], count)
            for kind, count in sorted(view.timeouts.items()):
                timeouts.add_metric([view.name, kind], count)
        if circuits:
            for name, circuit_state, value in circuit_states():
                state.add_metric([name, circuit_state], value)
        return [calls, duration, retries, timeouts, state]


class MultiprocessMirror:
    """Pushes this process's totals into prometheus_client's multi-process metric types
    (files under ``PROMETHEUS_MULTIPROC_DIR``); build it with :func:`register`.

    Each push adds what changed since the last one, so counters stay monotonic across
    pushes; after ``rs.testing.reset()`` (or ``Registry.reset()``) what is counted from
    then on is added to what was pushed before. A forked child pushes only what it counts
    after the fork: what it inherited is the parent's to push.
    """

    def __init__(self, source: monitor.Registry, buckets: Sequence[float], interval: float) -> None:
        self.source = source
        self.bounds = _bounds(buckets)
        self.interval = interval
        self.calls = Counter(*_CALLS, ["name", "outcome"], registry=None)
        self.duration = Histogram(*_DURATION, ["name"], buckets=self.bounds, registry=None)
        self.retries = Counter(*_RETRIES, ["name", "reason"], registry=None)
        self.timeouts = Counter(*_TIMEOUTS, ["name", "kind"], registry=None)
        self.circuit = Gauge(*_CIRCUIT, ["name", "state"], registry=None, multiprocess_mode="livemax")
        self._pushed: dict[tuple[str, ...], float] = {}
        self._generations: dict[str, int] = {}  # name -> the ExportView.generation pushed last
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start()

    def _start(self) -> None:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="resilience-prometheus-flush", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def _after_fork(self) -> None:
        # The worker inherits the parent's totals, which the parent pushes (those since
        # its last push included): take them all as the baselines, without pushing, so
        # only what happens after the fork is added, to the new pid's files.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pushed, self._generations = {}, {}
        for view in self.source.export():
            self._baseline(view)
        self._start()

    def _baseline(self, view: ExportView) -> None:
        name = view.name
        self._generations[name] = view.generation
        for outcome, count in view.outcomes.items():
            self._pushed[("calls", name, outcome)] = count
        for reason, count in view.retry_reasons.items():
            self._pushed[("retries", name, reason)] = count
        for kind, count in view.timeouts.items():
            self._pushed[("timeouts", name, kind)] = count
        for index, count in enumerate(_histogram(view.latency, self.bounds)):
            self._pushed[("duration", name, str(index))] = count
        self._pushed[("duration_sum", name)] = view.latency.total

    def close(self) -> None:
        """Push once more and stop the background thread."""
        self._stop.set()
        self.flush()

    def _delta(self, key: tuple[str, ...], total: float) -> float:
        before = self._pushed.get(key, 0.0)
        self._pushed[key] = total
        return total - before if total >= before else total  # a reset starts from zero again

    def flush(self) -> None:
        """Add what changed since the last push to this process's metric files."""
        with self._lock:
            for view in self.source.export():
                name = view.name
                if self._generations.get(name, 0) != view.generation:  # zeroed since: count from 0
                    self._generations[name] = view.generation
                    self._pushed = {key: value for key, value in self._pushed.items() if key[1] != name}
                for outcome, count in view.outcomes.items():
                    if delta := self._delta(("calls", name, outcome), count):
                        self.calls.labels(name, outcome).inc(delta)
                for reason, count in view.retry_reasons.items():
                    if delta := self._delta(("retries", name, reason), count):
                        self.retries.labels(name, reason).inc(delta)
                for kind, count in view.timeouts.items():
                    if delta := self._delta(("timeouts", name, kind), count):
                        self.timeouts.labels(name, kind).inc(delta)
                child: Any = self.duration.labels(name)
                # Histogram has no "observe n times": add to its bucket and sum values, as
                # observe() does (prometheus_client keeps them per bucket, not cumulative).
                for index, count in enumerate(_histogram(view.latency, self.bounds)):
                    if delta := self._delta(("duration", name, str(index)), count):
                        child._buckets[index].inc(delta)
                if delta := self._delta(("duration_sum", name), view.latency.total):
                    child._sum.inc(delta)
            for name, state, value in circuit_states():
                self.circuit.labels(name, state).set(value)


Exporter = ResilienceCollector | MultiprocessMirror
# prometheus registry -> monitor registry -> its collector (weak: a registry that goes
# takes its entries along, and a new one never inherits them); mirrors by monitor registry
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, dict[monitor.Registry, ResilienceCollector]] = (
    weakref.WeakKeyDictionary()
)
_mirror_of: dict[monitor.Registry, MultiprocessMirror] = {}
_mirrors: weakref.WeakSet[MultiprocessMirror] = weakref.WeakSet()
_lock = threading.Lock()


def multiprocess_mode() -> bool:
    """Whether prometheus_client runs in multi-process mode in this process."""
    return values.ValueClass is not values.MutexValue


def register(
    registry: CollectorRegistry | None = None,
    *,
    source: monitor.Registry | None = None,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
    multiprocess: bool | None = None,
    interval: float = 5.0,
) -> Exporter:
    """Expose ``source``'s numbers (the default monitor registry) to Prometheus.

    Single process: adds a :class:`ResilienceCollector` to ``registry`` (the default
    one when None) and returns it; a second call with the same registry returns the
    same collector. ``buckets`` are the histogram's upper bounds in seconds.

    Multi-process (``multiprocess=None`` detects prometheus_client's mode): starts a
    :class:`MultiprocessMirror` for this process instead (``registry`` is then unused:
    expose through ``multiprocess.MultiProcessCollector``) that pushes every
    ``interval`` seconds (0: only on :func:`flush` and at exit).
    """
    source = source or monitor.default
    if multiprocess is None:
        multiprocess = multiprocess_mode()
    if interval < 0 or not math.isfinite(interval):
        raise ValueError(f"interval must be a finite number of seconds >= 0, got {interval!r}")
    with _lock:
        if multiprocess:
            if not multiprocess_mode():
                raise RuntimeError(
                    "prometheus_client is not in multi-process mode: set PROMETHEUS_MULTIPROC_DIR "
                    "before prometheus_client is first imported"
                )
            mirror = _mirror_of.get(source)
            if mirror is None:
                mirror = _mirror_of[source] = MultiprocessMirror(source, buckets, interval)
                _mirrors.add(mirror)
            return mirror
        registry = registry if registry is not None else REGISTRY
        by_source = _collectors.setdefault(registry, {})
        found = by_source.get(source)
        if found is None:
            found = ResilienceCollector(source, buckets)
            registry.register(found)
            by_source[source] = found
        return found


def flush() -> None:
    """Push this process's latest totals now (multi-process mode; no-op otherwise)."""
    for mirror in list(_mirrors):
        mirror.flush()


def _close_all() -> None:
    for mirror in list(_mirrors):
        mirror.close()


def _after_fork() -> None:
    # runs after the monitor's own fork hooks (registered at its import): its locks are new
    global _lock  # the parent's may have been held at fork
    _lock = threading.Lock()
    for mirror in list(_mirrors):
        mirror._after_fork()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_after_fork)
