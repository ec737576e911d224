"""What ``@monitored`` calls did: ``snapshot()``, ``health()``, alerts, listeners.

>>> import resilience as rs
>>> @rs.monitored("pricing")
... def price() -> float:
...     return 9.5
>>> _ = price()
>>> rs.monitor.snapshot("pricing")["ok"]
1

- ``snapshot(name)``: lifetime counters, latency quantiles (per name and per outcome,
  within 1 %), and the same over a sliding window (``"window"``, 5 minutes by default).
- ``health()``: healthy / degraded / unhealthy per name and overall, with reasons.
- ``monitored(name, on_alert=...)``: a callback when the failure rate crosses a threshold.
- ``add_listener(listener)``: your own sink (see :class:`Listener`); exporters for
  Prometheus and OpenTelemetry live in ``resilience.exporters``.
- ``trace_id``: set it per request; failure logs, details and alerts carry it.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from resilience import _clock
from resilience._circuit import _registry as _breakers
from resilience._engine import (
    Args,
    CallRecord,
    Kwargs,
    Layer,
    call_name,
    check_seconds,
    current_record,
    decorate,
    error_kind,
    is_async_callable,
)
from resilience._monitor_alerts import Alert, AlertRule, make_rule
from resilience._monitor_stats import BUFFER_LIMIT, CallEvent, ExportView, Stats
from resilience.errors import DeadlineExceeded

__all__ = [
    "Alert",
    "CallEvent",
    "HealthThresholds",
    "Listener",
    "Monitored",
    "Registry",
    "add_listener",
    "default",
    "health",
    "monitored",
    "recent_failures",
    "remove_listener",
    "snapshot",
    "trace_id",
]

P = ParamSpec("P")
R = TypeVar("R")
logger = logging.getLogger("resilience")
_LISTENER_METHODS = ("on_calls", "on_call", "on_alert")
_SEVERITY = {"healthy": 0, "degraded": 1, "unhealthy": 2}


# --------------------------------------------------------------------------- trace id


class TraceId:
    """The trace id that failure details, failure logs and alerts carry.

    A ``ContextVar`` underneath (``trace_id.var``): set it where a request starts and
    every monitored failure in that context (threads and tasks that copy it included)
    records it. With the OpenTelemetry exporter registered, the current span's trace id
    is used when none is set.

    >>> import resilience as rs
    >>> with rs.monitor.trace_id.scope("4bf92f3577b34da6a3ce929d0e0e4736"):
    ...     rs.monitor.trace_id.get()
    '4bf92f3577b34da6a3ce929d0e0e4736'
    """

    def __init__(self) -> None:
        self.var: ContextVar[str | None] = ContextVar("resilience_trace_id", default=None)
        self.provider: Callable[[], str | None] | None = None  # asked when unset (the OTel exporter sets it)

    def get(self) -> str | None:
        """The trace id of the current context, or None."""
        value = self.var.get()
        if value is None and self.provider is not None:
            try:
                value = self.provider()
            except Exception:  # a provider must never change a call's outcome
                logger.exception("trace id provider %r raised; ignored", self.provider)
        return value

    def set(self, value: str | None) -> Token[str | None]:
        """Set it for the current context; returns a token for :meth:`reset`."""
        return self.var.set(value)

    def reset(self, token: Token[str | None]) -> None:
        """Restore the value from before :meth:`set` returned ``token``."""
        self.var.reset(token)

    @contextmanager
    def scope(self, value: str | None) -> Iterator[None]:
        """Set it for the duration of a ``with`` block."""
        token = self.var.set(value)
        try:
            yield
        finally:
            self.var.reset(token)

    def __repr__(self) -> str:
        return f"rs.monitor.trace_id({self.var.get()!r})"


trace_id = TraceId()


# --------------------------------------------------------------------------- listeners


class Listener:
    """A sink for what ``@monitored`` records: subclass, override what you need, and
    ``rs.monitor.add_listener(MySink())``. (Any object with some of these methods will do.)

    - ``on_calls(name, durations)``: successful calls that needed no retry and carried
      no HTTP status, in batches (durations in seconds). Batches arrive when about 512
      calls have gathered, at most ~50 ms apart while calls keep coming, at the end of
      each window bucket, whenever the numbers are read (``snapshot()``, exporters), and
      at exit (from an ``atexit`` hook registered when the first listener is added).
    - ``on_call(event)``: every other call (failures, fallbacks, drops, retried or
      status-carrying successes) as it ends, in the calling thread, as a
      :class:`CallEvent`.
    - ``on_alert(alert)``: every :class:`Alert` and recovery notice.

    A listener that raises is logged and ignored: it never changes a call's outcome.

    >>> import resilience as rs
    >>> class Failures(rs.monitor.Listener):
    ...     def on_call(self, event: rs.monitor.CallEvent) -> None:
    ...         print(event.name, event.outcome)
    """

    def on_calls(self, name: str, durations: Sequence[float]) -> None:
        """Successful single-attempt calls of ``name``, batched."""

    def on_call(self, event: CallEvent) -> None:
        """Any other call, as it ends."""

    def on_alert(self, alert: Alert) -> None:
        """An alert or a recovery notice."""


def _safely(method: Callable[..., object], *args: Any) -> None:
    try:
        method(*args)
    except Exception:  # a hook must never change the call's outcome
        logger.exception("resilience monitor hook %r raised; ignored", method)


# --------------------------------------------------------------------------- health


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """When ``health()`` calls a name degraded or unhealthy. Judged over the sliding
    window (5 minutes by default), on names with at least ``min_calls`` calls in it:

    - success rate below ``min_success_rate`` (0.9): degraded; below
      ``unhealthy_success_rate`` (0.5): unhealthy;
    - p95 latency above ``max_p95`` / ``unhealthy_p95`` seconds (None: not judged);
    - more failed calls in the window than ``max_recent_errors`` /
      ``unhealthy_recent_errors``, however few the calls (None: not judged);
    - a breaker of the same name that is open makes it ``open_circuit`` ("degraded" by
      default, or "unhealthy"); half-open makes it degraded.

    >>> import resilience as rs
    >>> strict = rs.monitor.HealthThresholds(min_success_rate=0.99, max_p95=0.5)
    >>> rs.monitor.health(strict)["status"]
    'healthy'
    """

    min_calls: int = 10
    min_success_rate: float = 0.9
    unhealthy_success_rate: float = 0.5
    max_p95: float | None = None
    unhealthy_p95: float | None = None
    max_recent_errors: int | None = None
    unhealthy_recent_errors: int | None = None
    open_circuit: str = "degraded"

    def __post_init__(self) -> None:
        if isinstance(self.min_calls, bool) or not isinstance(self.min_calls, int) or self.min_calls < 1:
            raise ValueError(f"min_calls must be an int >= 1, got {self.min_calls!r}")
        for field in ("min_success_rate", "unhealthy_success_rate"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{field} must be a number in [0, 1], got {value!r}")
        for field in ("max_p95", "unhealthy_p95"):
            if getattr(self, field) is not None:
                check_seconds(field, getattr(self, field))
        for field in ("max_recent_errors", "unhealthy_recent_errors"):
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{field} must be an int >= 0 or None, got {value!r}")
        if self.open_circuit not in ("degraded", "unhealthy"):
            raise ValueError(f'open_circuit must be "degraded" or "unhealthy", got {self.open_circuit!r}')


_REJECTING = frozenset(("open", "forced-open"))  # breaker states that turn calls away


def _breaker_status(state: str | None, limits: HealthThresholds) -> str | None:
    """What a breaker's state makes its name: None when it admits calls as usual."""
    if state in _REJECTING:
        return limits.open_circuit
    if state == "half-open":
        return "degraded"
    return None


