"""Ready-made policies for HTTP endpoints, and per-call idempotency keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import Token
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, overload

import requests

from resilience._circuit import circuit
from resilience._engine import Args, Kwargs, Layer, check_seconds, current_record, decorate, error_kind
from resilience._fallback import Fallback, answered_instead
from resilience._policy import Policy
from resilience._retry import retry_on
from resilience._timeout import Timeout, timeout
from resilience.classify import Outcome
from resilience.http._classify import TRANSIENT, BusinessHook, business_failure, check_business
from resilience.http._context import IdempotencyKeys, idempotency_key, policy_timeout, timeout_pair
from resilience.monitor import Monitored

P = ParamSpec("P")
R = TypeVar("R")

TimeoutSpec = float | tuple[float, float]


_Tokens = tuple[Token[tuple[float, float] | None] | None, Token[IdempotencyKeys | None] | None]


class _Settings:
    """Sets what the Session below reads for one logical call: the policy's request
    timeout and, for idempotent calls, the call's Idempotency-Keys."""

    __slots__ = ("idempotent", "numbered", "timeout")

    def __init__(self, timeout: tuple[float, float] | None, idempotent: bool, numbered: bool) -> None:
        self.timeout = timeout
        self.idempotent = idempotent
        self.numbered = numbered

    def enter(self) -> _Tokens:
        timeout_token = policy_timeout.set(self.timeout) if self.timeout is not None else None
        key_token = None
        if self.idempotent:
            # Nested inside another idempotent call, take the next key of the enclosing one
            # as this call's base: stable across the outer call's attempts, never shared.
            outer = idempotency_key.get()
            base = outer.next_key() if outer is not None else None
            key_token = idempotency_key.set(IdempotencyKeys(base, self.numbered))
        return timeout_token, key_token

    @staticmethod
    def leave(tokens: _Tokens) -> None:
        timeout_token, key_token = tokens
        if key_token is not None:
            idempotency_key.reset(key_token)
        if timeout_token is not None:
            policy_timeout.reset(timeout_token)


@dataclass(frozen=True, slots=True, eq=False)
class _NewAttempt(Layer):
    """Innermost in an idempotent policy: each attempt repeats the same sequence of keys."""

    def __repr__(self) -> str:
        return "idempotency_keys()"

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        if (keys := idempotency_key.get()) is not None:
            keys.new_attempt()
        return fn(*args, **kwargs)

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        if (keys := idempotency_key.get()) is not None:
            keys.new_attempt()
        return await fn(*args, **kwargs)


@dataclass(frozen=True, slots=True, eq=False)
class _HttpCall(Layer):
    """The per-call settings layer: outside the retries, so every attempt shares them."""

    settings: _Settings

    def __repr__(self) -> str:
        parts = [f"timeout={self.settings.timeout}"] if self.settings.timeout else []
        return f"http({', '.join([*parts, 'idempotent'] if self.settings.idempotent else parts)})"

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        tokens = self.settings.enter()
        try:
            return _judged(fn(*args, **kwargs))
        finally:
            self.settings.leave(tokens)

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        tokens = self.settings.enter()
        try:
            return _judged(await fn(*args, **kwargs))
        finally:
            self.settings.leave(tokens)


def _failed_response(result: object) -> str | None:
    """The reason a returned response is a failure (a 503 that outlived its retries), or None."""
    if isinstance(result, requests.Response) and result.status_code >= 400:
        verdict = TRANSIENT(Outcome(result))
        if verdict is not None and verdict.failed:
            return verdict.reason
    return None


def _judged(result: R) -> R:
    """Returned as is, but the monitor counts a failed response as a failure, not "ok"."""
    reason = _failed_response(result)
    record = current_record.get()
    if reason is not None and record is not None:
        record.error_kind = "HTTPError"  # as when the same status is raised by raise_for_status()
        record.verdict = reason
    return result


@dataclass(frozen=True, slots=True, eq=False)
class _BusinessCheck(Layer):
    """Innermost: turns a 2xx answer the hook flags into a :class:`BusinessError`."""

    hook: BusinessHook

    def __repr__(self) -> str:
        return f"business({getattr(self.hook, '__name__', self.hook)!r})"

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        result = fn(*args, **kwargs)
        if (error := business_failure(result, self.hook)) is not None:
            raise error
        return result

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        result = await fn(*args, **kwargs)
        if (error := business_failure(result, self.hook)) is not None:
            raise error
        return result


