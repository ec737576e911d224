"""The layer engine: one ``decorate()`` under every decorator, and the per-call context.

A layer knows how to run a call around an inner callable, synchronously and
asynchronously. ``decorate()`` picks the path once, at decoration time, so a coroutine
function's wrapper is itself a coroutine function and layers stack in any order.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
R = TypeVar("R")

Args = tuple[Any, ...]
Kwargs = dict[str, Any]


class CallRecord:
    """What inner layers learned about one logical call; ``@monitored`` reads it.

    Fields: ``attempts`` (made, first included), ``timeout_kind`` (which timeout
    expired: "timeout", "total", "attempt", "connect", "read"...), ``verdict``,
    ``fallback`` (a fallback answered), ``dropped`` (a best-effort layer swallowed the
    failure and answered nothing), ``error_kind`` (the failure kind behind a fallback
    or drop), ``retry_reasons``, ``status`` (an HTTP status code an inner layer saw) and
    ``url``.

    Creating one is a bare allocation on the happy path: every field starts unset and
    reads as its default. The first write turns the record into a ``touched`` one (its
    class changes), which is all the monitor checks after a successful call to know it
    can take its fast path.
    """

    __slots__ = (
        "attempts",
        "dropped",
        "error_kind",
        "fallback",
        "retry_reasons",
        "status",
        "timeout_kind",
        "url",
        "verdict",
    )

    attempts: int
    timeout_kind: str | None
    verdict: str | None
    fallback: bool
    dropped: bool
    error_kind: str | None
    retry_reasons: list[str] | None
    status: int | None
    url: str | None
    touched = False

    if not TYPE_CHECKING:  # hidden from type checkers, which then still catch a misspelt field

        def __getattr__(self, name: str) -> Any:  # only asked for an unset field (or a wrong name)
            try:
                return _RECORD_DEFAULTS[name]
            except KeyError:
                raise AttributeError(f"CallRecord has no field {name!r}; fields: {sorted(_RECORD_DEFAULTS)}") from None

        def __setattr__(self, name: str, value: Any) -> None:
            object.__setattr__(self, name, value)  # a name that is no field has no slot: AttributeError
            if not self.touched:
                object.__setattr__(self, "__class__", _TouchedRecord)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in sorted(_RECORD_DEFAULTS))
        return f"CallRecord({fields})"


class _TouchedRecord(CallRecord):
    """A call record some layer wrote to."""

    __slots__ = ()
    touched = True


_RECORD_DEFAULTS: dict[str, Any] = {
    "attempts": 1,
    "timeout_kind": None,
    "verdict": None,
    "fallback": False,
    "dropped": False,
    "error_kind": None,
    "retry_reasons": None,
    "status": None,
    "url": None,
}


class DeadlineScope:
    """A deadline in force (absolute, on the resilience clock), already min()'d with its parent.

    Switched off when its call ends, so that a task spawned during the call (which copies
    the context) does not inherit a deadline that no longer means anything.
    """

    __slots__ = ("active", "at", "parent")

    def __init__(self, at: float, parent: DeadlineScope | None) -> None:
        self.at = at
        self.parent = parent
        self.active = True


# The record of the innermost monitored call, and the innermost deadline scope.
current_record: ContextVar[CallRecord | None] = ContextVar("resilience_record", default=None)
current_deadline: ContextVar[DeadlineScope | None] = ContextVar("resilience_deadline", default=None)


def active_deadline() -> float | None:
    """The deadline in force for this context, or None."""
    scope = current_deadline.get()
    while scope is not None and not scope.active:
        scope = scope.parent
    return None if scope is None else scope.at


# Exceptions that mean "stop now", never a failure of the dependency.
ABORTS = (KeyboardInterrupt, SystemExit, GeneratorExit)


def call_name(fn: Callable[..., Any]) -> str:
    """A readable name for logs: ``module.qualname`` where the callable has them."""
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None)
    return f"{module}.{qualname}" if module else qualname


def is_async_callable(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    if isinstance(fn, type):  # calling a class constructs an instance, whatever its __call__ is
        return False
    call = getattr(fn, "__call__", None)  # noqa: B004 -- an object with `async def __call__`
    return call is not None and inspect.iscoroutinefunction(call)


class Layer:
    """Base of every decorator object. Subclasses implement the two ``run_*`` methods.

    Calling a layer on a function decorates it, so ``@rs.retry_on(...)`` and
    ``Policy(retry=rs.retry_on(...))`` are the same object.
    """

    __slots__ = ()

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        raise NotImplementedError

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        raise NotImplementedError

    def bind(self, fn: Callable[..., Any]) -> None:
        """Hook called once at decoration time (e.g. to name an anonymous breaker)."""

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        return decorate(self, fn)


def decorate(layer: Layer, fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` in ``layer``, keeping its metadata and its sync or async nature."""
    if not callable(fn):
        raise TypeError(f"{type(layer).__name__} decorates a callable, got {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"{call_name(fn)} is a generator function: a resilience layer cannot retry or time "
            "out a generator that is consumed after the call returns; decorate a function "
            "that returns a list instead"
        )
    layer.bind(fn)
    wrapper: Callable[..., Any]
    if is_async_callable(fn):
        run_async = layer.run_async

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await run_async(fn, args, kwargs)  # type: ignore[arg-type]

        wrapper = async_wrapper
    else:
        run_sync = layer.run_sync

        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            return run_sync(fn, args, kwargs)

        wrapper = sync_wrapper
    with contextlib.suppress(AttributeError):  # exotic callables lack some metadata
        functools.update_wrapper(wrapper, fn)
    return cast("Callable[P, R]", wrapper)


def error_kind(exc: BaseException) -> str:
    """The failure kind ``@monitored`` counts: timeout, circuit_open, bulkhead_full,
    rate_limited, connection, cancelled, or the exception's type name. requests' errors are
    recognised by class name, so this module never imports requests."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "CircuitBreakerError" in names:
        return "circuit_open"
    if "BulkheadFull" in names:
        return "bulkhead_full"
    if "RateLimited" in names:
        return "rate_limited"
    if not isinstance(exc, Exception):
        return "cancelled"
    if isinstance(exc, TimeoutError) or "Timeout" in names:
        return "timeout"
    if isinstance(exc, ConnectionError) or "ConnectionError" in names:
        return "connection"
    return type(exc).__name__


def check_seconds(parameter: str, value: object, *, allow_zero: bool = False) -> None:
    """Reject a duration that is not a finite positive number, naming the parameter."""
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{parameter} must be a number of seconds {bound}, got {value!r}")
    if not math.isfinite(value) or not (value >= 0 if allow_zero else value > 0):
        raise ValueError(f"{parameter} must be a finite number of seconds {bound}, got {value!r}")