def _judge(snap: dict[str, Any], limits: HealthThresholds, breaker_state: str | None) -> dict[str, Any]:
    window = snap["window"]
    judged = snap["recent_calls"]
    rate = snap["recent_success_rate"]
    p95 = window["latency"]["p95"]
    errors = window["failed"]
    found: list[tuple[str, str]] = []
    span = f"over the last {window['seconds']:g} s ({judged} calls)"
    if judged >= limits.min_calls:
        if rate < limits.unhealthy_success_rate:
            found.append(("unhealthy", f"success rate {rate:.0%} {span} is below {limits.unhealthy_success_rate:.0%}"))
        elif rate < limits.min_success_rate:
            found.append(("degraded", f"success rate {rate:.0%} {span} is below {limits.min_success_rate:.0%}"))
        for severity, limit in (("unhealthy", limits.unhealthy_p95), ("degraded", limits.max_p95)):
            if limit is not None and p95 > limit:
                found.append((severity, f"p95 latency {p95:.3g} s {span} is above {limit:.3g} s"))
                break
    for severity, most in (("unhealthy", limits.unhealthy_recent_errors), ("degraded", limits.max_recent_errors)):
        if most is not None and errors > most:  # a count: judged however few the calls
            found.append((severity, f"{errors} failed calls {span}, more than {most}"))
            break
    breaker = _breaker_status(breaker_state, limits)
    if breaker is not None:
        found.append((breaker, f"circuit {snap['name']!r} is {breaker_state}"))
    worst = max((severity for severity, _ in found), key=_SEVERITY.__getitem__, default="healthy")
    return {
        "status": worst,
        "reasons": [reason for _, reason in found],
        "calls": snap["calls"],
        "recent_calls": judged,
        "recent_success_rate": rate,
        "recent_errors": errors,
        "p95": p95,
        "circuit": breaker_state,
    }