@dataclass(frozen=True, slots=True, eq=False)
class _Drop(Layer):
    """Best effort: any failure -- raised, or a returned error response -- becomes None,
    one WARNING and the outcome "dropped"."""

    def __repr__(self) -> str:
        return "drop_failures()"

    def _answer(self, fn: Callable[..., Any], result: Any) -> Any:
        reason = _failed_response(result)
        if reason is None:
            return result
        answered_instead(fn, "dropped", "HTTPError", "HTTPError", reason)
        return None

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- dropping every failure is the point
            answered_instead(fn, "dropped", error_kind(exc), type(exc).__name__, exc)
            return None  # type: ignore[return-value]
        return self._answer(fn, result)  # type: ignore[no-any-return]

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            answered_instead(fn, "dropped", error_kind(exc), type(exc).__name__, exc)
            return None  # type: ignore[return-value]
        return self._answer(fn, result)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class HttpPolicy(Policy):
    """An ``rs.Policy`` that also tells the ``http.Session`` inside it what to do.

    Extra fields: ``request_timeout`` ((connect, read) seconds for requests that name no
    timeout), ``idempotent`` (one Idempotency-Key per logical call, so POSTs retry like
    GETs), ``business`` (a hook that turns a 2xx body into :class:`BusinessError`) and
    ``drop_failures`` (best effort: failures return None). Build one with :func:`policy`
    or :func:`best_effort`.
    """

    request_timeout: tuple[float, float] | None = None
    idempotent: bool = False
    business: BusinessHook | None = None
    drop_failures: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.timeout, (int, float)) and not isinstance(self.timeout, bool):
            # The Session keeps to the deadline: no thread per call (also after dataclasses.replace).
            object.__setattr__(self, "timeout", _deadline(self.timeout))
        Policy.__post_init__(self)
        if self.request_timeout is not None:
            object.__setattr__(self, "request_timeout", timeout_pair(self.request_timeout, "request_timeout"))
        if not isinstance(self.idempotent, bool):
            raise TypeError(f"idempotent must be True or False, got {self.idempotent!r}")
        check_business(self.business)
        layers = list(self.layers)
        # Settings go inside the monitor, fallback and total deadline, outside the retries.
        outer = (Monitored, Fallback)
        cut = next(
            (
                i
                for i, layer in enumerate(layers)
                if not isinstance(layer, outer) and not (isinstance(layer, Timeout) and layer.kind == "total")
            ),
            len(layers),
        )
        layers.insert(cut, _HttpCall(_Settings(self.request_timeout, self.idempotent, numbered=True)))
        if self.idempotent:
            layers.append(_NewAttempt())
        if self.business is not None:
            layers.append(_BusinessCheck(self.business))
        if self.drop_failures:  # just inside the monitor, so it records the drop
            layers.insert(1 if layers and isinstance(layers[0], Monitored) else 0, _Drop())
        object.__setattr__(self, "_layers", tuple(layers))


_POLICY_FIELDS = frozenset(
    {"attempt_timeout", "retry", "circuit", "monitor", "fallback", "bulkhead", "rate_limit", "budget", "hedge"}
)


def _check_more(function: str, more: dict[str, Any]) -> None:
    unknown = sorted(set(more) - _POLICY_FIELDS)
    if unknown:
        raise TypeError(
            f"{function}() got unexpected keyword argument(s) {', '.join(unknown)}; "
            f"it passes on only rs.Policy fields: {', '.join(sorted(_POLICY_FIELDS))}"
        )


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string (the breaker's and the monitor's name), got {name!r}")
    if not name:
        raise ValueError("name must not be empty: it names the breaker and the monitor")


def _deadline(value: float | Timeout | None) -> Timeout | None:
    if value is None or isinstance(value, Timeout):
        return value
    check_seconds("deadline", value)
    # Cooperative: the http.Session inside keeps to it (no thread per call). Pass
    # deadline=rs.timeout(s) to enforce it on code that does not read the deadline.
    return timeout(value, mode="cooperative")


