"""``rs.circuit``: a circuit breaker that never holds a lock while the call runs.

State lives in a pybreaker storage object (memory by default) and listeners follow
pybreaker's ``CircuitBreakerListener`` protocol. Admission reads the state without a
lock; transitions take a short lock. Every transition starts a new *generation*, and an
outcome is applied only to the generation that admitted it, so a slow call that
finishes after the breaker moved on cannot flip it back.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from resilience import _clock
from resilience._engine import Args, Kwargs, Layer, call_name, check_seconds
from resilience._pybreaker import pybreaker
from resilience.classify import Classifier, ClassifierLike, Outcome, Verdict, to_classifier
from resilience.errors import CircuitOpenError

R = TypeVar("R")
logger = logging.getLogger("resilience")
STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_HALF_OPEN, pybreaker.STATE_OPEN

FAILURE, SUCCESS, IGNORED = "failure", "success", "ignored"
TRIALS_BUSY_RETRY_AFTER = 1.0  # CircuitOpenError.retry_after while every half-open trial is in flight


class _StateName:
    """What pybreaker listeners receive as old/new state: an object with ``.name``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """A breaker's configuration (compared when two sites declare the same name)."""

    fail_max: int = 5
    reset_timeout: float = 30.0
    half_open_calls: int = 1
    on: str = "Exception"
    exclude: str = ""