# --------------------------------------------------------------------------- registry


class Registry:
    """A namespace of monitored names (``monitor.default`` unless you pass your own).

    ``window`` (seconds, default 300) is the sliding window ``snapshot()["window"]``
    and ``health()`` judge by, kept in ``buckets`` time buckets (default 10): a window
    of 300 s counts the calls of the last 300 to 330 s.
    """

    def __init__(self, *, window: float = 300.0, buckets: int = 10) -> None:
        check_seconds("window", window)
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= 1000:
            raise ValueError(f"buckets must be an int in [1, 1000], got {buckets!r}")
        self.window = float(window)
        self.width = self.window / buckets
        self._stats: dict[str, Stats] = {}
        self._lock = threading.Lock()
        self._listeners: tuple[Any, ...] = ()
        _registries.add(self)

    def __repr__(self) -> str:
        return f"<resilience.monitor.Registry names={len(self._stats)} window={self.window:g}s>"

    def stats(self, name: str) -> Stats:
        """The live counters of ``name``, created on first use."""
        stats = self._stats.get(name)
        if stats is None:
            with self._lock:
                stats = self._stats.get(name)
                if stats is None:
                    span = math.ceil(self.window / self.width) + 1
                    stats = self._stats[name] = Stats(name, self.width, span, self._deliver)
        return stats

    def names(self) -> list[str]:
        """Every monitored name, sorted."""
        return sorted(self._stats)

    def snapshot(self, name: str | None = None) -> dict[str, Any]:
        """One name's counters, or ``{name: counters}`` for every name that has seen a call."""
        now = _clock.monotonic()
        if name is None:
            snaps = {n: self._stats[n].snapshot(now, self.window) for n in self.names()}
            return {n: snap for n, snap in snaps.items() if snap["calls"]}
        if name not in self._stats:
            raise KeyError(f"nothing monitored under {name!r}; known: {self.names()}")
        return self._stats[name].snapshot(now, self.window)

    def health(self, thresholds: HealthThresholds | None = None, **overrides: Any) -> dict[str, Any]:
        """``{"status", "reasons", "names", "circuits"}``, JSON-ready; see :func:`health`."""
        limits = dataclasses.replace(thresholds or HealthThresholds(), **overrides)
        circuits = {name: breaker.state for name, breaker in sorted(_breakers.items())}
        names = {name: _judge(snap, limits, circuits.get(name)) for name, snap in self.snapshot().items()}
        statuses = {name: verdict["status"] for name, verdict in names.items()}
        for name, state in circuits.items():
            if name not in names and (status := _breaker_status(state, limits)) is not None:
                statuses[name] = status
        unwell = {name: status for name, status in statuses.items() if status != "healthy"}
        overall = max(unwell.values(), key=_SEVERITY.__getitem__, default="healthy")
        return {
            "status": overall,
            "reasons": [f"{name} is {status}" for name, status in unwell.items()],
            "names": names,
            "circuits": circuits,
        }

    def recent_failures(self, name: str) -> list[CallEvent]:
        """The last five failures of ``name``, oldest first."""
        if name not in self._stats:
            raise KeyError(f"nothing monitored under {name!r}; known: {self.names()}")
        stats = self._stats[name]
        with stats.lock:
            return list(stats.recent)

    def export(self) -> list[ExportView]:
        """Lifetime totals of every name, for exporters (folds buffered calls first)."""
        now = _clock.monotonic()
        return [self._stats[name].export(now) for name in self.names()]

    def reset(self) -> None:
        """Zero every name's counters, in place: decorated functions keep reporting here."""
        with self._lock:
            stats = list(self._stats.values())
        for one in stats:
            one.clear()

    def add_listener(self, listener: object) -> None:
        """Send what this registry records to ``listener`` too (see :class:`Listener`)."""
        if isinstance(listener, type) or not any(callable(getattr(listener, m, None)) for m in _LISTENER_METHODS):
            raise TypeError(f"a listener needs one of {', '.join(_LISTENER_METHODS)}; got {listener!r}")
        with self._lock:
            if listener not in self._listeners:
                self._listeners = (*self._listeners, listener)
        _flush_at_exit()

    def flush(self) -> None:
        """Fold every name's buffered successes now, telling listeners (done at exit too)."""
        now = _clock.monotonic()
        with self._lock:
            stats = list(self._stats.values())
        for one in stats:
            one.flush(now)

    def remove_listener(self, listener: object) -> None:
        """Stop sending to ``listener`` (no error if it was not added)."""
        with self._lock:
            self._listeners = tuple(known for known in self._listeners if known is not listener)

    def _attach(self, stats: Stats, rule: AlertRule) -> AlertRule:
        """Give ``stats`` a rule like ``rule``; returns the one it now has (keep a reference)."""
        with stats.lock:
            for known in stats.rules:
                if known.key() == rule.key():
                    return known
            attached = rule.fresh()
            stats.rules.add(attached)
            stats.span = max(stats.span, math.ceil(rule.window / self.width) + 1)
            return attached

    def _deliver(
        self, stats: Stats, batch: list[float], event: CallEvent | None, alerts: list[tuple[AlertRule, Alert]]
    ) -> None:
        """After the lock: hand what was just counted to the listeners and alert callbacks."""
        listeners = self._listeners
        for listener in listeners:
            if batch and (on_calls := getattr(listener, "on_calls", None)) is not None:
                _safely(on_calls, stats.name, batch)
            if event is not None and (on_call := getattr(listener, "on_call", None)) is not None:
                _safely(on_call, event)
        for rule, alert in alerts:
            _safely(rule.callback, alert)
            for listener in listeners:
                if (on_alert := getattr(listener, "on_alert", None)) is not None:
                    _safely(on_alert, alert)


