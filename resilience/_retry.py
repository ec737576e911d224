"""``rs.retry_on``: retry on chosen failures with capped, jittered exponential backoff.

The first attempt runs without any retry machinery; tenacity's loop (its wait
strategies, its state) is built only after a retryable failure.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
from tenacity import AsyncRetrying, DoAttempt, DoSleep, RetryCallState, Retrying
from tenacity.wait import wait_base

from resilience import _clock
from resilience._budget import RetryBudget, close_call, open_call
from resilience._engine import Args, Kwargs, Layer, active_deadline, call_name, check_seconds, current_record
from resilience._pybreaker import pybreaker
from resilience.classify import Classifier, ClassifierLike, Outcome, Verdict, on_result, to_classifier
from resilience.errors import CircuitOpenError, DeadlineExceeded, RateLimited

R = TypeVar("R")
logger = logging.getLogger("resilience")

WaitStrategy = Callable[[RetryCallState], float]


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Passed to ``on_retry`` (and logged) before each retry's wait.

    ``attempt`` is the attempt that just failed (1-based); ``wait`` the seconds about to
    be slept; ``exception`` is None when a returned value was retryable.
    """

    call_name: str
    attempt: int
    attempts: int
    wait: float
    error_type: str
    reason: str
    exception: BaseException | None
    value: Any = None

    def log_fields(self) -> dict[str, Any]:
        # LogRecord owns "name", "msg", "args"...: these keys must not collide with them.
        return {
            "call_name": self.call_name,
            "attempt": self.attempt,
            "max_attempts": self.attempts,
            "wait": self.wait,
            "error_type": self.error_type,
            "reason": self.reason,
        }


class _Run:
    """The state of one logical call once it has failed retryably."""

    __slots__ = ("layer", "name", "start", "stop_reason", "verdict")

    def __init__(self, layer: Retry, name: str, verdict: Verdict, start: float) -> None:
        self.layer = layer
        self.name = name
        self.start = start
        self.verdict: Verdict | None = verdict
        self.stop_reason = ""

    def retry(self, state: RetryCallState) -> bool:
        assert state.outcome is not None
        failed = state.outcome.failed
        outcome = Outcome.of_exception(_exception(state)) if failed else Outcome(state.outcome.result())
        self.verdict = self.layer.verdict(outcome)
        return self.verdict is not None and self.verdict.retryable

    def wait(self, state: RetryCallState) -> float:
        backoff = float(self.layer.wait_strategy(state))
        requested = self.verdict.retry_after if self.verdict else None
        return max(backoff, requested) if requested is not None else backoff

    def stop(self, state: RetryCallState) -> bool:
        layer = self.layer
        made = state.attempt_number
        if made >= layer.attempts:
            self.stop_reason = f"all {layer.attempts} attempts failed"
            return True
        requested = self.verdict.retry_after if self.verdict else None
        if requested is not None and requested > layer.max_retry_after:
            self.stop_reason = (
                f"the server asked to wait {requested:.3g} s, more than max_retry_after={layer.max_retry_after:.3g} s"
            )
            return True
        deadline = active_deadline()
        if deadline is not None:
            left = deadline - _clock.monotonic()
            if state.upcoming_sleep >= left:
                what = "the server asked to wait" if requested is not None else "the next wait is"
                self.stop_reason = f"{what} {state.upcoming_sleep:.3g} s but the deadline leaves {max(left, 0):.3g} s"
                return True
        # Asked last, so that a retry the other rules forbid never spends the budget.
        budget: RetryBudget | None = getattr(layer, "budget", None)
        if budget is not None and not budget.withdraw():
            self.stop_reason = f"the retry budget is spent: {budget!r} allows no retry right now"
            return True
        return False

    def before_sleep(self, state: RetryCallState) -> None:
        assert state.outcome is not None
        exc = state.outcome.exception() if state.outcome.failed else None
        error_type = type(exc).__name__ if exc is not None else "result"
        reason = self.verdict.reason if self.verdict else ""
        record = current_record.get()
        if record is not None:
            record.attempts = state.attempt_number + 1
            if record.retry_reasons is None:
                record.retry_reasons = []
            record.retry_reasons.append(reason or error_type)
        hook = self.layer.on_retry
        log = logger.isEnabledFor(logging.WARNING)
        if hook is None and not log:
            return  # nobody listens: build nothing
        event = RetryEvent(
            call_name=self.name,
            attempt=state.attempt_number,
            attempts=self.layer.attempts,
            wait=state.upcoming_sleep,
            error_type=error_type,
            reason=reason,
            exception=exc,
            value=None if exc is not None else state.outcome.result(),
        )
        if log:
            logger.warning(
                "retrying %s in %.3g s after attempt %d of %d failed: %s",
                self.name,
                event.wait,
                event.attempt,
                event.attempts,
                f"returned {reason or 'a retryable value'}" if exc is None else f"{error_type}: {exc}",
                extra=event.log_fields(),
            )
        if hook is not None:
            try:
                hook(event)
            except Exception:  # a hook must never change the call's outcome
                logger.exception("on_retry hook %r raised; ignored", hook, extra={"call_name": self.name})

    def give_up(self, state: RetryCallState) -> Any:
        assert state.outcome is not None
        elapsed = _clock.monotonic() - self.start
        if state.outcome.failed:
            exc = _exception(state)
            exc.add_note(
                f"resilience: gave up on {self.name} after {state.attempt_number} attempt(s) over "
                f"{elapsed:.3g} s: {self.stop_reason}"
            )
            raise exc
        return state.outcome.result()  # a retryable value that ran out of attempts: returned as is


