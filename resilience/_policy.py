"""``rs.Policy``: the layers of a dependency as one object, in the canonical order."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from resilience._circuit import Circuit
from resilience._engine import Layer, call_name, check_seconds, decorate, is_async_callable
from resilience._fallback import Fallback
from resilience._retry import Retry
from resilience._timeout import Timeout
from resilience.monitor import Monitored, monitored

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Policy:
    """Timeouts, retries, a breaker, a fallback and monitoring for one dependency.

    Applied in the canonical order, outermost first::

        monitored(fallback(total timeout(retry(circuit(attempt timeout(fn))))))

    so the breaker sees every attempt, the total deadline bounds all retries and their
    waits, and the monitor sees one logical call. Fields: ``timeout`` (total seconds, or
    an ``rs.timeout`` layer), ``attempt_timeout`` (per attempt), ``retry``
    (``rs.retry_on``), ``circuit`` (``rs.circuit``), ``monitor`` (a name, or
    ``rs.monitored``), ``fallback`` (``rs.fallback``). A float total ``timeout`` uses a
    worker thread only when there is no ``attempt_timeout``; otherwise it is
    cooperative: retries stop at it and each attempt's timeout is clipped to it.

    Use it as a decorator, or ``policy.call(fn, *args)`` / ``await policy.acall(fn, *args)``.
    Derive variants with ``dataclasses.replace(policy, timeout=5.0)``.

    >>> import resilience as rs
    >>> USERS = rs.Policy(timeout=10.0, retry=rs.retry_on(ConnectionError), monitor="users")
    >>> USERS.call(lambda: "ok")
    'ok'
    """

    timeout: float | Timeout | None = None
    attempt_timeout: float | Timeout | None = None
    retry: Retry | None = None
    circuit: Circuit | None = None
    monitor: str | Monitored | None = None
    fallback: Fallback | None = None
    _layers: tuple[Layer, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, kind in (("retry", Retry), ("circuit", Circuit), ("fallback", Fallback)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                factory = {"retry": "rs.retry_on(...)", "circuit": "rs.circuit(...)", "fallback": "rs.fallback(...)"}
                raise TypeError(f"Policy {name}= takes {factory[name]}, got {value!r}")
        if self.monitor is not None and not isinstance(self.monitor, (str, Monitored)):
            raise TypeError(f"Policy monitor= takes a name or rs.monitored(...), got {self.monitor!r}")
        attempt = _timeout_layer("attempt_timeout", self.attempt_timeout, "attempt", "thread")
        # An enforcing attempt timeout is clipped to the total deadline, so the total needs
        # no thread of its own; a cooperative one enforces nothing, so then the total must.
        enforced = attempt is not None and attempt.mode != "cooperative"
        total = _timeout_layer("timeout", self.timeout, "total", "cooperative" if enforced else "thread")
        monitor = monitored(self.monitor) if isinstance(self.monitor, str) else self.monitor
        layers = (monitor, self.fallback, total, self.retry, self.circuit, attempt)
        object.__setattr__(self, "_layers", tuple(layer for layer in layers if layer is not None))

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers, outermost first."""
        return self._layers

    def describe(self) -> str:
        """The order calls go through, e.g. ``monitored('x') -> retry_on(...) -> fn``."""
        return " -> ".join([*(repr(layer) for layer in self._layers), "fn"])

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        for layer in reversed(self._layers):
            fn = decorate(layer, fn)
        return fn

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``fn(*args, **kwargs)`` through the policy."""
        if is_async_callable(fn):
            raise TypeError(f"{call_name(fn)} is async: use `await policy.acall(fn, ...)`")
        runner: Callable[..., Any] = fn
        for layer in reversed(self._layers):
            runner = _sync_step(layer, runner)
        return runner(*args, **kwargs)  # type: ignore[no-any-return]

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        """Await ``fn(*args, **kwargs)`` through the policy."""
        if not is_async_callable(fn):
            raise TypeError(f"{call_name(fn)} is not async: use `policy.call(fn, ...)`")
        runner: Callable[..., Awaitable[Any]] = fn
        for layer in reversed(self._layers):
            runner = _async_step(layer, runner)
        return await runner(*args, **kwargs)  # type: ignore[no-any-return]


def _sync_step(layer: Layer, inner: Callable[..., Any]) -> Callable[..., Any]:
    def step(*args: Any, **kwargs: Any) -> Any:
        return layer.run_sync(inner, args, kwargs)

    step.__qualname__ = getattr(inner, "__qualname__", step.__qualname__)
    step.__module__ = getattr(inner, "__module__", step.__module__)
    return step


def _async_step(layer: Layer, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def step(*args: Any, **kwargs: Any) -> Any:
        return await layer.run_async(inner, args, kwargs)

    step.__qualname__ = getattr(inner, "__qualname__", step.__qualname__)
    step.__module__ = getattr(inner, "__module__", step.__module__)
    return step


def _timeout_layer(parameter: str, value: float | Timeout | None, kind: str, mode: str) -> Timeout | None:
    if value is None:
        return None
    if isinstance(value, Timeout):
        return dataclasses.replace(value, kind=kind)
    check_seconds(parameter, value)
    return Timeout(float(value), mode, kind)  # type: ignore[arg-type]