_registries: weakref.WeakSet[Registry] = weakref.WeakSet()
_exit_hook = threading.Lock()
_exit_hooked = False


def _flush_at_exit() -> None:
    """Register (once) the exit hook that hands buffered successes to listeners. Done
    when the first listener is added, so that it runs before the hooks registered earlier."""
    global _exit_hooked  # once per process
    with _exit_hook:
        if not _exit_hooked:
            _exit_hooked = True
            atexit.register(_flush_all)


def _flush_all() -> None:
    for registry in list(_registries):
        try:
            registry.flush()
        except Exception:  # exiting: report and go on with the other registries
            logger.exception("resilience monitor: flushing %r at exit failed", registry)


def _after_fork_in_child() -> None:
    global _exit_hook  # the parent's may have been held at fork
    _exit_hook = threading.Lock()
    for registry in list(_registries):
        registry._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

default = Registry()


def snapshot(name: str | None = None, *, registry: Registry | None = None) -> dict[str, Any]:
    """Counters of ``name`` (or ``{name: counters}`` of every name) in the default registry.

    Lifetime keys: name, calls, ok, failed, success_rate, retries, retry_reasons (reason
    -> retries), outcomes (kind -> count), errors (failure kind -> count, including calls
    a fallback answered), timeouts (timeout kind -> count), statuses (HTTP status class
    -> count), circuit_rejections, fallbacks, drops, latency (mean, p50, p95, p99, max,
    in seconds; quantiles within 1 %), latency_by_outcome (outcome -> the same),
    last_failure (``recent_failures(name)`` has the last five).

    ``window`` has the same counters over the sliding window (plus ``seconds``);
    recent_calls and recent_success_rate repeat its judged calls and success rate.
    """
    return (registry or default).snapshot(name)