def _exception(state: RetryCallState) -> BaseException:
    assert state.outcome is not None
    exc = state.outcome.exception()
    assert exc is not None
    return exc


def _current_exception() -> tuple[type[BaseException], BaseException, Any]:
    _, exc, tb = sys.exc_info()
    assert exc is not None
    return type(exc), exc, tb


@dataclass(frozen=True, slots=True, repr=False)
class Retry(Layer):
    """A retry layer; build it with :func:`retry_on`."""

    classifier: Classifier
    attempts: int
    wait_strategy: WaitStrategy
    max_retry_after: float = 60.0
    on_retry: Callable[[RetryEvent], object] | None = None
    retries_open_circuit: bool = False
    checks_results: bool = False
    label: str = ""

    def __repr__(self) -> str:
        return f"retry_on({self.label}, attempts={self.attempts})"

    def verdict(self, outcome: Outcome) -> Verdict | None:
        """This layer's verdict, after the rules no classifier can override."""
        exc = outcome.exception
        if exc is not None:
            if not isinstance(exc, Exception):  # cancellation, KeyboardInterrupt, SystemExit...
                return None
            if isinstance(exc, CircuitOpenError) and not self.retries_open_circuit:
                return None
            if isinstance(exc, DeadlineExceeded):
                enclosing = active_deadline()
                if enclosing is not None and exc.deadline >= enclosing:
                    return None  # our own time is up: retrying cannot help
        verdict = self.classifier(outcome)
        if verdict is not None and isinstance(exc, CircuitOpenError) and verdict.retryable:
            # An open breaker knows exactly when it admits a trial: wait that long.
            return Verdict(True, True, False, False, "circuit_open", exc.retry_after)
        if verdict is not None and isinstance(exc, RateLimited) and verdict.retryable:
            return Verdict(True, True, False, False, "rate_limited", exc.retry_after)  # likewise: a token's ETA
        return verdict

    def _retry_run(self, fn: Callable[..., Any], start: float, result: Any, exc: BaseException | None) -> _Run | None:
        """The state of a retry loop when the first attempt's outcome is worth retrying, else None."""
        verdict = self.verdict(Outcome(result, exc))
        if verdict is None or not verdict.retryable:
            return None
        return _Run(self, call_name(fn), verdict, start)

    def _start(
        self,
        retrying: Retrying | AsyncRetrying,
        run: _Run,
        fn: Callable[..., Any],
        args: Args,
        kwargs: Kwargs,
        result: Any,
        exc: BaseException | None,
    ) -> RetryCallState:
        retrying.stop = run.stop
        retrying.wait = run.wait
        retrying.retry = run.retry
        retrying.before_sleep = run.before_sleep
        retrying.retry_error_callback = run.give_up
        retrying.begin()
        state = RetryCallState(retrying, fn, args, kwargs)
        if exc is not None:
            state.set_exception((type(exc), exc, exc.__traceback__))
        else:
            state.set_result(result)
        return state

    # The retry loops run *after* the first attempt's `except` block has ended, so later
    # exceptions do not get the first one chained as their __context__.
    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        start = _clock.current.monotonic()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if (run := self._retry_run(fn, start, None, exc)) is None:
                raise
            failure: BaseException | None = exc
            value: Any = None
        else:
            if not self.checks_results or (run := self._retry_run(fn, start, result, None)) is None:
                return result
            failure, value = None, result
        return self._retry_sync(fn, args, kwargs, run, value, failure)

    def _retry_sync(
        self, fn: Callable[..., R], args: Args, kwargs: Kwargs, run: _Run, result: Any, exc: BaseException | None
    ) -> R:
        retrying = Retrying(sleep=_clock.sleep, reraise=True)
        state = self._start(retrying, run, fn, args, kwargs, result, exc)
        del exc  # the state holds it; keeping a local would pin the traceback
        while True:
            do = retrying.iter(state)
            if isinstance(do, DoAttempt):
                try:
                    result = fn(*args, **kwargs)
                except BaseException:  # noqa: BLE001 -- classified by the loop
                    state.set_exception(_current_exception())
                else:
                    state.set_result(result)
            elif isinstance(do, DoSleep):
                state.prepare_for_next_attempt()
                _clock.sleep(do)
            else:
                return do  # type: ignore[no-any-return]

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        start = _clock.current.monotonic()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            if (run := self._retry_run(fn, start, None, exc)) is None:
                raise
            failure: BaseException | None = exc
            value: Any = None
        else:
            if not self.checks_results or (run := self._retry_run(fn, start, result, None)) is None:
                return result
            failure, value = None, result
        return await self._retry_async(fn, args, kwargs, run, value, failure)

    async def _retry_async(
        self,
        fn: Callable[..., Awaitable[R]],
        args: Args,
        kwargs: Kwargs,
        run: _Run,
        result: Any,
        exc: BaseException | None,
    ) -> R:
        retrying = AsyncRetrying(sleep=_clock.asleep, reraise=True)
        state = self._start(retrying, run, fn, args, kwargs, result, exc)
        del exc
        while True:
            do = await retrying.iter(state)
            if isinstance(do, DoAttempt):
                try:
                    result = await fn(*args, **kwargs)
                except BaseException:  # noqa: BLE001 -- classified by the loop
                    state.set_exception(_current_exception())
                else:
                    state.set_result(result)
            elif isinstance(do, DoSleep):
                state.prepare_for_next_attempt()
                await _clock.asleep(do)
            else:
                return do  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True, repr=False)
