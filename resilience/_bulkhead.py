"""``rs.bulkhead``: cap the calls in flight to a dependency, for threads and tasks alike.

One bulkhead may be shared (by name) by ``def`` callers in threads and ``async def``
callers in event loops, so its state is guarded by a plain ``threading.Lock`` that is
only ever held for a few operations, never while waiting. A caller that must wait
queues a *waiter*: a ``threading.Event`` for a thread, a future of its own event loop
for a task (woken with ``call_soon_threadsafe``). A freed slot is handed directly to the
oldest waiter (FIFO), so a newcomer cannot overtake the queue. A ``def`` call made from
inside a running event loop never blocks to wait (that would stall the loop, and with it
the tasks holding the slots): it is rejected at once instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from resilience import _clock
from resilience._engine import Args, Kwargs, Layer, active_deadline, call_name, check_seconds
from resilience._registry import NamedFactory, NamedRegistry
from resilience.errors import BulkheadFull

R = TypeVar("R")
MAX_SECONDS = 365 * 86_400.0  # beyond this, thread waits overflow


class _Waiter:
    """One queued caller: a thread (``event``) or a task (``future`` on ``loop``)."""

    __slots__ = ("event", "future", "granted", "loop")

    def __init__(
        self,
        event: threading.Event | None = None,
        future: asyncio.Future[None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.event = event
        self.future = future
        self.loop = loop
        self.granted = False

    def wake(self) -> bool:
        """Tell the waiter (lock held); False if it can no longer hear (its loop is closed)."""
        if self.event is not None:
            self.event.set()
            return True
        assert self.loop is not None
        assert self.future is not None
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # the loop is closed: its task is gone
            return False
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True, slots=True)
class BulkheadConfig:
    """A bulkhead's configuration (compared when two sites declare the same name)."""

    max_concurrent: int
    max_wait: float = 0.0


class Bulkhead:
    """The shared state of one bulkhead; get a named one with ``rs.bulkhead.get(name)``.

    ``in_flight`` calls hold a slot, ``waiting`` callers are queued; ``stats()`` adds
    admitted and rejected counts and the peak number in flight.
    """

    def __init__(self, name: str, config: BulkheadConfig) -> None:
        self.name = name
        self.config = config
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiters: deque[_Waiter] = deque()
        self._admitted = 0
        self._rejected = 0
        self._peak = 0

    def __repr__(self) -> str:
        return f"<Bulkhead {self.name!r} {self._in_flight}/{self.config.max_concurrent} in flight>"

    @property
    def in_flight(self) -> int:
        """Calls holding a slot now."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Callers queued for a slot now."""
        return len(self._waiters)

    def stats(self) -> dict[str, Any]:
        """A JSON-ready view: name, max_concurrent, max_wait, in_flight, waiting, admitted,
        rejected and peak (the most calls ever in flight at once)."""
        with self._lock:
            return {
                "name": self.name,
                "max_concurrent": self.config.max_concurrent,
                "max_wait": self.config.max_wait,
                "in_flight": self._in_flight,
                "waiting": len(self._waiters),
                "admitted": self._admitted,
                "rejected": self._rejected,
                "peak": self._peak,
            }

    def reset(self) -> None:
        """Zero the counters (calls in flight and queued are left alone)."""
        with self._lock:
            self._admitted = 0
            self._rejected = 0
            self._peak = self._in_flight

    # admission (the lock is never held while waiting)
    def _try_enter(self) -> bool:
        """Take a free slot if there is one and nobody queues before us (lock held)."""
        if self._in_flight < self.config.max_concurrent and not self._waiters:
            self._in_flight += 1
            self._admitted += 1
            if self._in_flight > self._peak:
                self._peak = self._in_flight
            return True
        return False

    def _patience(self) -> tuple[float, str]:
        """How long a caller may wait: max_wait, cut short by the enclosing deadline."""
        wait = self.config.max_wait
        deadline = active_deadline()
        if deadline is not None:
            left = deadline - _clock.monotonic()
            if left < wait:
                return max(left, 0.0), "the deadline leaves no more time"
        return wait, ""

    def _reject(self, waited: float, reason: str = "") -> BulkheadFull:
        self._rejected += 1
        return BulkheadFull(self.name, self.config.max_concurrent, waited, reason)

    def release(self) -> None:
        """Give a slot back: to the oldest waiter that can still take it, else to the pool."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if waiter.wake():
                    waiter.granted = True  # the slot passes on: in_flight is unchanged
                    self._admitted += 1
                    return
            self._in_flight -= 1

    def _give_up(self, waiter: _Waiter) -> bool:
        """The waiter stops waiting: True if it had been granted a slot meanwhile (it holds it)."""
        with self._lock:
            if waiter.granted:
                return True
            self._waiters.remove(waiter)
            return False

    def acquire_sync(self) -> None:
        """Take a slot, waiting in this thread if allowed; raise BulkheadFull otherwise."""
        with self._lock:
            if self._try_enter():
                return
            patience, reason = self._patience()
            if patience > 0 and asyncio._get_running_loop() is not None:
                patience, reason = 0.0, "a def call inside a running event loop cannot wait without blocking it"
            if patience <= 0:
                raise self._reject(0.0, reason)
            event = threading.Event()
            waiter = _Waiter(event=event)
            self._waiters.append(waiter)
        try:
            _clock.current.wait(event, patience)
        except BaseException:
            if self._give_up(waiter):
                self.release()
            raise
        if self._give_up(waiter):
            return
        with self._lock:
            raise self._reject(patience, reason)

    async def acquire_async(self) -> None:
        """Take a slot, waiting without blocking the event loop; raise BulkheadFull otherwise."""
        with self._lock:
            if self._try_enter():
                return
            patience, reason = self._patience()
            if patience <= 0:
                raise self._reject(0.0, reason)
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            waiter = _Waiter(future=future, loop=loop)
            self._waiters.append(waiter)
        # The timer may fire in another thread (a fake clock advanced elsewhere).
        timer = _clock.current.call_later(patience, lambda: _call_soon_threadsafe(loop, future))
        try:
            await future
        except BaseException:  # cancelled while queued: leave the queue, or pass on a slot just granted
            timer.cancel()
            if self._give_up(waiter):
                self.release()
            raise
        timer.cancel()
        if self._give_up(waiter):
            return
        with self._lock:
            raise self._reject(patience, reason)


def _call_soon_threadsafe(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
        loop.call_soon_threadsafe(_resolve, future)


@dataclass(frozen=True, slots=True, eq=False)
class BulkheadLayer(Layer):
    """A bulkhead layer; build it with :func:`rs.bulkhead`. ``state`` is the shared :class:`Bulkhead`."""

    state: Bulkhead
    anonymous: bool = False

    def __repr__(self) -> str:
        config = self.state.config
        wait = f", max_wait={config.max_wait:g}" if config.max_wait else ""
        return f"bulkhead({self.state.name!r}, max_concurrent={config.max_concurrent}{wait})"

    def bind(self, fn: Callable[..., Any]) -> None:
        if self.anonymous and self.state.name == "<anonymous>":
            self.state.name = call_name(fn)

    def stats(self) -> dict[str, Any]:
        """The shared state's ``stats()``."""
        return self.state.stats()

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        state = self.state
        state.acquire_sync()
        try:
            return fn(*args, **kwargs)
        finally:
            state.release()

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        state = self.state
        await state.acquire_async()
        try:
            return await fn(*args, **kwargs)
        finally:
            state.release()