def health(
    thresholds: HealthThresholds | None = None, *, registry: Registry | None = None, **overrides: Any
) -> dict[str, Any]:
    """Overall and per-name status (healthy / degraded / unhealthy) with the reasons.

    ``{"status", "reasons", "names": {name: {"status", "reasons", "calls",
    "recent_calls", "recent_success_rate", "recent_errors", "p95", "circuit"}},
    "circuits": {name: state}}``, JSON-ready. Thresholds come from ``thresholds`` (a
    :class:`HealthThresholds`) and keyword overrides of its fields, e.g.
    ``health(min_calls=3, max_p95=0.5)``. The overall status is the worst of the names
    and of breakers that no name is monitored under.
    """
    return (registry or default).health(thresholds, **overrides)


def recent_failures(name: str, *, registry: Registry | None = None) -> list[CallEvent]:
    """The last five failures of ``name`` as :class:`CallEvent` objects, oldest first
    (``event.as_dict()`` for JSON): time, outcome, duration, attempts, error, timeout
    kind, status, url, trace id."""
    return (registry or default).recent_failures(name)


def add_listener(listener: object, *, registry: Registry | None = None) -> None:
    """Send what the (default) registry records to ``listener`` too; see :class:`Listener`."""
    (registry or default).add_listener(listener)


def remove_listener(listener: object, *, registry: Registry | None = None) -> None:
    """Undo :func:`add_listener`."""
    (registry or default).remove_listener(listener)


# --------------------------------------------------------------------------- the layer

# The process clock, recognised by identity so that the happy path reads time.monotonic
# directly (looked up at call time, so freezegun still patches it) instead of going
# through SystemClock.monotonic: two Python frames fewer per call.
_SYSTEM = _clock.current if type(_clock.current) is _clock.SystemClock else _clock.SystemClock()
_monotonic = time.monotonic  # freezegun patches module attributes like this one as it starts
_set_record = current_record.set
_reset_record = current_record.reset


class Monitored(Layer):
    """A monitoring layer; build it with :func:`monitored`."""

    __slots__ = ("_by_function", "_rules", "_stats", "name", "registry", "rule")

    def __init__(self, name: str | None, registry: Registry, rule: AlertRule | None = None) -> None:
        self.name = name
        self.registry = registry
        self.rule = rule  # the thresholds; each name gets its own copy, which _rules keeps alive
        self._rules: list[AlertRule] = []
        self._stats = registry.stats(name) if name is not None else None
        if self._stats is not None:
            self._alert_on(self._stats)
        self._by_function: dict[Callable[..., Any], Stats] = {}

    def _alert_on(self, stats: Stats) -> None:
        if self.rule is not None:
            attached = self.registry._attach(stats, self.rule)
            if all(attached is not known for known in self._rules):
                self._rules.append(attached)

    def __repr__(self) -> str:
        return f"monitored({self.name!r})"

    def bind(self, fn: Callable[..., Any]) -> None:
        if self._stats is None:
            self._by_function[fn] = self._stats_for(fn)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        wrapper = decorate(self, fn)  # validation, bind(), the metadata, the async flavour
        if is_async_callable(fn):
            return wrapper
        inline = _inline_sync(fn, self._stats or self._stats_for(fn))
        with contextlib.suppress(AttributeError):
            functools.update_wrapper(inline, fn)
        inline.__dict__["_resilience_layer"] = self  # keeps its alert rules alive with the function
        return cast("Callable[P, R]", inline)

    def _stats_for(self, fn: Callable[..., Any]) -> Stats:
        stats = self._by_function.get(fn)
        if stats is None:  # Policy.call(fn) without decoration: not cached, fn may be a fresh lambda
            stats = self.registry.stats(call_name(fn))
            self._alert_on(stats)
        return stats

    # The happy path: one record, one context variable set and reset, two clock reads, one
    # list append. Everything else is folded in bulk later (see _monitor_stats), when the
    # clock leaves [roll_from, roll_at); a clock that does not move (0 s calls) counts the
    # buffer instead.
    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        stats = self._stats or self._stats_for(fn)
        record = CallRecord()
        token = _set_record(record)
        clock = _clock.current
        now = _monotonic if clock is _SYSTEM else clock.monotonic
        start = now()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            end = now()
            _finish(stats, end - start, end, record, exc)
            raise
        finally:
            _reset_record(token)
        _completed(stats, record, start, now())
        return result

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        stats = self._stats or self._stats_for(fn)
        record = CallRecord()
        token = _set_record(record)
        clock = _clock.current
        now = _monotonic if clock is _SYSTEM else clock.monotonic
        start = now()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            end = now()
            _finish(stats, end - start, end, record, exc)
            raise
        finally:
            _reset_record(token)
        _completed(stats, record, start, now())
        return result