class BudgetedRetry(Retry):
    """A retry layer whose retries draw on a :class:`RetryBudget` (``retry_on(..., budget=b)``).

    A subclass, so that a retry without a budget does no budget work at all.
    """

    budget: RetryBudget = dataclasses.field(kw_only=True)

    def __repr__(self) -> str:
        return f"retry_on({self.label}, attempts={self.attempts}, budget={self.budget!r})"

    # One deposit per logical call, and none when an enclosing layer on the same budget
    # made it; the mark tells a hedge (or a retry) inside that its attempts are not new calls.
    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        token = open_call(self.budget)
        try:
            return Retry.run_sync(self, fn, args, kwargs)
        finally:
            close_call(token)

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        token = open_call(self.budget)
        try:
            return await Retry.run_async(self, fn, args, kwargs)
        finally:
            close_call(token)


def with_budget(retry: Retry, budget: RetryBudget) -> Retry:
    """``retry`` with its retries drawing on ``budget`` (the Policy's ``budget=`` field)."""
    fields = {f.name: getattr(retry, f.name) for f in dataclasses.fields(Retry)}
    return BudgetedRetry(**fields, budget=budget)


def _takes_one_argument(fn: object) -> bool:
    if not callable(fn):
        return False
    try:
        inspect.signature(fn).bind(None)
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (some builtins): trust it
        return True
    return True