def policy(
    name: str,
    *,
    timeout: TimeoutSpec = (3.0, 10.0),
    deadline: float | Timeout | None = 30.0,
    attempts: int = 3,
    fail_max: int = 5,
    reset_timeout: float = 30.0,
    max_retry_after: float = 60.0,
    wait_initial: float = 0.5,
    wait_max: float = 10.0,
    idempotent: bool = False,
    business: BusinessHook | None = None,
    **more: Any,
) -> HttpPolicy:
    """A policy for an ordinary HTTP endpoint, used with an :class:`http.Session`.

    - ``timeout``: (connect, read) seconds for each request that names none.
    - ``deadline``: seconds for the whole logical call, retries and waits included
      (cooperative: the Session clips each request to it and cuts slow bodies), or None.
    - ``attempts``: retries on :data:`TRANSIENT` (method-aware) with jittered backoff from
      ``wait_initial`` to ``wait_max``; Retry-After honoured up to ``max_retry_after``.
    - A breaker named ``name`` (``fail_max`` failures, open ``reset_timeout`` s) counting
      only server-side failures; monitored under ``name``.
    - ``idempotent``: give each logical call an Idempotency-Key, so its POSTs are retried.
    - ``business``: a hook over 2xx bodies; a truthy answer raises :class:`BusinessError`.
    - ``**more``: other ``rs.Policy`` fields (``fallback``, ``bulkhead``, ``rate_limit``,
      ``budget``, ``hedge``, ``attempt_timeout``) or replacements for ``retry``,
      ``circuit`` (None for no breaker) and ``monitor``.

    >>> from resilience import http
    >>> USERS = http.policy("users-api", timeout=(1.0, 5.0), deadline=10.0)
    """
    _check_name(name)
    _check_more("policy", more)
    check_business(business)  # early, before the breaker is declared
    fields: dict[str, Any] = {
        "timeout": _deadline(deadline),
        # A body the business hook flags raises BusinessError in the innermost layer, which
        # TRANSIENT calls fatal: retry and breaker need no hook of their own.
        "retry": retry_on(
            TRANSIENT,
            attempts=attempts,
            wait_initial=wait_initial,
            wait_max=wait_max,
            max_retry_after=max_retry_after,
        ),
        "monitor": name,
    }
    if "circuit" not in more:
        fields["circuit"] = circuit(name, fail_max=fail_max, reset_timeout=reset_timeout, on=TRANSIENT)
    fields.update(more)
    return HttpPolicy(
        **fields,
        request_timeout=timeout_pair(timeout, "timeout"),
        idempotent=idempotent,
        business=business,
    )


def best_effort(
    name: str,
    *,
    timeout: TimeoutSpec = (1.0, 2.0),
    deadline: float | Timeout | None = None,
    fail_max: int = 5,
    reset_timeout: float = 30.0,
    **more: Any,
) -> HttpPolicy:
    """A policy for calls that must never hurt the caller (telemetry, log shipping).

    No retry. Any failure -- an error status, a timeout, an open breaker -- is dropped:
    the call returns None, logs one WARNING and counts as outcome "dropped". A breaker
    named ``name`` stops calling a dead collector. ``deadline`` defaults to connect + read.

    >>> from resilience import http
    >>> BEACON = http.best_effort("telemetry")
    """
    _check_name(name)
    _check_more("best_effort", more)
    pair = timeout_pair(timeout, "timeout")
    fields: dict[str, Any] = {"timeout": _deadline(sum(pair) if deadline is None else deadline), "monitor": name}
    if "circuit" not in more:
        fields["circuit"] = circuit(name, fail_max=fail_max, reset_timeout=reset_timeout, on=TRANSIENT)
    fields.update(more)
    return HttpPolicy(**fields, request_timeout=pair, drop_failures=True)


@overload
def idempotent(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def idempotent(fn: None = None, /) -> Layer: ...
def idempotent(fn: Callable[P, R] | None = None, /) -> Callable[P, R] | Layer:
    """Give the requests of one logical call a stable ``Idempotency-Key`` header.

    Apply it *outside* the retrying layer: every attempt of one call sends the same key,
    the next call gets a new one, and :data:`TRANSIENT` then retries those POSTs like
    GETs. The key is added by :class:`http.Session` to requests whose method is not
    idempotent and that carry no key of their own. Every such request of one call gets
    the same key, so make one POST per decorated call; ``http.policy(..., idempotent=True)``
    sees each attempt start and numbers the keys of several POSTs in one call instead.

    ``@http.idempotent()`` (called) is the same, as a layer object for stacking.

    >>> import resilience as rs
    >>> from resilience import http
    >>> @http.idempotent
    ... @rs.retry_on(http.TRANSIENT)
    ... def charge(session: http.Session, cents: int) -> None: ...
    """
    layer = _HttpCall(_Settings(None, True, numbered=False))
    return layer if fn is None else decorate(layer, fn)
