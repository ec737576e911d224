"""``rs.circuit``: a circuit breaker that never holds a lock while the call runs.

State lives in a pybreaker storage object (memory by default) and listeners follow
pybreaker's ``CircuitBreakerListener`` protocol. Admission reads the state without a
lock; transitions take a short lock. Every transition starts a new *generation*, and an
outcome is applied only to the generation that admitted it, so a slow call that
finishes after the breaker moved on cannot flip it back.

Trip rules (consecutive failures, failure and slow-call rates over a window) live in
``_circuit_rules``; state shared across processes through Redis in ``_circuit_redis``,
imported only when a Redis storage is asked for.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

from resilience import _clock
from resilience._circuit_rules import BreakerConfig, window_stats
from resilience._engine import Args, Kwargs, Layer, call_name, check_seconds
from resilience._pybreaker import pybreaker
from resilience._registry import NamedFactory, NamedRegistry
from resilience.classify import Classifier, ClassifierLike, Outcome, Verdict, to_classifier
from resilience.errors import BulkheadFull, CircuitOpenError, RateLimited

if TYPE_CHECKING:
    import redis
    import redis.asyncio

    Storage: TypeAlias = pybreaker.CircuitBreakerStorage | str | redis.Redis | redis.asyncio.Redis
else:
    Storage: TypeAlias = Any

__all__ = ["Breaker", "BreakerConfig", "Circuit", "circuit"]

R = TypeVar("R")
logger = logging.getLogger("resilience")
STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_HALF_OPEN, pybreaker.STATE_OPEN
# Manual states (resilience4j's): set by hand, left only by hand.
STATE_FORCED_OPEN, STATE_DISABLED, STATE_METRICS_ONLY = "forced-open", "disabled", "metrics-only"
_ADMIT_ALL = frozenset({STATE_METRICS_ONLY, STATE_DISABLED})  # admit every call without a lock
_COUNTING = frozenset({STATE_CLOSED, STATE_METRICS_ONLY})  # outcomes go to the counter and window
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

FAILURE, SUCCESS, IGNORED = "failure", "success", "ignored"
_REFUSALS = (CircuitOpenError, BulkheadFull, RateLimited)
TRIALS_BUSY_RETRY_AFTER = 1.0  # CircuitOpenError.retry_after while every half-open trial is in flight


class _StateName:
    """What pybreaker listeners receive as old/new state: an object with ``.name``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