class Breaker:
    """The shared state of one named circuit; get it with ``rs.circuit.get(name)``.

    Exposes ``state`` ("closed", "open", "half-open"), ``fail_counter`` (consecutive
    failures), ``retry_after`` and ``stats()``; ``open()``, ``close()`` and ``reset()``
    change it by hand.
    """

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
        self.listeners: tuple[pybreaker.CircuitBreakerListener, ...] = tuple(listeners)
        self._own_storage = storage is None
        self._storage = storage if storage is not None else pybreaker.CircuitMemoryStorage(STATE_CLOSED)
        self._lock = threading.Lock()
        self._generation = 0
        self._trials = 0
        self._trial_successes = 0
        self._opened_mono: float | None = None
        self._half_open_mono: float | None = None
        self._rejected = 0
        self._opened = 0

    # pybreaker-compatible read-only views, for listeners written against pybreaker
    @property
    def state(self) -> str:
        """One of "closed", "open", "half-open"."""
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
    def fail_max(self) -> int:
        """Consecutive failures that open the breaker."""
        return self.config.fail_max

    @property
    def reset_timeout(self) -> float:
        """Seconds the breaker stays open before admitting trials."""
        return self.config.reset_timeout

    @property
    def retry_after(self) -> float:
        """Seconds until a call would be admitted: the open time left, a short wait while
        every half-open trial is in flight, else 0.0."""
        state = self._storage.state
        if state == STATE_OPEN:
            return max(self._open_left(), 0.0)
        if state == STATE_HALF_OPEN and self._trials >= self.config.half_open_calls:
            return self._trials_busy_retry_after()
        return 0.0

    def stats(self) -> dict[str, Any]:
        """A JSON-ready view: name, state, fail_counter, retry_after, rejected, opened."""
        return {
            "name": self.name,
            "state": self.state,
            "fail_counter": self.fail_counter,
            "fail_max": self.config.fail_max,
            "retry_after": round(self.retry_after, 6),
            "rejected": self._rejected,
            "opened": self._opened,
        }

    def __repr__(self) -> str:
        return f"<Breaker {self.name!r} {self.state} failures={self.fail_counter}/{self.config.fail_max}>"

    def matches(
        self,
        config: BreakerConfig,
        listeners: tuple[pybreaker.CircuitBreakerListener, ...],
        storage: pybreaker.CircuitBreakerStorage | None,
    ) -> bool:
        """Whether a declaration with these arguments describes this very breaker."""
        same_storage = self._own_storage if storage is None else storage is self._storage
        return self.config == config and self.listeners == listeners and same_storage

    # admission and outcomes
    def acquire(self) -> int:
        """Admit a call or raise CircuitOpenError; returns the admitting generation."""
        # Generation first: if the state moves on between the two reads, the call carries
        # an old generation and its outcome is ignored, never mistaken for a trial's.
        generation = self._generation
        if self._storage.state == STATE_CLOSED:
            return generation
        return self._acquire_slow()

    def _acquire_slow(self) -> int:
        changes: list[tuple[str, str]] = []
        try:
            with self._lock:
                state = self._storage.state
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
                        self._move(STATE_HALF_OPEN)  # a new generation: the hung trials' results are ignored
                    if self._trials >= self.config.half_open_calls:
                        self._rejected += 1
                        raise CircuitOpenError(self.name, self._trials_busy_retry_after())
                    self._trials += 1
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
        self._apply(generation, SUCCESS)

    def record(self, generation: int, outcome: Outcome) -> None:
        """Apply one finished call's outcome (from ``generation``) to the breaker."""
        kind = self._kind(outcome)
        if kind == SUCCESS:
            self.succeeded(generation)
            return
        if kind == FAILURE and self.listeners:
            self._tell("failure", self, outcome.exception)
        self._apply(generation, kind)

    def _apply(self, generation: int, kind: str) -> None:
        changes: list[tuple[str, str]] = []
        with self._lock:
            if generation != self._generation:
                return  # a late result from before the last transition: it changes nothing
            state = self._storage.state
            if state == STATE_HALF_OPEN:
                if kind == FAILURE:
                    changes.append(self._move(STATE_OPEN))
                elif kind == IGNORED:
                    self._trials -= 1  # give the trial slot back
                else:
                    self._trial_successes += 1
                    if self._trial_successes >= self.config.half_open_calls:
                        changes.append(self._move(STATE_CLOSED))
            elif state == STATE_CLOSED and kind == FAILURE:
                self._storage.increment_counter()
                if self._storage.counter >= self.config.fail_max:
                    changes.append(self._move(STATE_OPEN))
        self._announce(changes)

    def _kind(self, outcome: Outcome) -> str:
        exc = outcome.exception
        if exc is not None and not isinstance(exc, Exception):
            return IGNORED  # cancellation and interpreter exits say nothing about the dependency
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
        started = self._half_open_mono
        return started is not None and _clock.monotonic() - started >= self.config.reset_timeout

    def _trials_busy_retry_after(self) -> float:
        # The trials in flight decide; suggest a short wait, never "now".
        return min(TRIALS_BUSY_RETRY_AFTER, self.config.reset_timeout)

    # transitions
    def _open_left(self) -> float:
        if self._opened_mono is not None:
            return self._opened_mono + self.config.reset_timeout - _clock.monotonic()
        opened_at = self._storage.opened_at  # opened elsewhere (shared storage): wall clock
        if opened_at is None:
            return 0.0
        return opened_at.timestamp() + self.config.reset_timeout - _clock.wall()

    def _move(self, new: str) -> tuple[str, str]:
        """Change state under the lock; returns (old, new) for listeners."""
        old = self._storage.state
        self._storage.state = new
        self._generation += 1
        self._trials = 0
        self._trial_successes = 0
        self._half_open_mono = _clock.monotonic() if new == STATE_HALF_OPEN else None
        if new == STATE_OPEN:
            self._opened += 1
            self._opened_mono = _clock.monotonic()
            self._storage.opened_at = datetime.fromtimestamp(_clock.wall(), UTC)
        else:
            self._opened_mono = None
        if new == STATE_CLOSED:
            self._storage.reset_counter()
            self._storage.reset_success_counter()
        return old, new

    def _announce(self, changes: Sequence[tuple[str, str]]) -> None:
        for old, new in changes:
            if old == new:
                continue
            level = logging.WARNING if new == STATE_OPEN else logging.INFO
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
        """Open the breaker now, for ``reset_timeout`` seconds."""
        self._force(STATE_OPEN)

    def close(self) -> None:
        """Close the breaker now and clear its failure count."""
        self._force(STATE_CLOSED)

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


_registry: dict[str, Breaker] = {}
_registry_lock = threading.Lock()
# Breakers forgotten by clear() that decorated functions still use: reachable by get(name)
# and re-adopted by a matching declaration, until a new declaration takes the name.
_parked: weakref.WeakValueDictionary[str, Breaker] = weakref.WeakValueDictionary()


@dataclass(frozen=True, slots=True, eq=False)
class Circuit(Layer):
    """A circuit-breaker layer; build it with :func:`circuit`. ``breaker`` is its state."""

    breaker: Breaker
    anonymous: bool = False

    def __repr__(self) -> str:
        return f"circuit({self.breaker.name!r}, fail_max={self.breaker.config.fail_max})"

    def bind(self, fn: Callable[..., Any]) -> None:
        if self.anonymous and self.breaker.name == "<anonymous>":
            self.breaker.name = call_name(fn)

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


