"""What ``@monitored`` calls did: ``snapshot()``, ``health()`` and ``Registry``.

>>> import resilience as rs
>>> @rs.monitored("pricing")
... def price() -> float:
...     return 9.5
>>> _ = price()
>>> rs.monitor.snapshot("pricing")["ok"]
1
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from resilience import _clock
from resilience._circuit import _registry as _breakers
from resilience._engine import Args, CallRecord, Kwargs, Layer, call_name, current_record, error_kind
from resilience._sketch import LatencySketch

__all__ = ["Monitored", "Registry", "default", "health", "monitored", "snapshot"]

R = TypeVar("R")
logger = logging.getLogger("resilience")
RECENT_CALLS = 100  # the window health() judges by


class _Stats:
    """Counters of one name. Bounded memory: a sketch, fixed counters, a short window."""

    __slots__ = (
        "calls",
        "errors",
        "last_failure",
        "lock",
        "name",
        "ok",
        "outcomes",
        "recent",
        "retries",
        "retry_reasons",
        "sketch",
        "timeouts",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.calls = 0
        self.ok = 0
        self.retries = 0
        self.outcomes: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.timeouts: dict[str, int] = {}
        self.retry_reasons: dict[str, int] = {}
        self.sketch = LatencySketch()
        self.recent: deque[bool] = deque(maxlen=RECENT_CALLS)
        self.last_failure: dict[str, Any] | None = None

    def clear(self) -> None:
        with self.lock:
            fresh = _Stats(self.name)
            for slot in _Stats.__slots__:
                if slot not in ("lock", "name"):
                    setattr(self, slot, getattr(fresh, slot))

    def success(self, duration: float, record: CallRecord) -> None:
        with self.lock:
            self.calls += 1
            self.ok += 1
            self.sketch.add(duration)
            self.recent.append(True)
            if record.attempts > 1:
                self._count_retries(record)

    def failure(self, duration: float, record: CallRecord, exc: BaseException | None) -> str:
        """Count a failed call (exc None: a fallback answered it); returns the outcome.

        An exception that reaches the monitor is the outcome, whatever a fallback deeper
        down did along the way.
        """
        if exc is not None:
            kind = outcome = error_kind(exc)
        else:
            kind, outcome = record.error_kind or "error", "fallback"
        with self.lock:
            self.calls += 1
            self.sketch.add(duration)
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            if kind != "cancelled":
                self.recent.append(False)
                self.errors[kind] = self.errors.get(kind, 0) + 1
            if kind == "timeout":
                which = record.timeout_kind or "timeout"
                self.timeouts[which] = self.timeouts.get(which, 0) + 1
            if record.attempts > 1:
                self._count_retries(record)
            self.last_failure = {
                "at": _clock.wall(),
                "outcome": outcome,
                "error_type": type(exc).__name__ if exc is not None else kind,
                "error": str(exc)[:500] if exc is not None else "",
                "duration": duration,
            }
        return outcome

    def _count_retries(self, record: CallRecord) -> None:
        self.retries += record.attempts - 1
        for reason in record.retry_reasons or ():
            self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            cancelled = self.outcomes.get("cancelled", 0)
            judged = self.calls - cancelled
            recent = list(self.recent)
            return {
                "name": self.name,
                "calls": self.calls,
                "ok": self.ok,
                "failed": judged - self.ok,
                "success_rate": self.ok / judged if judged else 1.0,
                "recent_calls": len(recent),
                "recent_success_rate": sum(recent) / len(recent) if recent else 1.0,
                "retries": self.retries,
                "retry_reasons": dict(self.retry_reasons),
                "outcomes": {"ok": self.ok, **self.outcomes} if self.ok else dict(self.outcomes),
                "errors": dict(self.errors),
                "timeouts": dict(self.timeouts),
                "latency": self.sketch.summary(),
                "last_failure": dict(self.last_failure) if self.last_failure else None,
            }


class Registry:
    """A namespace of monitored names (``monitor.default`` unless you pass your own)."""

    def __init__(self) -> None:
        self._stats: dict[str, _Stats] = {}
        self._lock = threading.Lock()

    def stats(self, name: str) -> _Stats:
        """The live counters of ``name``, created on first use."""
        stats = self._stats.get(name)
        if stats is None:
            with self._lock:
                stats = self._stats.setdefault(name, _Stats(name))
        return stats

    def names(self) -> list[str]:
        """Every monitored name, sorted."""
        return sorted(self._stats)

    def snapshot(self, name: str | None = None) -> dict[str, Any]:
        """One name's counters, or ``{name: counters}`` for every name that has seen a call."""
        if name is None:
            return {n: snap for n in self.names() if (snap := self._stats[n].snapshot())["calls"]}
        if name not in self._stats:
            raise KeyError(f"nothing monitored under {name!r}; known: {self.names()}")
        return self._stats[name].snapshot()

    def health(
        self, *, min_success_rate: float = 0.9, min_calls: int = 10, max_p95: float | None = None
    ) -> dict[str, Any]:
        """``{"status": "healthy"|"degraded", "names": {...}, "circuits": {...}}``, JSON-ready.

        A name is degraded when, over its last 100 calls (at least ``min_calls`` of them),
        the success rate is below ``min_success_rate``; when its p95 latency exceeds
        ``max_p95`` seconds; or when a breaker of the same name is not closed.
        """
        names: dict[str, Any] = {}
        for name, snap in self.snapshot().items():
            reasons = []
            rate = snap["recent_success_rate"]
            if snap["recent_calls"] >= min_calls and rate < min_success_rate:
                reasons.append(
                    f"success rate {rate:.0%} over the last {snap['recent_calls']} calls is below "
                    f"{min_success_rate:.0%}"
                )
            if max_p95 is not None and snap["latency"]["p95"] > max_p95:
                reasons.append(f"p95 latency {snap['latency']['p95']:.3g} s is above {max_p95:.3g} s")
            breaker = _breakers.get(name)
            if breaker is not None and breaker.state != "closed":
                reasons.append(f"circuit {name!r} is {breaker.state}")
            names[name] = {
                "status": "degraded" if reasons else "healthy",
                "reasons": reasons,
                "calls": snap["calls"],
                "recent_success_rate": rate,
                "p95": snap["latency"]["p95"],
            }
        circuits = {name: breaker.state for name, breaker in sorted(_breakers.items())}
        open_circuits = [name for name, state in circuits.items() if state != "closed" and name not in names]
        degraded = [n for n, v in names.items() if v["status"] != "healthy"] + open_circuits
        return {
            "status": "degraded" if degraded else "healthy",
            "reasons": [f"{n} is degraded" for n in degraded],
            "names": names,
            "circuits": circuits,
        }

    def reset(self) -> None:
        """Zero every name's counters, in place: decorated functions keep reporting here."""
        with self._lock:
            for stats in self._stats.values():
                stats.clear()