class Breaker:
    """The shared state of one named circuit; get it with ``rs.circuit.get(name)``.

    Exposes ``state`` ("closed", "open", "half-open", or a manual state: "forced-open",
    "disabled", "metrics-only"), ``fail_counter`` (consecutive failures), ``retry_after``
    and ``stats()``. By hand: ``open()`` (for the current open time), ``close()``,
    ``force_open()`` (reject every call until changed by hand), ``disable()`` (admit every
    call, record nothing), ``metrics_only()`` (admit every call, record outcomes, never
    trip) and ``reset()`` (a new closed breaker). Listeners hear each real change once.
    """

    awaits = False  # whether async callers must await admission and outcomes (shared storage)

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        *,
        counts: Classifier | None = None,
        exclude: Classifier | None = None,
        listeners: Iterable[pybreaker.CircuitBreakerListener] = (),
        storage: pybreaker.CircuitBreakerStorage | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._counts = counts
        self._exclude = exclude
        self.checks_results = counts is not None or exclude is not None
        # Calls are timed only when a slow-call rule needs their duration.
        self.timed = config.slow_call is not None
        # Whether the layer's fast paths (no timing, nothing awaited) serve this breaker.
        self.simple = not self.timed and not self.awaits
        self.listeners: tuple[pybreaker.CircuitBreakerListener, ...] = tuple(listeners)
        self._storage_arg: Storage | None = storage
        self._storage = storage if storage is not None else pybreaker.CircuitMemoryStorage(STATE_CLOSED)
        self._window = config.new_window()
        self._lock = threading.Lock()
        self._generation = 0
        self._trials = 0
        self._trial_successes = 0
        self._trial_failures = 0
        self._trial_slow = 0
        self._opened_mono: float | None = None
        self._opened_at: datetime | None = None  # the storage's opened_at as this process last wrote it
        self._open_for = config.reset_timeout  # the current open period (grows with reset_backoff)
        self._reopens = 0  # consecutive re-openings from half-open
        # Admission times of the half-open trials in flight, oldest first. Which trial finished
        # is unknown, so a finished trial removes the oldest: a trial is never presumed hung
        # early, only (at worst) late.
        self._trial_starts: list[float] = []
        self._rejected = 0
        self._opened = 0

    # pybreaker-compatible read-only views, for listeners written against pybreaker
    @property
    def state(self) -> str:
        """One of "closed", "open", "half-open", "forced-open", "disabled", "metrics-only"."""
        return self._storage.state

    current_state = state

    @property
    def fail_counter(self) -> int:
        """Consecutive failures counted while closed."""
        return self._storage.counter

    @property
    def success_counter(self) -> int:
        """Successful trials in the current half-open period."""
        return self._trial_successes

    @property
    def fail_max(self) -> int | None:
        """Consecutive failures that open the breaker (None: no such rule)."""
        return self.config.fail_max

    @property
    def reset_timeout(self) -> float:
        """Seconds the breaker stays open before admitting trials (before any growth)."""
        return self.config.reset_timeout

    @property
    def retry_after(self) -> float:
        """Seconds until a call would be admitted: the open time left, a short wait while
        every half-open trial is in flight, ``math.inf`` while forced open, else 0.0."""
        state = self._storage.state
        if state == STATE_OPEN:
            return max(self._open_left(), 0.0)
        if state == STATE_FORCED_OPEN:
            return math.inf
        if state == STATE_HALF_OPEN and self._trials >= self.config.half_open_calls:
            return self._trials_busy_retry_after()
        return 0.0

    def stats(self) -> dict[str, Any]:
        """A JSON-ready view: name, state, fail_counter, fail_max, retry_after (None while
        forced open), rejected, opened; with a rate rule, ``window`` (calls, failures, slow
        and their rates over the window)."""
        retry_after = self.retry_after
        stats: dict[str, Any] = {
            "name": self.name,
            "state": self.state,
            "fail_counter": self.fail_counter,
            "fail_max": self.config.fail_max,
            "retry_after": None if math.isinf(retry_after) else round(retry_after, 6),
            "rejected": self._rejected,
            "opened": self._opened,
        }
        window = self._window
        if window is not None:
            with self._lock:
                totals = window.totals(_clock.monotonic())
            stats["window"] = window_stats(*totals)
        return stats

    def __repr__(self) -> str:
        if self.config.fail_max is None:
            return f"<Breaker {self.name!r} {self.state}>"
        return f"<Breaker {self.name!r} {self.state} failures={self.fail_counter}/{self.config.fail_max}>"

    def matches(
        self,
        config: BreakerConfig,
        listeners: tuple[pybreaker.CircuitBreakerListener, ...],
        storage: Storage | None,
    ) -> bool:
        """Whether a declaration with these arguments describes this very breaker."""
        return self.config == config and self.listeners == listeners and same_storage(storage, self._storage_arg)

    def check_callable(self, fn: Callable[..., Any]) -> None:
        """Reject, at decoration time, a function this breaker's storage cannot serve."""

    # admission and outcomes
    def acquire(self) -> int:
        """Admit a call or raise CircuitOpenError; returns the admitting generation."""
        # Generation first: if the state moves on between the two reads, the call carries
        # an old generation and its outcome is ignored, never mistaken for a trial's.
        generation = self._generation
        if self._storage.state == STATE_CLOSED:
            return generation
        return self._acquire_slow(generation)

    async def aacquire(self) -> int:
        """``acquire`` for async callers (shared storage awaits its round trip)."""
        return self.acquire()

    def _acquire_slow(self, generation: int) -> int:
        if self._storage.state in _ADMIT_ALL:
            return generation  # admitted without a lock, as while closed
        changes: list[tuple[str, str]] = []
        try:
            with self._lock:
                state = self._storage.state
                if state == STATE_FORCED_OPEN:
                    self._rejected += 1
                    raise CircuitOpenError(self.name, math.inf)
                if state == STATE_OPEN:
                    left = self._open_left()
                    if left > 0:
                        self._rejected += 1
                        raise CircuitOpenError(self.name, left)
                    changes.append(self._move(STATE_HALF_OPEN))
                    state = STATE_HALF_OPEN
                if state == STATE_HALF_OPEN:
                    if self._trials >= self.config.half_open_calls and self._trials_hung():
                        logger.warning(
                            "circuit %r: half-open trials did not finish within %.3g s; admitting new ones",
                            self.name,
                            self.config.reset_timeout,
                            extra={"circuit": self.name},
                        )
                        self._drop_trials_in_flight()
                    if self._trials >= self.config.half_open_calls:
                        self._rejected += 1
                        raise CircuitOpenError(self.name, self._trials_busy_retry_after())
                    self._trials += 1
                    self._trial_starts.append(_clock.monotonic())
                return self._generation
        finally:
            self._announce(changes)

    def succeeded(self, generation: int) -> None:
        """Record a success (the happy path: no lock unless a failure count must reset)."""
        if self.listeners:
            self._tell("success", self)
        storage = self._storage
        if generation == self._generation and storage.state == STATE_CLOSED:
            if storage.counter:
                with self._lock:
                    if generation == self._generation:
                        storage.reset_counter()
            return
        self._apply(generation, SUCCESS, False)

    def record(self, generation: int, outcome: Outcome, duration: float | None = None) -> None:
        """Apply one finished call's outcome (from ``generation``; ``duration`` in seconds
        when a slow-call rule times calls) to the breaker."""
        kind, slow = self.classify(outcome, duration)
        if kind == SUCCESS and not slow:
            self.succeeded(generation)
            return
        self.tell_outcome(kind, outcome)
        self._apply(generation, kind, slow)

    async def arecord(self, generation: int, outcome: Outcome, duration: float | None = None) -> None:
        """``record`` for async callers (shared storage awaits its round trip)."""
        self.record(generation, outcome, duration)

    def classify(self, outcome: Outcome, duration: float | None) -> tuple[str, bool]:
        """(FAILURE, SUCCESS or IGNORED; whether the call was slow). Ignored calls are never slow."""
        kind = self._kind(outcome)
        slow_call = self.config.slow_call
        slow = duration is not None and slow_call is not None and kind != IGNORED and duration > slow_call
        return kind, slow

    def tell_outcome(self, kind: str, outcome: Outcome) -> None:
        """Tell the listeners about a call that did not take the happy path."""
        if self.listeners:
            if kind == FAILURE:
                self._tell("failure", self, outcome.exception)
            elif kind == SUCCESS:
                self._tell("success", self)

    def _apply(self, generation: int, kind: str, slow: bool) -> None:
        changes: list[tuple[str, str]] = []
        with self._lock:
            if generation != self._generation:
                return  # a late result from before the last transition: it changes nothing
            state = self._storage.state
            if state == STATE_HALF_OPEN:
                if self._trial_starts:
                    del self._trial_starts[0]
                if kind == IGNORED:
                    self._trials -= 1  # give the trial slot back
                else:
                    if kind == FAILURE:
                        self._trial_failures += 1
                    else:
                        self._trial_successes += 1
                    self._trial_slow += slow
                    verdict = self.config.trial_verdict(self._trial_successes, self._trial_failures, self._trial_slow)
                    if verdict == STATE_OPEN:
                        changes.append(self._move(STATE_OPEN, reopen=True))
                    elif verdict == STATE_CLOSED:
                        changes.append(self._move(STATE_CLOSED))
            elif kind != IGNORED and state in _COUNTING:
                tripped = self._count(kind == FAILURE, slow)
                if tripped and state == STATE_CLOSED:
                    changes.append(self._move(STATE_OPEN))
        self._announce(changes)

    def _count(self, failed: bool, slow: bool) -> bool:
        """Count an outcome while closed (under the lock); whether the trip rules now say open."""
        storage, config = self._storage, self.config
        if failed:
            storage.increment_counter()
        elif storage.counter:
            storage.reset_counter()
        trip = failed and config.fail_max is not None and storage.counter >= config.fail_max
        window = self._window
        if window is not None:
            window.add(_clock.monotonic(), failed, slow)
            trip = trip or config.tripped(window.calls, window.failures, window.slow)
        return trip

    def _kind(self, outcome: Outcome) -> str:
        exc = outcome.exception
        if exc is not None and not isinstance(exc, Exception):
            return IGNORED  # cancellation and interpreter exits say nothing about the dependency
        if isinstance(exc, _REFUSALS):
            return IGNORED  # an inner breaker, bulkhead or rate limit refused: the dependency was not called
        if self._exclude is not None and self._exclude(outcome) is not None:
            return IGNORED
        if self._counts is None:
            return SUCCESS if exc is None else FAILURE
        verdict = self._counts(outcome)
        if verdict is None or not verdict.failed:
            return SUCCESS  # not a failure this breaker watches (resilience4j semantics)
        if verdict.counts:
            return FAILURE
        return IGNORED  # a failure that is not the dependency's fault (a 404, a 429)

    def _trials_hung(self) -> bool:
        starts = self._trial_starts
        return bool(starts) and _clock.monotonic() - starts[0] >= self.config.reset_timeout

    def _drop_trials_in_flight(self) -> None:
        """The trials in flight are presumed hung (under the lock): a new generation frees
        their slots and ignores their results; the finished trials' results are kept."""
        self._generation += 1
        self._trials = self._trial_successes + self._trial_failures
        self._trial_starts.clear()

    def _trials_busy_retry_after(self) -> float:
        # The trials in flight decide; suggest a short wait, never "now".
        return min(TRIALS_BUSY_RETRY_AFTER, self.config.reset_timeout)

    # transitions
    def _open_left(self) -> float:
        opened_mono = self._opened_mono
        opened_at = self._storage.opened_at
        if opened_mono is not None and opened_at == self._opened_at:
            return opened_mono + self._open_for - _clock.monotonic()  # this process's own opening
        if opened_at is None:  # opened elsewhere (shared storage): its wall clock
            return 0.0
        return opened_at.timestamp() + self.config.reset_timeout - _clock.wall()

    def _move(self, new: str, *, reopen: bool = False) -> tuple[str, str]:
        """Change state under the lock; returns (old, new) for listeners.

        ``reopen``: half-open trials failed, so the open time grows by ``reset_backoff``.
        """
        storage = self._storage
        old = storage.state
        storage.state = new
        self._generation += 1
        self._trials = self._trial_successes = self._trial_failures = self._trial_slow = 0
        self._trial_starts.clear()
        if new == STATE_OPEN:
            self._reopens += reopen
            self._opened += 1
            self._opened_mono = _clock.monotonic()
            self._open_for = self.config.open_period(self._reopens)
            storage.opened_at = self._opened_at = datetime.fromtimestamp(_clock.wall(), UTC)
        else:
            self._opened_mono = None
        if new == STATE_CLOSED:
            self._reopens = 0
            storage.reset_counter()
            storage.reset_success_counter()
            if self._window is not None:
                self._window.clear()
        return old, new

    def _announce(self, changes: Sequence[tuple[str, str]]) -> None:
        for old, new in changes:
            if old == new:
                continue
            level = logging.WARNING if new in (STATE_OPEN, STATE_FORCED_OPEN) else logging.INFO
            logger.log(
                level,
                "circuit %r: %s -> %s",
                self.name,
                old,
                new,
                extra={"circuit": self.name, "old_state": old, "new_state": new},
            )
            if self.listeners:
                self._tell("state_change", self, _StateName(old), _StateName(new))

    def tell_before_call(self, fn: Callable[..., Any], args: Args, kwargs: Kwargs) -> None:
        """Call the listeners' ``before_call`` (pybreaker's protocol)."""
        self._tell("before_call", self, fn, *args, **kwargs)

    def _tell(self, method: str, /, *args: Any, **kwargs: Any) -> None:  # kwargs are the user's: any names
        for listener in self.listeners:
            try:
                getattr(listener, method)(*args, **kwargs)
            except Exception:  # a listener must never change the call's outcome
                logger.exception("circuit %r: listener %r.%s raised; ignored", self.name, listener, method)

    # manual control
    def open(self) -> None:
        """Open the breaker now, for the current open time (``reset_timeout`` unless it grew)."""
        self._force(STATE_OPEN)

    def close(self) -> None:
        """Close the breaker now: failure count, window and open-time growth cleared."""
        self._force(STATE_CLOSED)

    def force_open(self) -> None:
        """Reject every call (``retry_after`` is ``math.inf``) until ``close()`` or ``reset()``."""
        self._force(STATE_FORCED_OPEN)

    def disable(self) -> None:
        """Admit every call and record nothing, until ``close()`` or ``reset()``."""
        self._force(STATE_DISABLED)

    def metrics_only(self) -> None:
        """Admit every call and record outcomes (``stats()``), never trip; until ``close()`` or ``reset()``."""
        self._force(STATE_METRICS_ONLY)

    def reset(self) -> None:
        """Back to a new closed breaker: state, counters and statistics cleared."""
        self._force(STATE_CLOSED)
        with self._lock:
            self._storage.reset_counter()
            self._rejected = 0
            self._opened = 0

    def _force(self, state: str) -> None:
        with self._lock:
            change = self._move(state)
        self._announce([change])