def _completed(stats: Stats, record: CallRecord, start: float, end: float) -> None:
    """Count a call that returned: at once if a layer annotated it, else buffered."""
    duration = end - start
    if record.touched:
        _finish(stats, duration, end, record, None)
    elif not stats.roll_from <= end < stats.roll_at or (not duration and len(stats.buffer) >= BUFFER_LIMIT):
        stats.roll(end, duration)
    else:
        stats.buffer.append(duration)


def _inline_sync(fn: Callable[..., Any], stats: Stats) -> Callable[..., Any]:
    """``run_sync`` with ``_completed`` inlined into the decorated function's wrapper: two
    Python frames fewer per call for ``@monitored`` on a ``def``, the path the 1 µs
    target is measured on (``Policy`` and ``async def`` go through ``run_sync``/``run_async``).
    Keep it in step with them."""

    def monitored_call(*args: Any, **kwargs: Any) -> Any:
        record = CallRecord()
        token = _set_record(record)
        clock = _clock.current
        now = _monotonic if clock is _SYSTEM else clock.monotonic
        start = now()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            end = now()
            _finish(stats, end - start, end, record, exc)
            raise
        finally:
            _reset_record(token)
        end = now()
        duration = end - start
        if record.touched:
            _finish(stats, duration, end, record, None)
        elif not stats.roll_from <= end < stats.roll_at or (not duration and len(stats.buffer) >= BUFFER_LIMIT):
            stats.roll(end, duration)
        else:
            stats.buffer.append(duration)
        return result

    return monitored_call


def _timeout_kind(exc: BaseException | None) -> str:
    """Which timeout an exception stands for, by its kind or its class names."""
    if isinstance(exc, DeadlineExceeded):
        return exc.kind
    names = {cls.__name__ for cls in type(exc).__mro__}
    for prefix, kind in (("Connect", "connect"), ("Read", "read"), ("Write", "write"), ("Pool", "pool")):
        if f"{prefix}Timeout" in names or f"{prefix}TimeoutError" in names:
            return kind
    return "timeout"


def _describe(exc: BaseException) -> str:
    try:
        return str(exc)[:500]
    except Exception:  # noqa: BLE001 -- an exception whose __str__ fails still gets counted
        return f"<unprintable {type(exc).__name__}>"


def _event(name: str, duration: float, record: CallRecord, exc: BaseException | None) -> CallEvent:
    error_type: str | None = None
    error = ""
    if exc is not None:
        outcome = kind = error_kind(exc)
        error_type, error = type(exc).__name__, _describe(exc)
    elif record.fallback:  # the call returned, but a fallback produced the answer
        outcome, kind = "fallback", record.error_kind or "error"
    elif record.dropped:  # a best-effort layer swallowed the failure
        outcome, kind = "dropped", record.error_kind or "error"
    elif record.error_kind is not None:  # a layer judged the returned value a failure (a returned 503)
        outcome = kind = record.error_kind
        error_type, error = kind, record.verdict or ""
    else:
        outcome, kind = "ok", None
    timeout_kind = (record.timeout_kind or _timeout_kind(exc)) if kind == "timeout" else None
    reasons = record.retry_reasons
    return CallEvent(
        name=name,
        outcome=outcome,
        duration=duration,
        at=_clock.wall(),
        attempts=record.attempts,
        error_kind=kind,
        error_type=error_type,
        error=error,
        timeout_kind=timeout_kind,
        status=record.status,
        url=record.url,
        trace_id=trace_id.get(),
        retry_reasons=tuple(reasons) if reasons else (),
    )


