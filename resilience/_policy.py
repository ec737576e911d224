"""``rs.Policy``: the layers of a dependency as one object, in the canonical order."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from resilience._budget import RetryBudget
from resilience._bulkhead import BulkheadLayer
from resilience._circuit import Circuit
from resilience._engine import Layer, call_name, check_seconds, decorate, is_async_callable
from resilience._fallback import Fallback
from resilience._hedge import Hedge
from resilience._rate_limit import RateLimit
from resilience._retry import BudgetedRetry, Retry, with_budget
from resilience._timeout import Timeout
from resilience.monitor import Monitored, monitored

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Policy:
    """Timeouts, retries, a breaker, overload protection, a fallback and monitoring for
    one dependency.

    Applied in the canonical order, outermost first::

        monitored(fallback(total timeout(retry[budget](hedge(rate_limit(bulkhead(
            circuit(attempt timeout(fn)))))))))

    so the breaker sees every attempt, the total deadline bounds all retries and their
    waits (for a token or a slot too), the monitor sees one logical call, and every
    attempt that may reach the dependency -- a retry or a hedged extra -- takes a token
    and a slot. Rejections by the rate limit and the bulkhead happen outside the breaker,
    so they never count as the dependency's failures.

    Fields: ``timeout`` (total seconds, or an ``rs.timeout`` layer), ``attempt_timeout``
    (per attempt), ``retry`` (``rs.retry_on``), ``circuit`` (``rs.circuit``), ``monitor``
    (a name, or ``rs.monitored``), ``fallback`` (``rs.fallback``), ``bulkhead``
    (``rs.bulkhead``), ``rate_limit`` (``rs.rate_limit``), ``budget`` (an
    ``rs.RetryBudget`` for ``retry``'s retries; needs ``retry``) and ``hedge``
    (``rs.hedge``). A float total ``timeout`` uses a worker thread only when there is no
    enforcing (non-cooperative) ``attempt_timeout``; otherwise it is cooperative: retries
    stop at it and each attempt's timeout is clipped to it.

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
    bulkhead: BulkheadLayer | None = None
    rate_limit: RateLimit | None = None
    budget: RetryBudget | None = None
    hedge: Hedge | None = None
    _layers: tuple[Layer, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, kind, factory in _FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"Policy {name}= takes {factory}, got {value!r}")
        if self.monitor is not None and not isinstance(self.monitor, (str, Monitored)):
            raise TypeError(f"Policy monitor= takes a name or rs.monitored(...), got {self.monitor!r}")
        attempt = _timeout_layer("attempt_timeout", self.attempt_timeout, "attempt", "thread")
        # An enforcing attempt timeout is clipped to the total deadline, so the total needs
        # no thread of its own; a cooperative one enforces nothing, so then the total must.
        enforced = attempt is not None and attempt.mode != "cooperative"
        total = _timeout_layer("timeout", self.timeout, "total", "cooperative" if enforced else "thread")
        monitor = monitored(self.monitor) if isinstance(self.monitor, str) else self.monitor
        retry = self.retry
        if self.budget is not None:
            if retry is None:
                raise ValueError("Policy budget= limits retries: it needs retry= as well")
            if isinstance(retry, BudgetedRetry):
                if retry.budget is not self.budget:
                    raise ValueError(
                        "Policy budget= and a retry_on(..., budget=...) of its own disagree; give the budget once"
                    )
            else:
                retry = with_budget(retry, self.budget)
        layers = (
            monitor,
            self.fallback,
            total,
            retry,
            self.hedge,
            self.rate_limit,
            self.bulkhead,
            self.circuit,
            attempt,
        )
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


_FIELDS: tuple[tuple[str, type, str], ...] = (
    ("retry", Retry, "rs.retry_on(...)"),
    ("circuit", Circuit, "rs.circuit(...)"),
    ("fallback", Fallback, "rs.fallback(...)"),
    ("bulkhead", BulkheadLayer, "rs.bulkhead(...)"),
    ("rate_limit", RateLimit, "rs.rate_limit(...)"),
    ("budget", RetryBudget, "rs.RetryBudget(...)"),
    ("hedge", Hedge, "rs.hedge(...)"),
)


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