class _CircuitFactory:
    """``rs.circuit(name=None, *, fail_max=5, reset_timeout=30.0, half_open_calls=1, on=None,
    exclude=(), listeners=(), storage=None)``: stop calling a failing dependency.

    After ``fail_max`` consecutive failures the breaker opens: calls fail at once with
    :class:`rs.CircuitOpenError` (``.retry_after`` says when a trial is allowed) for
    ``reset_timeout`` seconds; then ``half_open_calls`` trial calls are admitted (the
    rest rejected) and the breaker closes when they all succeed, or re-opens on a failure.

    - ``on``: what counts as a failure (exception classes, predicates, classifiers;
      default any ``Exception``). Other outcomes count as successes.
    - ``exclude``: outcomes that count as neither, even between two failures.
    - The failure that trips the breaker surfaces as itself; cancellation is no failure.
    - Breakers are shared by name; ``rs.circuit.get(name)`` returns one. ``name=None``
      gives the decorated function its own breaker (``layer.breaker``), not registered.
    - ``listeners``: ``pybreaker.CircuitBreakerListener`` objects; ``storage``: a
      pybreaker storage (e.g. ``CircuitRedisStorage``) to keep the state in.

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
        fail_max: int = 5,
        reset_timeout: float = 30.0,
        half_open_calls: int = 1,
        on: ClassifierLike | Sequence[ClassifierLike] | None = None,
        exclude: ClassifierLike | Sequence[ClassifierLike] = (),
        listeners: Iterable[pybreaker.CircuitBreakerListener] = (),
        storage: pybreaker.CircuitBreakerStorage | None = None,
    ) -> Circuit:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, got {name!r}")
        if name == "":
            raise ValueError("name must not be empty (None gives the function its own breaker)")
        for parameter, value in (("fail_max", fail_max), ("half_open_calls", half_open_calls)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{parameter} must be an int >= 1, got {value!r}")
        check_seconds("reset_timeout", reset_timeout)
        listeners = tuple(listeners)
        for listener in listeners:
            if isinstance(listener, type) or not hasattr(listener, "state_change"):
                raise TypeError(f"listeners take pybreaker.CircuitBreakerListener objects, got {listener!r}")
        if storage is not None and not isinstance(storage, pybreaker.CircuitBreakerStorage):
            raise TypeError(f"storage must be a pybreaker.CircuitBreakerStorage, got {storage!r}")
        counts = to_classifier(on, verdict=_COUNTS) if on is not None and on != () else None
        excluded = to_classifier(exclude, parameter="exclude") if exclude not in ((), [], None) else None
        config = BreakerConfig(
            fail_max=fail_max,
            reset_timeout=float(reset_timeout),
            half_open_calls=half_open_calls,
            on=repr(counts) if counts else "Exception",
            exclude=repr(excluded) if excluded else "",
        )

        def build(breaker_name: str) -> Breaker:
            return Breaker(breaker_name, config, counts=counts, exclude=excluded, listeners=listeners, storage=storage)

        if name is None:
            return Circuit(build("<anonymous>"), anonymous=True)
        with _registry_lock:
            breaker = _registry.get(name)
            if breaker is None:
                parked = _parked.pop(name, None)
                same = parked is not None and parked.matches(config, listeners, storage)
                breaker = parked if same and parked is not None else build(name)
                _registry[name] = breaker
            elif breaker.config != config:
                raise ValueError(
                    f"circuit {name!r} already exists with {breaker.config}; a second declaration "
                    f"must match it (got {config}) or use rs.circuit.get({name!r})"
                )
            elif (listeners and listeners != breaker.listeners) or (
                storage is not None and storage is not breaker._storage
            ):
                raise ValueError(
                    f"circuit {name!r} already exists with other listeners or storage; declare them once, "
                    f"where the breaker is first defined, or use rs.circuit.get({name!r})"
                )
        return Circuit(breaker)

    def get(self, name: str) -> Breaker:
        """The breaker registered under ``name`` (KeyError if none)."""
        breaker = _registry.get(name) or _parked.get(name)
        if breaker is None:
            raise KeyError(f"no circuit named {name!r}; known: {sorted(_registry)}")
        return breaker

    def names(self) -> list[str]:
        """Names of every registered breaker."""
        return sorted(_registry)

    def clear(self) -> None:
        """Reset every breaker to closed and free their names (tests; see ``rs.testing.reset()``).

        Functions decorated earlier keep their (now reset) breaker, still found by ``get``;
        a new declaration of the name, with any configuration, starts a new breaker.
        """
        with _registry_lock:
            breakers = list(_registry.items())
            _registry.clear()
        for name, breaker in breakers:
            breaker.reset()
            _parked[name] = breaker

    def __repr__(self) -> str:
        return "rs.circuit"


# What `on=` marks: a failure the breaker counts.
_COUNTS = Verdict(failed=True, retryable=False, counts=True, reason="failure")

circuit = _CircuitFactory()