def _finish(stats: Stats, duration: float, end: float, record: CallRecord, exc: BaseException | None) -> None:
    """The slow path: count the call at once, then log a failure."""
    event = _event(stats.name, duration, record, exc)
    stats.add(event, end)
    if event.failed:
        _log(event)


def _log(event: CallEvent) -> None:
    outcome = event.outcome
    if outcome in ("fallback", "dropped", "cancelled"):
        return  # the layer that answered instead logged it; a cancellation is the caller's choice
    # A timeout or an open circuit on the only attempt is an expected event; anything
    # else, and any failure that outlived its retries, is a give-up.
    expected = outcome in ("timeout", "circuit_open", "bulkhead_full", "rate_limited") and event.attempts == 1
    level = logging.WARNING if expected else logging.ERROR
    if not logger.isEnabledFor(level):
        return
    logger.log(
        level,
        "%s failed after %.3g s and %d attempt(s): %s",
        event.name,
        event.duration,
        event.attempts,
        f"{event.error_type}: {event.error}" if event.error else event.error_type,
        extra={
            "call_name": event.name,
            "outcome": outcome,
            "duration": event.duration,
            "attempts": event.attempts,
            "attempt": event.attempts,
            "error_type": event.error_type,
            "error_kind": event.error_kind,
            "timeout_kind": event.timeout_kind,
            "status": event.status,
            "url": event.url,
            "trace_id": event.trace_id,
        },
    )


def monitored(
    name: str | None = None,
    *,
    registry: Registry | None = None,
    on_alert: Callable[[Alert], object] | None = None,
    alert_failure_rate: float = 0.5,
    alert_window: float = 300.0,
    alert_min_calls: int = 20,
    alert_cooldown: float = 300.0,
) -> Monitored:
    """Record every call: outcome, duration and retries, under ``name``.

    ``name`` defaults to the function's ``module.qualname``. Outcomes: "ok", "timeout",
    "circuit_open", "connection", "fallback" (a fallback answered; the original error
    kind is still counted under ``errors``), "dropped", "cancelled", or the exception's
    type name. Timeouts and open circuits log one WARNING, other failures (and failures
    after retries) one ERROR, on logger "resilience"; nothing is logged or formatted on
    success. Read it with ``rs.monitor.snapshot(name)``.

    Alerts: with ``on_alert``, the callback gets an :class:`Alert` when, over the last
    ``alert_window`` seconds and at least ``alert_min_calls`` calls, the failure rate
    reaches ``alert_failure_rate``; at most one per ``alert_cooldown`` seconds; and one
    recovery notice (``alert.recovered``) when the rate falls back below it. A raising
    callback is logged and ignored. The window is counted in the registry's time buckets
    (30 s for the default one): ``alert_window`` must be at least one bucket long, and
    counts the calls of the last ``alert_window`` seconds plus up to one bucket more.

    >>> import resilience as rs
    >>> @rs.monitored("geo")
    ... def locate(ip: str) -> str:
    ...     return "NL"
    >>> locate("192.0.2.1")
    'NL'
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a string or None, got {name!r}")
    if name == "":
        raise ValueError("name must not be empty (None names it after the function)")
    if registry is not None and not isinstance(registry, Registry):
        raise TypeError(f"registry must be a resilience.monitor.Registry, got {registry!r}")
    rule = make_rule(on_alert, alert_failure_rate, alert_window, alert_min_calls, alert_cooldown)
    registry = registry or default
    if rule is not None and rule.window < registry.width:
        raise ValueError(
            f"alert_window must be at least the registry's time bucket of {registry.width:g} s "
            f"(its window / buckets), got {alert_window!r}"
        )
    return Monitored(name, registry, rule)