default = Registry()


def snapshot(name: str | None = None, *, registry: Registry | None = None) -> dict[str, Any]:
    """Counters of ``name`` (or of every name) in the default registry.

    Keys: name, calls, ok, failed, success_rate, recent_calls, recent_success_rate,
    retries, retry_reasons, outcomes (kind -> count), errors (failure kind -> count,
    including calls a fallback answered), timeouts (kind -> count), latency (mean, p50,
    p95, p99, max, in seconds; quantiles within 1 %), last_failure.
    """
    return (registry or default).snapshot(name)


def health(
    *,
    min_success_rate: float = 0.9,
    min_calls: int = 10,
    max_p95: float | None = None,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Overall and per-name status (healthy / degraded) with the reasons; see ``Registry.health``."""
    return (registry or default).health(min_success_rate=min_success_rate, min_calls=min_calls, max_p95=max_p95)


class Monitored(Layer):
    """A monitoring layer; build it with :func:`monitored`."""

    __slots__ = ("_by_function", "_stats", "name", "registry")

    def __init__(self, name: str | None, registry: Registry) -> None:
        self.name = name
        self.registry = registry
        self._stats = registry.stats(name) if name is not None else None
        self._by_function: dict[Callable[..., Any], _Stats] = {}

    def __repr__(self) -> str:
        return f"monitored({self.name!r})"

    def bind(self, fn: Callable[..., Any]) -> None:
        if self._stats is None:
            self._by_function[fn] = self.registry.stats(call_name(fn))

    def _stats_for(self, fn: Callable[..., Any]) -> _Stats:
        stats = self._stats or self._by_function.get(fn)
        if stats is None:  # Policy.call(fn) without decoration: not cached, fn may be a fresh lambda
            stats = self.registry.stats(call_name(fn))
        return stats

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        stats = self._stats or self._stats_for(fn)
        record = CallRecord()
        token = current_record.set(record)
        now = _clock.current.monotonic
        start = now()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _failed(stats, now() - start, record, exc)
            raise
        finally:
            current_record.reset(token)
        _succeeded(stats, now() - start, record)
        return result

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        stats = self._stats or self._stats_for(fn)
        record = CallRecord()
        token = current_record.set(record)
        now = _clock.current.monotonic
        start = now()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            _failed(stats, now() - start, record, exc)
            raise
        finally:
            current_record.reset(token)
        _succeeded(stats, now() - start, record)
        return result


def _succeeded(stats: _Stats, duration: float, record: CallRecord) -> None:
    if record.fallback:  # the call returned, but a fallback produced the answer
        _failed(stats, duration, record, None)
    else:
        stats.success(duration, record)


def _failed(stats: _Stats, duration: float, record: CallRecord, exc: BaseException | None) -> None:
    outcome = stats.failure(duration, record, exc)
    if outcome in ("fallback", "cancelled"):
        return  # the fallback layer logged it; a cancellation is the caller's choice
    level = logging.WARNING if outcome in ("timeout", "circuit_open") else logging.ERROR
    logger.log(
        level,
        "%s failed after %.3g s and %d attempt(s): %s",
        stats.name,
        duration,
        record.attempts,
        f"{type(exc).__name__}: {exc}" if exc is not None else outcome,
        extra={
            "call_name": stats.name,
            "outcome": outcome,
            "duration": duration,
            "attempts": record.attempts,
            "error_type": type(exc).__name__ if exc is not None else outcome,
            "timeout_kind": record.timeout_kind,
        },
    )


def monitored(name: str | None = None, *, registry: Registry | None = None) -> Monitored:
    """Record every call: outcome, duration and retries, under ``name``.

    ``name`` defaults to the function's ``module.qualname``. Outcomes: "ok", "timeout",
    "circuit_open", "connection", "fallback" (a fallback answered; the original error
    kind is still counted under ``errors``), "cancelled", or the exception's type name.
    Timeouts and open circuits log one WARNING, other failures one ERROR, on logger
    "resilience"; nothing is logged on success. Read it with ``rs.monitor.snapshot(name)``.

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
    return Monitored(name, registry or default)
