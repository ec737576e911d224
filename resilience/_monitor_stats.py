"""The counters behind ``@monitored``: lifetime totals, a sliding window of time buckets,
and a lock-free buffer that the happy path appends to.

A successful call that no inner layer annotated appends its duration to ``Stats.buffer``
(a list append: atomic under the GIL) and compares the time with ``Stats.roll_at``,
nothing else. The buffer is folded into the sketches and counters in bulk, under the
lock, when the clock passes ``roll_at``: about every ``BUFFER_LIMIT`` calls at the rate
calls come in, at most ``FOLD_INTERVAL`` apart, at the end of each time bucket; and
before anything reads the numbers. Every other call (a failure, a fallback, a drop, a
retried success, a call with an HTTP status) takes the slow path and is counted at once.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from resilience import _clock
from resilience._sketch import LatencySketch, bucket_counts

if TYPE_CHECKING:
    from resilience._monitor_alerts import Alert, AlertRule

BUFFER_LIMIT = 512  # successes buffered per name between folds, about: bounds memory, amortises the fold
FOLD_INTERVAL = 0.05  # seconds between folds at most, while calls come (how late listeners hear of them)
MAX_KINDS = 32  # distinct outcomes / reasons / kinds kept per name; the rest count as "other"
RECENT_FAILURES = 5  # failure details kept per name (and carried by an Alert)
OTHER = "other"
_EMPTY: dict[str, int] = {}  # the counters a Counts has not needed yet (never written to)

FAILURE_FREE = frozenset(("ok", "cancelled"))  # outcomes that are not a failure of the dependency


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One finished call that took the slow path: a failure, a fallback, a drop, a retried
    success, or a call that carried an HTTP status. Failures keep the last five of these
    per name (``rs.monitor.recent_failures(name)``, ``Alert.recent``); listeners get each.

    ``at`` is wall-clock seconds since the epoch; ``duration`` seconds; ``error_kind``
    the failure kind (timeout, circuit_open, connection, or the exception's type name),
    ``error_type`` the exception's class name and ``error`` its message (cut at 500
    characters), both unset on success; ``trace_id`` from ``rs.monitor.trace_id``.
    """

    name: str
    outcome: str
    duration: float
    at: float
    attempts: int = 1
    error_kind: str | None = None
    error_type: str | None = None
    error: str = ""
    timeout_kind: str | None = None
    status: int | None = None
    url: str | None = None
    trace_id: str | None = None
    retry_reasons: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Whether the dependency failed (a fallback or a drop answered, or an error surfaced)."""
        return self.outcome not in FAILURE_FREE

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        fields = asdict(self)
        fields["retry_reasons"] = list(self.retry_reasons)
        return fields


def _bump(counter: dict[str, int], key: str, by: int = 1) -> None:
    if key not in counter and len(counter) >= MAX_KINDS:
        key = OTHER
    counter[key] = counter.get(key, 0) + by


def status_class(status: int) -> str:
    """``503 -> "5xx"``."""
    return f"{status // 100}xx"


class Counts:
    """Counters and per-outcome sketches of a set of calls (a lifetime, or one time bucket)."""

    __slots__ = ("compact", "errors", "outcomes", "retries", "retry_reasons", "sketches", "statuses", "timeouts")

    def __init__(self, *, compact: bool = False) -> None:
        self.compact = compact  # small sketch counters to start with: for time buckets
        self.outcomes: dict[str, int] = {}
        self.sketches: dict[str, LatencySketch] = {}
        # shared and empty until a first count (most time buckets never see one)
        self.errors: dict[str, int] = _EMPTY
        self.timeouts: dict[str, int] = _EMPTY
        self.statuses: dict[str, int] = _EMPTY
        self.retry_reasons: dict[str, int] = _EMPTY
        self.retries = 0

    def _count(self, field: str, key: str, by: int = 1) -> None:
        counter: dict[str, int] = getattr(self, field)
        if counter is _EMPTY:
            counter = {}
            setattr(self, field, counter)
        _bump(counter, key, by)

    def add_successes(self, counts: dict[int, int], n: int, total: float, maximum: float) -> None:
        self.outcomes["ok"] = self.outcomes.get("ok", 0) + n
        sketch = self.sketches.get("ok")
        if sketch is None:
            sketch = self.sketches["ok"] = LatencySketch(compact=self.compact)
        sketch.add_counts(counts, n, total, maximum)

    def add(self, event: CallEvent) -> None:
        outcome = event.outcome
        if outcome not in self.outcomes and len(self.outcomes) >= MAX_KINDS:
            outcome = OTHER
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        sketch = self.sketches.get(outcome)
        if sketch is None:
            sketch = self.sketches[outcome] = LatencySketch(compact=self.compact)
        sketch.add(event.duration)
        kind = event.error_kind
        if kind is not None and outcome != "cancelled":
            self._count("errors", kind)
        if event.timeout_kind is not None:
            self._count("timeouts", event.timeout_kind)
        if event.status is not None:
            self._count("statuses", status_class(event.status))
        if event.attempts > 1:
            self.retries += event.attempts - 1
            for reason in event.retry_reasons:
                self._count("retry_reasons", reason)
            unexplained = event.attempts - 1 - len(event.retry_reasons)
            if unexplained > 0:
                self._count("retry_reasons", "unknown", unexplained)

    def merge(self, other: Counts) -> None:
        for key, count in other.outcomes.items():
            _bump(self.outcomes, key, count)
        for field in ("errors", "timeouts", "statuses", "retry_reasons"):
            for key, count in getattr(other, field).items():
                self._count(field, key, count)
        for outcome, sketch in other.sketches.items():
            if outcome not in self.sketches:
                if len(self.sketches) >= MAX_KINDS:
                    outcome = OTHER
                self.sketches.setdefault(outcome, LatencySketch())
            self.sketches[outcome].merge(sketch)
        self.retries += other.retries

    def latency(self) -> LatencySketch:
        """Every outcome's durations in one sketch."""
        merged = LatencySketch()
        for sketch in self.sketches.values():
            merged.merge(sketch)
        return merged

    def summary(self) -> dict[str, Any]:
        """The JSON-ready counters (the keys ``snapshot()`` documents)."""
        outcomes = {kind: count for kind, count in self.outcomes.items() if count}
        calls = sum(outcomes.values())
        ok = outcomes.get("ok", 0)
        judged = calls - outcomes.get("cancelled", 0)
        return {
            "calls": calls,
            "ok": ok,
            "failed": judged - ok,
            "success_rate": ok / judged if judged else 1.0,
            "retries": self.retries,
            "retry_reasons": dict(self.retry_reasons),
            "outcomes": outcomes,
            "errors": dict(self.errors),
            "timeouts": dict(self.timeouts),
            "statuses": dict(self.statuses),
            "circuit_rejections": outcomes.get("circuit_open", 0),
            "fallbacks": outcomes.get("fallback", 0),
            "drops": outcomes.get("dropped", 0),
            "latency": self.latency().summary(),
            "latency_by_outcome": {kind: sketch.summary() for kind, sketch in sorted(self.sketches.items())},
        }


