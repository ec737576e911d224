"""The one place resilience reads time, sleeps and arms timers.

Every layer calls these module functions at call time, never a captured
``time.monotonic``: tests swap the clock with ``rs.testing.fake_clock()`` /
``no_wait()``, and freezegun's patches of the ``time`` module are seen as well.
"""

from __future__ import annotations

import asyncio
import calendar
import heapq
import itertools
import signal
import threading
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What a clock provides. Times are float seconds."""

    def monotonic(self) -> float: ...
    def time(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...
    async def asleep(self, seconds: float) -> None: ...
    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` after ``delay`` (in the running event loop for the system clock)."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set (True) or ``timeout`` passes (False)."""
        ...

    def alarm(self, delay: float, handler: Callable[[], None]) -> Callable[[], None]:
        """Call ``handler`` in the main thread after ``delay``; returns a disarm function."""
        ...


class SystemClock:
    """Real time. Looks ``time.monotonic`` up at each call so freezegun can patch it."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(timeout)

    def alarm(self, delay: float, handler: Callable[[], None]) -> Callable[[], None]:
        def on_signal(signum: int, frame: object) -> None:
            handler()

        previous_handler = signal.signal(signal.SIGALRM, on_signal)
        previous_delay, _ = signal.setitimer(signal.ITIMER_REAL, max(delay, 1e-6))
        armed_at = time.monotonic()

        def disarm() -> None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_handler)
            if previous_delay > 0:  # an enclosing signal timeout: re-arm what is left of it
                left = previous_delay - (time.monotonic() - armed_at)
                signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6))

        return disarm


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A virtual clock: sleeping advances it at once, and timers fire as it advances.

    ``sleeps`` records every requested sleep. Under freezegun (``follow_freezegun=True``,
    as ``rs.testing.no_wait()`` sets when freezegun is active) the clock reads the frozen
    time directly, in every thread, and a sleep ticks freezegun forward.
    """

    def __init__(self, start: float = 1_000.0, *, wall: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall - start
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._sequence = itertools.count()
        self._lock = threading.RLock()
        self._freezer: object | None = None
        self.sleeps: list[float] = []

    def follow_freezegun(self, factory: object) -> None:
        """Read and advance time through a freezegun factory instead of a private counter."""
        self._freezer = factory

    def monotonic(self) -> float:
        """Seconds on the clock (monotonic)."""
        if self._freezer is not None:
            # freezegun's own fake_monotonic formula, read directly so that worker threads
            # (which freezegun's default ignore list hands real time) agree with the test.
            frozen = self._freezer()  # type: ignore[operator]
            return calendar.timegm(frozen.timetuple()) + frozen.microsecond / 1e6  # type: ignore[no-any-return]
        return self._now

    def time(self) -> float:
        """Wall-clock seconds since the epoch."""
        if self._freezer is not None:
            return self.monotonic()
        return self._now + self._wall_offset

    def advance(self, seconds: float, *, interrupted: Callable[[], bool] | None = None) -> None:
        """Move time forward by ``seconds``, firing every timer that falls due, in order.

        ``interrupted`` is asked after each timer: when true, time stops there (a sleep
        that a timeout cancelled ends at the timeout, as it would for real).
        """
        with self._lock:
            target = self.monotonic() + max(seconds, 0.0)
            while self._timers and self._timers[0][0] <= target:
                when, _, timer = heapq.heappop(self._timers)
                if timer.cancelled:
                    continue
                self._move_to(max(when, self.monotonic()))
                timer.callback()
                if interrupted is not None and interrupted():
                    return
            self._move_to(target)

    def _move_to(self, target: float) -> None:
        step = target - self.monotonic()
        if step <= 0:
            return
        if self._freezer is not None:
            self._freezer.tick(step)  # type: ignore[attr-defined]
        else:
            self._now = target

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` at once, recording the request in ``sleeps``."""
        self.sleeps.append(seconds)
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """Like ``sleep``, then yield to the event loop (where a timeout's cancellation lands)."""
        self.sleeps.append(seconds)
        task = asyncio.current_task()
        if task is None:
            self.advance(seconds)
        else:
            cancelling = task.cancelling()
            self.advance(seconds, interrupted=lambda: task.cancelling() > cancelling)
        await asyncio.sleep(0)  # a checkpoint, so a timer's cancellation lands here

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` when the clock passes now + ``delay``."""
        with self._lock:
            timer = _FakeTimer(self.monotonic() + delay, callback)
            heapq.heappush(self._timers, (timer.when, next(self._sequence), timer))
        return timer

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Block until ``event`` is set; False if the fake clock passed ``timeout`` first."""
        if timeout <= 0:
            return event.is_set()
        timer = self.call_later(timeout, event.set)
        expired = self.monotonic() + timeout
        event.wait()  # set by the finished job or by the timer as fake time passes
        timer.cancel()
        return self.monotonic() < expired

    def alarm(self, delay: float, handler: Callable[[], None]) -> Callable[[], None]:
        """Call ``handler`` when the clock passes now + ``delay``; returns a disarm function."""
        return self.call_later(delay, handler).cancel


current: Clock = SystemClock()


def use(clock: Clock) -> Clock:
    """Install ``clock`` for the whole process; returns the previous one."""
    global current
    previous, current = current, clock
    return previous


def monotonic() -> float:
    return current.monotonic()


def wall() -> float:
    return current.time()


def sleep(seconds: float) -> None:
    if seconds > 0:  # time.sleep(0) still costs a system call
        current.sleep(seconds)


async def asleep(seconds: float) -> None:
    if seconds > 0:
        await current.asleep(seconds)