def retry_on(
    *on: ClassifierLike,
    attempts: int = 3,
    wait_initial: float = 0.5,
    wait_max: float = 10.0,
    jitter: bool = True,
    wait: WaitStrategy | None = None,
    result: Callable[[Any], bool] | None = None,
    max_retry_after: float = 60.0,
    on_retry: Callable[[RetryEvent], object] | None = None,
    budget: RetryBudget | None = None,
) -> Retry:
    """Retry a call that fails with one of ``on`` (or returns a value ``result`` flags).

    - ``on``: exception classes, predicates over the exception, or classifiers
      (``resilience.http.TRANSIENT``). At least one of ``on`` / ``result`` is required.
    - ``attempts``: total attempts including the first (3 = one call, two retries).
    - Backoff: full-jitter exponential, ``uniform(0, min(wait_max, wait_initial * 2**n))``
      seconds (no jitter: the upper bound itself); ``wait=`` takes any tenacity wait
      strategy instead. A zero wait never calls sleep.
    - A server-requested delay (Retry-After in a verdict) replaces a shorter backoff; above
      ``max_retry_after`` seconds, or beyond the enclosing deadline, retrying stops at once.
    - Never sleeps past, or starts an attempt after, the enclosing deadline. Never retries
      cancellation, KeyboardInterrupt, SystemExit, an open circuit (unless ``on`` names
      ``CircuitOpenError``) or the enclosing deadline's own ``DeadlineExceeded``.
    - When retries stop, the last exception is re-raised unchanged with a note saying why;
      a retryable *returned value* that exhausts the attempts is returned as is.
    - Each retry logs one WARNING on logger "resilience" and calls ``on_retry(RetryEvent)``.
    - ``budget``: an :class:`rs.RetryBudget` shared with other calls; a retry it denies is
      not made and the failure surfaces with a note saying the budget is spent.
    - An ``rs.RateLimited`` that ``on`` covers is retried after its ``retry_after``.

    >>> import resilience as rs
    >>> @rs.retry_on(ConnectionError, attempts=3, wait_initial=0.2)
    ... def ping() -> str:
    ...     return "pong"
    >>> ping()
    'pong'
    """
    if not on and result is None:
        raise TypeError("retry_on() needs something to retry on: exception classes, predicates, classifiers or result=")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an int >= 1 (it counts the first call), got {attempts!r}")
    check_seconds("wait_initial", wait_initial, allow_zero=True)
    check_seconds("wait_max", wait_max, allow_zero=True)
    check_seconds("max_retry_after", max_retry_after, allow_zero=True)
    if not isinstance(jitter, bool):
        raise TypeError(f"jitter must be True or False, got {jitter!r}")
    if wait is not None and not isinstance(wait, wait_base) and not _takes_one_argument(wait):
        raise TypeError(f"wait must be a tenacity wait strategy (a callable taking a RetryCallState), got {wait!r}")
    if budget is not None and not isinstance(budget, RetryBudget):
        raise TypeError(f"budget must be an rs.RetryBudget(...), got {budget!r}")
    if on_retry is not None and (not callable(on_retry) or inspect.iscoroutinefunction(on_retry)):
        raise TypeError(
            f"on_retry must be a plain (not async) callable taking a RetryEvent; it runs between attempts, "
            f"got {on_retry!r}"
        )
    classifier: Classifier | None = to_classifier(on) if on else None
    if result is not None:
        by_result = on_result(result)
        classifier = by_result if classifier is None else classifier | by_result
    assert classifier is not None
    if wait is None:
        wait = (
            tenacity.wait_random_exponential(multiplier=wait_initial, max=wait_max)
            if jitter
            else tenacity.wait_exponential(multiplier=wait_initial, max=wait_max)
        )
    names_open_circuit = any(isinstance(m, type) and issubclass(m, pybreaker.CircuitBreakerError) for m in on)
    layer = Retry(
        classifier=classifier,
        attempts=attempts,
        wait_strategy=wait,
        max_retry_after=float(max_retry_after),
        on_retry=on_retry,
        retries_open_circuit=names_open_circuit,
        checks_results=result is not None or any(isinstance(m, Classifier) for m in on),
        label=", ".join(getattr(m, "__name__", repr(m)) for m in on) + (", result=..." if result else ""),
    )
    return layer if budget is None else with_budget(layer, budget)