class _WindowedBreaker(Breaker):
    """A breaker with a rate rule: every success goes to the window, under the lock."""

    def succeeded(self, generation: int) -> None:
        """Record a success."""
        if self.listeners:
            self._tell("success", self)
        self._apply(generation, SUCCESS, False)


def same_storage(a: Storage | None, b: Storage | None) -> bool:
    """Whether two ``storage=`` arguments name the same storage (URLs by value, objects by identity)."""
    return a is b or (isinstance(a, str) and a == b)


breakers: NamedRegistry[Breaker] = NamedRegistry("circuit")
_registry = breakers.live  # name -> breaker, read by the monitor's health()


@dataclass(frozen=True, slots=True, eq=False)
class Circuit(Layer):
    """A circuit-breaker layer; build it with :func:`circuit`. ``breaker`` is its state."""

    breaker: Breaker
    anonymous: bool = False

    def __repr__(self) -> str:
        rules = self.breaker.config.describe()
        return f"circuit({self.breaker.name!r}{', ' + rules if rules else ''})"

    def bind(self, fn: Callable[..., Any]) -> None:
        if self.anonymous and self.breaker.name == "<anonymous>":
            self.breaker.name = call_name(fn)
        self.breaker.check_callable(fn)

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        breaker = self.breaker
        generation = breaker.acquire()
        if breaker.listeners:
            breaker.tell_before_call(fn, args, kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            breaker.record(generation, Outcome(None, exc))
            raise
        if breaker.checks_results:
            breaker.record(generation, Outcome(result))
        else:
            breaker.succeeded(generation)
        return result

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        breaker = self.breaker
        generation = breaker.acquire()
        if breaker.listeners:
            breaker.tell_before_call(fn, args, kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            breaker.record(generation, Outcome(None, exc))
            raise
        if breaker.checks_results:
            breaker.record(generation, Outcome(result))
        else:
            breaker.succeeded(generation)
        return result


class _MeasuredCircuit(Circuit):
    """The layer for a breaker that times its calls (a slow-call rule) or awaits a shared storage.

    A class of its own, chosen when the layer is built, so the plain layer's happy path
    pays nothing for either.
    """

    __slots__ = ()

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        breaker = self.breaker
        generation = breaker.acquire()
        if breaker.listeners:
            breaker.tell_before_call(fn, args, kwargs)
        timed = breaker.timed
        start = _clock.monotonic() if timed else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            breaker.record(generation, Outcome(None, exc), _clock.monotonic() - start if timed else None)
            raise
        breaker.record(generation, Outcome(result), _clock.monotonic() - start if timed else None)
        return result

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        breaker = self.breaker
        generation = await breaker.aacquire()
        if breaker.listeners:
            breaker.tell_before_call(fn, args, kwargs)
        timed = breaker.timed
        start = _clock.monotonic() if timed else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await breaker.arecord(generation, Outcome(None, exc), _clock.monotonic() - start if timed else None)
            raise
        await breaker.arecord(generation, Outcome(result), _clock.monotonic() - start if timed else None)
        return result


def _layer(breaker: Breaker, *, anonymous: bool = False) -> Circuit:
    return (Circuit if breaker.simple else _MeasuredCircuit)(breaker, anonymous)


def _check_int(parameter: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{parameter} must be an int >= 1, got {value!r}")


def _check_share(parameter: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{parameter} must be a share of calls in (0, 1], e.g. 0.5 for half, got {value!r}")


def _storage_kind(storage: object) -> str:
    """The kind of a ``storage=`` argument: "memory", "pybreaker" or "redis" (else TypeError)."""
    if storage is None:
        return "memory"
    if isinstance(storage, pybreaker.CircuitBreakerStorage):
        return "pybreaker"
    if isinstance(storage, str):
        if storage.startswith(REDIS_SCHEMES):
            return "redis"
    elif hasattr(storage, "evalsha") and hasattr(storage, "script_load"):
        return "redis"  # a redis.Redis or redis.asyncio.Redis client (checked when the breaker is built)
    raise TypeError(
        "storage must be a pybreaker.CircuitBreakerStorage, a redis:// URL or a redis client "
        f"(redis.Redis, or redis.asyncio.Redis for async functions), got {storage!r}"
    )


class _CircuitFactory(NamedFactory[Breaker]):
    """``rs.circuit(name=None, *, fail_max=None, reset_timeout=30.0, half_open_calls=1,
    failure_rate=None, window=None, window_calls=None, min_calls=None, slow_call=None,
    slow_rate=None, reset_backoff=1.0, max_reset_timeout=None, on=None, exclude=(),
    listeners=(), storage=None)``: stop calling a failing dependency.

    Trip rules (any one opens the breaker; durations in seconds):

    - ``fail_max``: that many consecutive failures. Default 5 when no rate rule is given,
      none when one is (pass it as well to have both).
    - ``failure_rate=0.5``: with at least ``min_calls`` outcomes in the window, the share
      of failures is >= 0.5. The window is the last ``window`` seconds (kept in 20 buckets,
      so outcomes leave it in steps of ``window / 20``; 60 s unless given), or the last
      ``window_calls`` calls (give one of the two). ``min_calls`` is 10 unless given.
      ``window``, ``window_calls`` and ``min_calls`` apply only with a rate rule: without
      ``failure_rate`` or ``slow_rate`` they raise ValueError.
    - ``slow_call=2.0, slow_rate=0.5``: calls that took more than 2 s count as slow (failed
      or not); open when the slow share of the window is >= 0.5 (same ``min_calls``).
    - Semantics follow resilience4j: ``exclude``d outcomes count in neither numerator nor
      denominator; outcomes outside ``on`` count as successes.

    Open: calls fail at once with :class:`rs.CircuitOpenError` (``.retry_after`` is the
    exact time left) for ``reset_timeout`` seconds, growing ``reset_backoff`` times (e.g.
    2.0) at each consecutive re-opening, up to ``max_reset_timeout``. Then half-open:
    ``half_open_calls`` trials are admitted, the rest rejected; the breaker closes once the
    trials succeed (all of them; with ``failure_rate``, once their failure share cannot
    reach it) and re-opens otherwise. Results of calls admitted before a transition change
    nothing.

    - ``on``: what counts as a failure (exception classes, predicates, classifiers;
      default any ``Exception``). The failure that trips the breaker surfaces as itself;
      cancellation is no failure.
    - Breakers are shared by name; ``rs.circuit.get(name)`` returns one. ``name=None``
      gives the decorated function its own breaker (``layer.breaker``), not registered.
    - ``listeners``: ``pybreaker.CircuitBreakerListener`` objects.
    - ``storage``: where the state lives. A pybreaker storage keeps state and failure count
      there (rate windows stay in this process); ``"redis://host:port/db"`` or a
      ``redis.Redis`` client (``redis.asyncio.Redis`` for async functions) shares state,
      windows and half-open trials with every process using the same name, atomically,
      and keeps serving from local state while Redis is unreachable.

    >>> import resilience as rs
    >>> @rs.circuit("inventory", fail_max=3, reset_timeout=10)
    ... def stock(sku: str) -> int:
    ...     return 7
    >>> stock("A1"), rs.circuit.get("inventory").state
    (7, 'closed')
    """

    def __call__(
        self,
        name: str | None = None,
        *,
        fail_max: int | None = None,
        reset_timeout: float = 30.0,
        half_open_calls: int = 1,
        failure_rate: float | None = None,
        window: float | None = None,
        window_calls: int | None = None,
        min_calls: int | None = None,
        slow_call: float | None = None,
        slow_rate: float | None = None,
        reset_backoff: float = 1.0,
        max_reset_timeout: float | None = None,
        on: ClassifierLike | Sequence[ClassifierLike] | None = None,
        exclude: ClassifierLike | Sequence[ClassifierLike] = (),
        listeners: Iterable[pybreaker.CircuitBreakerListener] = (),
        storage: Storage | None = None,
    ) -> Circuit:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, got {name!r}")
        if name == "":
            raise ValueError("name must not be empty (None gives the function its own breaker)")
        if fail_max is not None:
            _check_int("fail_max", fail_max)
        _check_int("half_open_calls", half_open_calls)
        rated = failure_rate is not None or slow_rate is not None or slow_call is not None
        for parameter, given in (("window", window), ("window_calls", window_calls), ("min_calls", min_calls)):
            if given is not None and not rated:
                raise ValueError(
                    f"{parameter} applies only to a rate rule: add failure_rate= or slow_call= with slow_rate= "
                    f"(a breaker without one opens after fail_max consecutive failures); got {parameter}={given!r}"
                )
        if window is not None and window_calls is not None:
            raise ValueError(
                f"give either window (seconds) or window_calls (calls), not both; got window={window!r}, "
                f"window_calls={window_calls!r}"
            )
        if min_calls is None:
            min_calls = 10
        else:
            _check_int("min_calls", min_calls)
        if window is None:
            window = 60.0
        else:
            check_seconds("window", window)
        check_seconds("reset_timeout", reset_timeout)
        if failure_rate is not None:
            _check_share("failure_rate", failure_rate)
        if window_calls is not None:
            _check_int("window_calls", window_calls)
            if min_calls > window_calls:
                raise ValueError(
                    f"min_calls ({min_calls}) must be <= window_calls ({window_calls}): the rates could never be judged"
                )
        if (slow_call is None) != (slow_rate is None):
            raise ValueError(
                "slow_call and slow_rate go together: slow_call=2.0 (seconds above which a call is slow), "
                f"slow_rate=0.5 (the slow share that opens the breaker); got slow_call={slow_call!r}, "
                f"slow_rate={slow_rate!r}"
            )
        if slow_call is not None:
            check_seconds("slow_call", slow_call)
            _check_share("slow_rate", slow_rate)
        if isinstance(reset_backoff, bool) or not isinstance(reset_backoff, (int, float)):
            raise TypeError(
                f"reset_backoff must be a number >= 1 (e.g. 2.0 doubles the open time), got {reset_backoff!r}"
            )
        if not (math.isfinite(reset_backoff) and reset_backoff >= 1):
            raise ValueError(f"reset_backoff must be a finite number >= 1, got {reset_backoff!r}")
        if max_reset_timeout is not None:
            check_seconds("max_reset_timeout", max_reset_timeout)
            if max_reset_timeout < reset_timeout:
                raise ValueError(
                    f"max_reset_timeout ({max_reset_timeout!r}) must be >= reset_timeout ({reset_timeout!r})"
                )
        listeners = tuple(listeners)
        for listener in listeners:
            if isinstance(listener, type) or not hasattr(listener, "state_change"):
                raise TypeError(f"listeners take pybreaker.CircuitBreakerListener objects, got {listener!r}")
        storage_kind = _storage_kind(storage)
        counts = to_classifier(on, verdict=_COUNTS) if on is not None and on != () else None
        excluded = to_classifier(exclude, parameter="exclude") if exclude not in ((), [], None) else None
        config = BreakerConfig(
            fail_max=fail_max if fail_max is not None or rated else 5,
            reset_timeout=float(reset_timeout),
            half_open_calls=half_open_calls,
            on=repr(counts) if counts else "Exception",
            exclude=repr(excluded) if excluded else "",
            failure_rate=None if failure_rate is None else float(failure_rate),
            window=float(window),
            window_calls=window_calls,
            min_calls=min_calls,
            slow_call=None if slow_call is None else float(slow_call),
            slow_rate=None if slow_rate is None else float(slow_rate),
            reset_backoff=float(reset_backoff),
            max_reset_timeout=None if max_reset_timeout is None else float(max_reset_timeout),
        )

        def build(breaker_name: str) -> Breaker:
            if storage_kind == "redis":
                from resilience._circuit_redis import RedisBreaker  # imports redis: only when asked for

                return RedisBreaker(
                    breaker_name, config, counts=counts, exclude=excluded, listeners=listeners, connection=storage
                )
            kept = cast("pybreaker.CircuitBreakerStorage | None", storage)
            kind = _WindowedBreaker if config.windowed else Breaker
            return kind(breaker_name, config, counts=counts, exclude=excluded, listeners=listeners, storage=kept)

        if name is None:
            return _layer(build("<anonymous>"), anonymous=True)

        def conflict(breaker: Breaker) -> str | None:
            if breaker.config != config:
                return f"with {breaker.config}; a second declaration must match it (got {config})"
            if (listeners and listeners != breaker.listeners) or (
                storage is not None and not same_storage(storage, breaker._storage_arg)
            ):
                return "with other listeners or storage; declare them once, where the breaker is first defined"
            return None

        breaker = breakers.declare(
            name, lambda: build(name), lambda parked: parked.matches(config, listeners, storage), conflict
        )
        return _layer(breaker)


# What `on=` marks: a failure the breaker counts.
_COUNTS = Verdict(failed=True, retryable=False, counts=True, reason="failure")

circuit = _CircuitFactory(breakers)
