"""``rs.hedge``: when an idempotent call is slow, send another and take the first success.

Async attempts are tasks of the caller's loop: the losers are cancelled. Sync attempts
run in a bounded pool of daemon worker threads (this module's own, so hedging never
competes with ``rs.timeout``'s pool): the losers are abandoned, since Python cannot
stop a thread, and whatever they return later is closed if it can be (``close()``).

A sync attempt never waits in the pool's queue (``WorkerPool.try_submit``): it starts on
a free worker at once, or not in the pool at all. When no worker is free -- the pool is
saturated, for instance because every worker runs a hedged call that itself calls a
hedged ``def`` -- the call runs its only attempt in the caller's thread, unhedged, exactly
like the same code without a hedge; and an extra attempt that finds no free worker is not
started (the call keeps waiting for the attempts it has). Every thread a caller waits for
is therefore running, so hedging adds no deadlock, whatever the nesting; what a saturated
pool costs is hedging, not progress (``stats()["saturated"]`` counts those calls and
extras). The alternative -- the first attempt always in the caller's thread -- would let
the caller return only when that attempt returns, which defeats hedging.

A call deposits into its budget once, not once per attempt: when an enclosing
``retry_on`` on the same budget already deposited for the logical call, the hedge's
attempts are its retries, not new calls (``resilience._budget.open_call``).

Without a fixed ``delay``, a hedge waits for the ``quantile`` of the latencies its own
attempts showed recently. An attempt cut short (a cancelled or abandoned loser) counts
with the time it had run, a lower bound of its latency: the estimate then converges on
the true quantile instead of drifting down as the slow attempts get cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from resilience import _clock
from resilience._budget import RetryBudget, close_call, open_call
from resilience._engine import Args, Kwargs, Layer, active_deadline, call_name, check_seconds
from resilience._workers import Job, WorkerPool

R = TypeVar("R")
logger = logging.getLogger("resilience")
WINDOW = 1_000  # recent attempt latencies kept for the quantile
MIN_SAMPLES = 20  # below this, an adaptive hedge does not hedge yet (it only observes)
REFRESH = 20  # the quantile is recomputed every this many new samples


class _Latencies:
    """A window of recent attempt latencies and its cached quantile."""

    __slots__ = ("_delay", "_lock", "_samples", "_since", "quantile")

    def __init__(self, quantile: float) -> None:
        self.quantile = quantile
        self._samples: deque[float] = deque(maxlen=WINDOW)
        self._since = 0
        self._delay: float | None = None
        self._lock = threading.Lock()

    @property
    def delay(self) -> float | None:
        """The current quantile, or None until ``MIN_SAMPLES`` latencies were seen."""
        return self._delay

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)
            self._since += 1
            if self._since >= REFRESH or (self._delay is None and len(self._samples) >= MIN_SAMPLES):
                self._since = 0
                if len(self._samples) >= MIN_SAMPLES:
                    ordered = sorted(self._samples)
                    rank = max(math.ceil(self.quantile * len(ordered)) - 1, 0)  # nearest rank
                    self._delay = ordered[rank]

    def clear(self) -> None:
        with self._lock:
            self._samples.clear()
            self._since = 0
            self._delay = None


class _HedgeState:
    """Counters and latencies of one hedge layer."""

    __slots__ = ("calls", "denied", "hedged", "latencies", "lock", "saturated", "won")

    def __init__(self, quantile: float) -> None:
        self.latencies = _Latencies(quantile)
        self.lock = threading.Lock()
        self.calls = 0
        self.hedged = 0  # extra attempts started
        self.won = 0  # calls answered by an extra attempt
        self.denied = 0  # extra attempts the budget refused
        self.saturated = 0  # sync calls run inline and extra attempts not started: no free worker

    def count(self, field: str) -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)


def _discard(result: Any) -> None:
    """Close a result nobody will see (a losing attempt's response), if it can be closed."""
    close = getattr(result, "close", None)
    if close is None or not callable(close) or inspect.iscoroutinefunction(close):
        return
    try:
        outcome = close()
        if inspect.iscoroutine(outcome):
            outcome.close()  # an async close() we cannot await here: do not leave it unawaited
    except Exception:  # closing a loser must never change the winner's outcome
        logger.exception("hedge: closing a losing attempt's result %r raised; ignored", result)


def _all_failed_note(exc: BaseException, name: str, attempts: int) -> None:
    if attempts > 1:
        exc.add_note(f"resilience: all {attempts} hedged attempts of {name} failed; this is the first one's error")


# --------------------------------------------------------------------------- sync attempts


pool = WorkerPool(thread_name="resilience-hedge", discard=_discard)


# --------------------------------------------------------------------------- the layer


@dataclass(frozen=True, slots=True, eq=False)
class Hedge(Layer):
    """A hedging layer; build it with :func:`rs.hedge`."""

    delay: float | None
    max_extra: int
    quantile: float
    budget: RetryBudget
    state: _HedgeState

    def __repr__(self) -> str:
        delay = f"p{self.quantile * 100:g}" if self.delay is None else f"{self.delay:g} s"
        return f"hedge(delay={delay}, max_extra={self.max_extra})"

    def current_delay(self) -> float | None:
        """Seconds a call waits before hedging now (None: still learning the latencies)."""
        return self.delay if self.delay is not None else self.state.latencies.delay

    def stats(self) -> dict[str, Any]:
        """calls, hedged (extra attempts started), won (calls an extra attempt answered),
        denied (extra attempts the budget refused), saturated (sync calls run unhedged in
        the caller's thread and extra attempts not started, for want of a free worker) and
        the current delay."""
        state = self.state
        with state.lock:
            return {
                "calls": state.calls,
                "hedged": state.hedged,
                "won": state.won,
                "denied": state.denied,
                "saturated": state.saturated,
                "delay": self.current_delay(),
            }

    def reset(self) -> None:
        """Zero the counters and forget the latencies."""
        with self.state.lock:
            self.state.calls = self.state.hedged = self.state.won = self.state.denied = self.state.saturated = 0
        self.state.latencies.clear()

    def _observe(self, seconds: float) -> None:
        """Record an attempt's latency: only an adaptive hedge reads them (a fixed delay skips the work)."""
        if self.delay is None:
            self.state.latencies.add(seconds)

    def _may_hedge(self) -> bool:
        """Whether one more attempt may start now: the deadline allows it and so does the budget."""
        deadline = active_deadline()
        if deadline is not None and _clock.monotonic() >= deadline:
            return False
        if self.budget.withdraw():
            self.state.count("hedged")
            return True
        self.state.count("denied")
        return False

    # sync: every attempt in a worker thread that starts it at once, the caller waits for the
    # first success; no free worker: the call runs inline, unhedged (see the module's docstring)
    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        token = open_call(self.budget)
        try:
            self.state.count("calls")
            delay = self.current_delay()
            if delay is None:
                return self._observed_sync(fn, args, kwargs)
            waker = threading.Event()
            first = Job(fn, args, kwargs, waker)  # after open_call: its context carries the mark
            if not pool.try_submit(first):
                self.state.count("saturated")
                return self._inline_sync(fn, args, kwargs)
            return self._race_sync(first, delay)  # type: ignore[no-any-return]
        finally:
            close_call(token)

    def _race_sync(self, first: Job, delay: float) -> Any:
        waker = first.done
        attempts = [first]
        next_at = first.started + delay
        hedging, due = True, False
        try:
            while True:
                waker.clear()
                finished = [a for a in attempts if a.state == "finished"]
                winner = next((a for a in finished if a.error is None), None)
                if winner is not None:
                    self._observe(winner.ended - winner.started)
                    if winner is not first:
                        self.state.count("won")
                    self._abandon_sync(attempts, winner)
                    return winner.result
                if len(finished) == len(attempts):
                    break  # every attempt failed: failures are retry's job, not hedging's
                hedging = hedging and len(attempts) <= self.max_extra
                now = _clock.monotonic()
                if hedging and (due or now >= next_at):
                    due = False
                    extra = Job(first.fn, first.args, first.kwargs, waker)
                    started = pool.try_submit(extra, self._may_hedge)  # the budget is asked only if a worker is free
                    if started:
                        attempts.append(extra)
                        next_at = now + delay
                    else:
                        if started is None:  # no free worker
                            self.state.count("saturated")
                        hedging = False
                elif hedging:
                    due = not _clock.current.wait(waker, next_at - now)
                else:
                    waker.wait()
        except BaseException:  # e.g. KeyboardInterrupt while waiting: nobody waits for them now
            self._abandon_sync(attempts, None)
            raise
        error = first.error
        assert error is not None
        for attempt in attempts:
            attempt.error = None  # no cycle through the tracebacks
        _all_failed_note(error, call_name(first.fn), len(attempts))
        raise error

    def _abandon_sync(self, attempts: list[Job], winner: Job | None) -> None:
        now = _clock.monotonic()
        for attempt in attempts:
            if attempt is winner:
                continue
            if pool.abandon(attempt):
                if attempt.state == "abandoned":
                    self._observe(now - attempt.started)  # ran at least this long
            elif attempt.error is None and winner is not None:
                _discard(attempt.result)  # a second success: the caller gets the first one only
            attempt.error = None

    def _observed_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        start = _clock.monotonic()
        result = fn(*args, **kwargs)
        self.state.latencies.add(_clock.monotonic() - start)
        return result

    def _inline_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        start = _clock.monotonic()
        result = fn(*args, **kwargs)
        self._observe(_clock.monotonic() - start)
        return result

    # async: every attempt a task of the caller's loop, the losers cancelled
    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        token = open_call(self.budget)  # the attempts' tasks copy the context, mark included
        try:
            self.state.count("calls")
            delay = self.current_delay()
            if delay is None:
                start = _clock.monotonic()
                result = await fn(*args, **kwargs)
                self.state.latencies.add(_clock.monotonic() - start)
                return result
            return await _AsyncRace(self, fn, args, kwargs, delay).run()  # type: ignore[no-any-return]
        finally:
            close_call(token)


_background: set[asyncio.Future[Any]] = set()  # losing tasks, kept alive until their cancellation ends


def _settle(task: asyncio.Future[Any]) -> None:
    """A loser ended: retrieve its outcome (no "never retrieved" warning) and close a result."""
    _background.discard(task)
    if task.cancelled():
        return
    if task.exception() is None:
        _discard(task.result())


class _AsyncRace:
    """The attempts of one async hedged call."""

    def __init__(
        self, layer: Hedge, fn: Callable[..., Awaitable[Any]], args: Args, kwargs: Kwargs, delay: float
    ) -> None:
        self.layer = layer
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.delay = delay
        self.loop = asyncio.get_running_loop()
        self.wake: asyncio.Future[None] = self.loop.create_future()
        self.due = False  # set by the timer: loop and clock readings may disagree by a hair
        self.tasks: list[asyncio.Future[Any]] = []
        self.started: list[float] = []
        self.ended: list[float] = []

    def poke(self, _: object = None) -> None:
        if not self.wake.done():
            self.wake.set_result(None)

    def hedge_due(self) -> None:
        # A fake clock fires timers in whichever thread advances it.
        self.due = True
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            self.loop.call_soon_threadsafe(self.poke)

    def launch(self) -> None:
        self.started.append(_clock.monotonic())
        self.ended.append(math.inf)
        task = asyncio.ensure_future(self.attempt(len(self.tasks)))
        self.tasks.append(task)
        task.add_done_callback(self.poke)  # in case it is cancelled before it starts

    async def attempt(self, index: int) -> Any:
        # Wake the caller from the attempt's own last step rather than from a done callback:
        # that callback would cost every call one more turn of the event loop. The task is
        # done by the time the caller runs.
        try:
            return await self.fn(*self.args, **self.kwargs)
        finally:
            self.ended[index] = _clock.monotonic()
            self.poke()

    async def run(self) -> Any:
        layer, delay = self.layer, self.delay
        self.launch()
        timer = _clock.current.call_later(delay, self.hedge_due)
        winner: asyncio.Future[Any] | None = None
        try:
            while True:
                await self.wake
                self.wake = self.loop.create_future()
                done = [task for task in self.tasks if task.done()]
                winner = next((t for t in done if not t.cancelled() and t.exception() is None), None)
                if winner is not None:
                    index = self.tasks.index(winner)
                    layer._observe(self.ended[index] - self.started[index])
                    if index:
                        layer.state.count("won")
                    return winner.result()
                if len(done) == len(self.tasks):
                    break  # every attempt failed: failures are retry's job, not hedging's
                if self.due:
                    self.due = False
                    if len(self.tasks) <= layer.max_extra and layer._may_hedge():
                        self.launch()
                        timer = _clock.current.call_later(delay, self.hedge_due)
        finally:
            timer.cancel()
            self._cancel_losers(winner)
        errors = [task.exception() for task in self.tasks if not task.cancelled()]
        error = next((e for e in errors if e is not None), None)
        if error is None:  # cancelled by someone else, every one of them: so are we
            raise asyncio.CancelledError
        _all_failed_note(error, call_name(self.fn), len(self.tasks))
        raise error

    def _cancel_losers(self, winner: asyncio.Future[Any] | None) -> None:
        now = _clock.monotonic()
        for index, task in enumerate(self.tasks):
            if task is winner:
                continue
            if task.done():
                _settle(task)
                continue
            task.cancel()
            self.layer._observe(now - self.started[index])  # ran at least this long
            _background.add(task)
            task.add_done_callback(_settle)


class _HedgeFactory:
    """``rs.hedge(delay=None, *, max_extra=1, quantile=0.95, budget=None)``: for idempotent
    calls, start another attempt when the first is slow and return the first success.

    - ``delay``: seconds to wait for an answer before starting one more attempt. ``None``
      (default): the ``quantile`` of this layer's own recent attempt latencies (it hedges
      nothing until it has seen 20); so about ``1 - quantile`` of calls are hedged.
    - ``max_extra``: extra attempts per call at most, each ``delay`` after the previous.
    - Every extra attempt draws on ``budget`` (an :class:`rs.RetryBudget`; default one of
      its own allowing 10 % extra attempts plus 1 per second), so a dependency that turns
      slow for everyone does not get twice the load. A call deposits once: the budget may
      be the enclosing ``retry_on``'s, whose retries then do not count as new calls.
    - The first success wins. ``async def``: the other attempts are cancelled. ``def``:
      every attempt runs in a bounded pool of daemon threads (``rs.hedge.stats()``,
      ``rs.hedge.configure(max_workers=...)``); the losers are abandoned, and a result they
      return later is closed (its ``close()`` called). A failure does not start an attempt
      (that is retrying); when every attempt failed, the first attempt's error surfaces.
    - An attempt never queues for a worker: when none is free (say every worker runs a
      hedged ``def`` that calls another hedged ``def``), the call runs in the caller's
      thread without hedging, as it would without ``hedge``, and an extra attempt is not
      started; ``stats()["saturated"]`` counts both. Nested hedged ``def``s cannot
      deadlock the pool; they are hedged while it has room.
    - No attempt starts after the enclosing deadline.

    Put it inside ``retry_on`` and outside ``rate_limit``/``bulkhead``/``circuit``, so that
    every attempt is counted, limited and judged like any other request (``rs.Policy``
    does this).

    >>> import resilience as rs
    >>> @rs.hedge(0.05)
    ... def lookup(key: str) -> str:
    ...     return key * 2
    >>> lookup("ab")
    'abab'
    """

    def __call__(
        self,
        delay: float | None = None,
        *,
        max_extra: int = 1,
        quantile: float = 0.95,
        budget: RetryBudget | None = None,
    ) -> Hedge:
        if delay is not None:
            check_seconds("delay", delay, allow_zero=True)
        if isinstance(max_extra, bool) or not isinstance(max_extra, int):
            raise TypeError(f"max_extra must be an int >= 1, got {max_extra!r}")
        if max_extra < 1:
            raise ValueError(f"max_extra must be an int >= 1, got {max_extra!r}")
        if isinstance(quantile, bool) or not isinstance(quantile, (int, float)):
            raise TypeError(f"quantile must be a number between 0 and 1 (exclusive), got {quantile!r}")
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must be between 0 and 1 (exclusive), got {quantile!r}")
        if budget is None:
            budget = RetryBudget(ratio=0.1, min_per_second=1.0)
        elif not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be an rs.RetryBudget(...) or None, got {budget!r}")
        return Hedge(
            None if delay is None else float(delay), max_extra, float(quantile), budget, _HedgeState(float(quantile))
        )

    def stats(self) -> dict[str, int]:
        """The worker pool of sync hedged attempts: max_workers, workers, busy, queued,
        abandoned (still running after losing), abandoned_total, completed."""
        return pool.stats()

    def configure(self, *, max_workers: int) -> None:
        """Set the worker pool's bound (default 32 threads). Beyond it, calls run unhedged
        in their caller's thread rather than wait for a worker."""
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        pool.max_workers = max_workers

    def __repr__(self) -> str:
        return "rs.hedge"


hedge = _HedgeFactory()