@dataclass(frozen=True, slots=True)
class ExportView:
    """What exporters read of one name: lifetime totals (folded, copied under the lock).

    ``generation`` goes up each time the name's counters are zeroed (``reset()``), so an
    exporter that pushes differences knows to count again from zero.
    """

    name: str
    outcomes: dict[str, int]
    retry_reasons: dict[str, int]
    timeouts: dict[str, int]
    latency: LatencySketch
    generation: int = 0


Deliver = Callable[["Stats", list[float], "CallEvent | None", "list[tuple[AlertRule, Alert]]"], None]


class Stats:
    """Everything one monitored name keeps. Bounded memory: sketches (at most ~1,300
    buckets each) per outcome for the lifetime and per time bucket of the window, capped
    kind counters, five failure details, and at most ``BUFFER_LIMIT`` buffered durations.
    """

    __slots__ = (
        "__weakref__",
        "buckets",
        "buffer",
        "deliver",
        "firing",
        "folded_at",
        "generation",
        "index",
        "last_failure",
        "lifetime",
        "lock",
        "name",
        "recent",
        "retired",
        "roll_at",
        "roll_from",
        "rules",
        "span",
        "width",
    )

    def __init__(self, name: str, width: float, span: int, deliver: Deliver) -> None:
        self.name = name
        self.width = width  # seconds per time bucket
        self.span = span  # time buckets kept: enough for the longest window asked of this name
        self.deliver = deliver
        self.lock = threading.Lock()
        self.buffer: list[float] = []
        self.retired: list[float] = []  # the buffer before the last swap (see _take)
        self.rules: weakref.WeakSet[AlertRule] = weakref.WeakSet()  # held by the decorated functions
        self.roll_from, self.roll_at = math.inf, -math.inf  # the fast path appends while in between
        self.firing = False  # whether one of the rules fires
        self.folded_at = -math.inf  # when the buffer was last folded
        self.lifetime = Counts()
        self.buckets: dict[int, Counts] = {}
        self.index: int | None = None
        self.last_failure: dict[str, Any] | None = None
        self.recent: deque[CallEvent] = deque(maxlen=RECENT_FAILURES)
        self.generation = 0  # bumped by clear()
        _live.add(self)

    def clear(self) -> None:
        """Zero everything in place (decorated functions keep reporting here)."""
        with self.lock:
            self.generation += 1
            self._take()
            self.lifetime = Counts()
            self.buckets = {}
            self.index = None
            self.roll_from, self.roll_at = math.inf, -math.inf
            self.folded_at = -math.inf
            self.last_failure = None
            self.recent.clear()
            self.firing = False
            for rule in self.rules:
                rule.reset()

    # ------------------------------------------------------------------ writing

    def _take(self) -> list[float]:
        """Swap the buffer for an empty one and return what it held.

        The fast path appends without a lock. Under the GIL nothing runs between its
        read of ``self.buffer`` and its append, so an append always lands in the list it
        read before or after the swap. Should one land in the swapped-out list after the
        copy (an interpreter without that guarantee), it is found at the next fold.
        """
        current = self.buffer
        self.buffer = []
        retired, self.retired = self.retired, current
        items = current[:]
        del current[: len(items)]
        if retired:
            late = retired[:]
            del retired[: len(late)]
            items += late
        return items

    def _fold(self, now: float, batch: list[float] | None = None) -> list[float]:
        """Under the lock: count the buffered successes (and ``batch``) in the current bucket."""
        taken = self._take()
        if batch is None:
            batch = taken
        elif taken:
            batch[:0] = taken
        if batch:
            if self.index is None or now < (self.index - 1) * self.width:  # none yet, or an earlier clock
                self._advance(now)
            counts, highest = bucket_counts(batch)
            n, total = len(batch), sum(batch)
            self.lifetime.add_successes(counts, n, total, highest)
            self._bucket().add_successes(counts, n, total, highest)
        return batch

    def _bucket(self) -> Counts:
        assert self.index is not None
        bucket = self.buckets.get(self.index)
        if bucket is None:
            bucket = self.buckets[self.index] = Counts(compact=True)
        return bucket

    def _advance(self, now: float) -> None:
        """Under the lock: make the time bucket of ``now`` current and forget old ones.

        A time a little before the current bucket is a thread that read the clock just
        before another one moved the bucket on: it counts in the current bucket. Over a
        bucket before it, the clock was swapped for an earlier one: start over there.
        """
        index = math.floor(now / self.width)
        current = self.index
        if current is not None and current - 1 <= index <= current:
            return
        self.index = index
        oldest = index - self.span
        for stale in [i for i in self.buckets if i < oldest or i > index]:
            del self.buckets[stale]

    def _schedule(self, now: float, folded: int) -> None:
        """Under the lock: when the fast path must come back here (``roll_at``).

        The fast path checks the time only: the next fold is due at the end of the time
        bucket, after ``FOLD_INTERVAL``, or sooner when, at the rate the last ``folded``
        calls came in, ``BUFFER_LIMIT`` calls will have gathered; and at once if the time
        is before the last fold (the clock was swapped for an earlier one). A clock that
        does not move, such as a frozen fake one, gives 0 s durations: there the fast
        path counts the buffer instead.
        """
        if self.firing:  # every call comes here while an alert fires, to notice the recovery at once
            self.roll_at = -math.inf
            return
        if self.index is None:
            return
        interval = FOLD_INTERVAL
        elapsed = now - self.folded_at
        if folded and elapsed > 0:
            interval = min(interval, BUFFER_LIMIT * elapsed / folded)
        self.folded_at = now
        # a time before the last fold means another clock, an earlier one: fold and start there
        self.roll_from = min(now, self.index * self.width)
        self.roll_at = min((self.index + 1) * self.width, now + interval)

    def roll(self, now: float, duration: float) -> None:
        """A success on the fast path found the buffer due: fold it with this call."""
        with self.lock:
            if self.index is not None and math.floor(now / self.width) == self.index:
                batch = self._fold(now, [duration])
            else:  # what the buffer holds belongs to the bucket that just ended
                batch = self._fold(now)
                self._advance(now)
                batch += self._fold(now, [duration])
            alerts = self._evaluate(now)
            self._schedule(now, len(batch))
        if batch or alerts:
            self.deliver(self, batch, None, alerts)

    def add(self, event: CallEvent, now: float) -> None:
        """Count a call that took the slow path."""
        with self.lock:
            batch = self._fold(now)
            self._advance(now)
            self.lifetime.add(event)
            self._bucket().add(event)
            if event.failed:
                self.recent.append(event)
                self.last_failure = {
                    "at": event.at,
                    "outcome": event.outcome,
                    "error_type": event.error_type or event.error_kind,
                    "error": event.error,
                    "duration": event.duration,
                    "attempts": event.attempts,
                    "timeout_kind": event.timeout_kind,
                    "status": event.status,
                    "url": event.url,
                    "trace_id": event.trace_id,
                }
            alerts = self._evaluate(now)
            self._schedule(now, len(batch) + 1)
        self.deliver(self, batch, event, alerts)

    def flush(self, now: float) -> None:
        """Fold the buffer and evaluate alerts (before anything reads the numbers)."""
        with self.lock:
            batch = self._fold(now)
            alerts = self._evaluate(now)
            self._schedule(now, len(batch))
        if batch or alerts:
            self.deliver(self, batch, None, alerts)

    # ------------------------------------------------------------------ reading

    def window(self, now: float, seconds: float) -> Counts:
        """The calls of the time buckets overlapping the last ``seconds`` (under the lock)."""
        merged = Counts()
        top = math.floor(now / self.width)
        low = math.floor((now - seconds) / self.width)
        for index, bucket in self.buckets.items():
            if low <= index <= top:
                merged.merge(bucket)
        return merged

    def window_rates(self, now: float, seconds: float) -> tuple[int, int, int]:
        """``(calls, failures, timeouts)`` over the last ``seconds``, cancelled calls left out."""
        top = math.floor(now / self.width)
        low = math.floor((now - seconds) / self.width)
        calls = ok = timeouts = 0
        for index, bucket in self.buckets.items():
            if low <= index <= top:
                outcomes = bucket.outcomes
                calls += sum(outcomes.values()) - outcomes.get("cancelled", 0)
                ok += outcomes.get("ok", 0)
                timeouts += bucket.errors.get("timeout", 0)
        return calls, calls - ok, timeouts

    def _evaluate(self, now: float) -> list[tuple[AlertRule, Alert]]:
        """Under the lock: the alerts and recovery notices due now."""
        if not self.rules:  # none asked for, or their functions are gone
            self.firing = False
            return []
        fired: list[tuple[AlertRule, Alert]] = []
        for rule in self.rules:
            alert = rule.evaluate(self, now)
            if alert is not None:
                fired.append((rule, alert))
        self.firing = any(rule.firing for rule in self.rules)
        return fired

    def snapshot(self, now: float, window: float) -> dict[str, Any]:
        """The JSON-ready view ``rs.monitor.snapshot(name)`` returns."""
        self.flush(now)
        with self.lock:
            lifetime = self.lifetime.summary()
            recent = self.window(now, window).summary()
            last_failure = dict(self.last_failure) if self.last_failure else None
        recent["seconds"] = window
        return {
            "name": self.name,
            "calls": lifetime["calls"],
            "ok": lifetime["ok"],
            "failed": lifetime["failed"],
            "success_rate": lifetime["success_rate"],
            "recent_calls": recent["calls"] - recent["outcomes"].get("cancelled", 0),
            "recent_success_rate": recent["success_rate"],
            "retries": lifetime["retries"],
            "retry_reasons": lifetime["retry_reasons"],
            "outcomes": lifetime["outcomes"],
            "errors": lifetime["errors"],
            "timeouts": lifetime["timeouts"],
            "statuses": lifetime["statuses"],
            "circuit_rejections": lifetime["circuit_rejections"],
            "fallbacks": lifetime["fallbacks"],
            "drops": lifetime["drops"],
            "latency": lifetime["latency"],
            "latency_by_outcome": lifetime["latency_by_outcome"],
            "window": recent,
            "last_failure": last_failure,
        }

    def export(self, now: float) -> ExportView:
        """Lifetime totals for exporters."""
        self.flush(now)
        with self.lock:
            lifetime = self.lifetime
            return ExportView(
                name=self.name,
                outcomes={kind: count for kind, count in lifetime.outcomes.items() if count},
                retry_reasons=dict(lifetime.retry_reasons),
                timeouts=dict(lifetime.timeouts),
                latency=lifetime.latency(),
                generation=self.generation,
            )

    def after_fork_in_child(self) -> None:
        """In a forked child: a lock of its own (the parent's may have been held by a
        thread that does not exist here), and the inherited buffer folded without telling
        listeners: those calls are the parent's to report."""
        self.lock = threading.Lock()
        with self.lock:
            self._fold(_clock.monotonic())

    @property
    def sketch(self) -> LatencySketch:
        """Every lifetime duration of this name in one sketch (a merged copy)."""
        self.flush(_clock.monotonic())
        with self.lock:
            return self.lifetime.latency()


_live: weakref.WeakSet[Stats] = weakref.WeakSet()  # every Stats of this process, for fork


def _after_fork_in_child() -> None:
    for stats in list(_live):
        stats.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