bulkheads: NamedRegistry[Bulkhead] = NamedRegistry("bulkhead")


class _BulkheadFactory(NamedFactory[Bulkhead]):
    """``rs.bulkhead(max_concurrent, *, max_wait=0.0, name=None)``: at most
    ``max_concurrent`` calls in flight at once.

    - A call beyond the limit waits up to ``max_wait`` seconds for a slot (first come,
      first served; never past the enclosing deadline), then fails with
      :class:`rs.BulkheadFull` without having started. ``max_wait=0`` rejects at once.
    - Works for ``def`` (callers in threads) and ``async def`` (tasks wait without
      blocking the loop); both may share one bulkhead. A ``def`` call made inside a
      running event loop never waits: blocking would stall the loop.
    - Shared by name (``rs.bulkhead.get(name)`` returns the :class:`Bulkhead`, whose
      ``stats()`` counts admitted and rejected calls); ``name=None`` gives a bulkhead of
      its own to everything this layer object decorates.

    >>> import resilience as rs
    >>> @rs.bulkhead(4, max_wait=0.5, name="llm")
    ... def complete(prompt: str) -> str:
    ...     return prompt.upper()
    >>> complete("hi"), rs.bulkhead.get("llm").stats()["admitted"]
    ('HI', 1)
    """

    def __call__(self, max_concurrent: int, *, max_wait: float = 0.0, name: str | None = None) -> BulkheadLayer:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int):
            raise TypeError(f"max_concurrent must be an int >= 1, got {max_concurrent!r}")
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be an int >= 1, got {max_concurrent!r}")
        check_seconds("max_wait", max_wait, allow_zero=True)
        if max_wait > MAX_SECONDS or math.isinf(max_wait):
            raise ValueError(f"max_wait must be at most {MAX_SECONDS:.0f} s (about a year), got {max_wait!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, got {name!r}")
        if name == "":
            raise ValueError("name must not be empty (None gives the layer a bulkhead of its own)")
        config = BulkheadConfig(max_concurrent, float(max_wait))
        if name is None:
            return BulkheadLayer(Bulkhead("<anonymous>", config), anonymous=True)

        def conflict(state: Bulkhead) -> str | None:
            if state.config != config:
                return f"with {state.config}; a second declaration must match it (got {config})"
            return None

        state = bulkheads.declare(
            name, lambda: Bulkhead(name, config), lambda parked: parked.config == config, conflict
        )
        return BulkheadLayer(state)


bulkhead = _BulkheadFactory(bulkheads)
