"""A breaker's configuration and trip rules: sliding windows, the half-open verdict, open time.

Pure bookkeeping with no lock and no clock of its own: the breaker calls it under its lock
and passes the time in. The Redis storage runs the same rules in Lua (``_circuit_redis``);
keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

# A time window is this many buckets: memory stays bounded whatever the call rate, and an
# outcome is forgotten between window * (1 - 1/BUCKETS) and window seconds after it happened.
BUCKETS = 20
# The longest open period a growing reset_timeout reaches without a max_reset_timeout: a year.
MAX_OPEN = 366 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """A breaker's configuration (compared when two sites declare the same name).

    ``fail_max`` None means no consecutive-failure rule (a rate rule is configured).
    """

    fail_max: int | None = 5
    reset_timeout: float = 30.0
    half_open_calls: int = 1
    on: str = "Exception"
    exclude: str = ""
    failure_rate: float | None = None
    window: float = 60.0
    window_calls: int | None = None
    min_calls: int = 10
    slow_call: float | None = None
    slow_rate: float | None = None
    reset_backoff: float = 1.0
    max_reset_timeout: float | None = None

    @property
    def windowed(self) -> bool:
        """Whether outcomes are kept in a window (a rate rule is configured)."""
        return self.failure_rate is not None or self.slow_rate is not None

    def new_window(self) -> Window | None:
        """An empty window for these rules, or None when no rate rule needs one."""
        if not self.windowed:
            return None
        if self.window_calls is not None:
            return CountWindow(self.window_calls)
        return TimeWindow(self.window)

    def tripped(self, calls: int, failures: int, slow: int) -> bool:
        """Whether a window holding these counts opens the breaker (thresholds are >=)."""
        if calls < self.min_calls or calls == 0:
            return False
        if self.failure_rate is not None and failures / calls >= self.failure_rate:
            return True
        return self.slow_rate is not None and slow / calls >= self.slow_rate

    def trial_verdict(self, succeeded: int, failed: int, slow: int) -> str | None:
        """The half-open verdict so far: "open", "closed", or None while still undecided.

        Decided as soon as the remaining trials cannot change the answer. Without a
        ``failure_rate`` one failure re-opens and every trial must succeed; with one, the
        breaker re-opens once the failures among the ``half_open_calls`` trials reach that
        share, and closes once they no longer can. ``slow_rate`` applies the same way.
        """
        n = self.half_open_calls
        reopen = failed > 0 if self.failure_rate is None else failed / n >= self.failure_rate
        if not reopen and self.slow_rate is not None:
            reopen = slow / n >= self.slow_rate
        if reopen:
            return "open"
        rest = n - succeeded - failed
        close = rest <= 0 if self.failure_rate is None else (failed + rest) / n < self.failure_rate
        if close and self.slow_rate is not None:
            close = (slow + rest) / n < self.slow_rate
        return "closed" if close else None

    def open_period(self, reopens: int) -> float:
        """Seconds to stay open after ``reopens`` consecutive re-openings from half-open."""
        period = self.reset_timeout
        if reopens and self.reset_backoff != 1.0:
            try:
                period *= self.reset_backoff**reopens
            except OverflowError:
                period = MAX_OPEN
        return min(period, MAX_OPEN if self.max_reset_timeout is None else self.max_reset_timeout)

    def describe(self) -> str:
        """The trip rules as keyword arguments, for reprs."""
        parts = [] if self.fail_max is None else [f"fail_max={self.fail_max}"]
        if self.failure_rate is not None:
            parts.append(f"failure_rate={self.failure_rate}")
        if self.slow_rate is not None:
            parts.append(f"slow_call={self.slow_call}, slow_rate={self.slow_rate}")
        if self.windowed:
            parts.append(f"window_calls={self.window_calls}" if self.window_calls else f"window={self.window}")
        return ", ".join(parts)


class TimeWindow:
    """Outcomes of the last ``seconds``, in ``BUCKETS`` buckets with running totals."""

    __slots__ = ("_calls", "_failures", "_head", "_slow", "calls", "failures", "size", "slow", "width")

    def __init__(self, seconds: float, buckets: int = BUCKETS) -> None:
        self.size = buckets
        self.width = seconds / buckets
        self._calls = [0] * buckets
        self._failures = [0] * buckets
        self._slow = [0] * buckets
        self._head = -1  # index (time // width) of the newest bucket; -1 while empty
        self.calls = self.failures = self.slow = 0

    def _advance(self, now: float) -> int:
        """Forget the buckets that left the window; returns the slot of the current bucket."""
        index = int(now // self.width)
        head = self._head
        if head < 0 or index - head >= self.size:
            self.clear()
            self._head = index
        elif index > head:
            for step in range(head + 1, index + 1):
                slot = step % self.size
                self.calls -= self._calls[slot]
                self.failures -= self._failures[slot]
                self.slow -= self._slow[slot]
                self._calls[slot] = self._failures[slot] = self._slow[slot] = 0
            self._head = index
        return self._head % self.size  # a clock that stepped back counts in the newest bucket

    def add(self, now: float, failed: bool, slow: bool) -> None:
        """Count one outcome at time ``now``."""
        slot = self._advance(now)
        self._calls[slot] += 1
        self.calls += 1
        if failed:
            self._failures[slot] += 1
            self.failures += 1
        if slow:
            self._slow[slot] += 1
            self.slow += 1

    def totals(self, now: float) -> tuple[int, int, int]:
        """(calls, failures, slow calls) in the window ending at ``now``."""
        self._advance(now)
        return self.calls, self.failures, self.slow

    def clear(self) -> None:
        """Forget every outcome."""
        for counts in (self._calls, self._failures, self._slow):
            counts[:] = [0] * self.size
        self._head = -1
        self.calls = self.failures = self.slow = 0


# A count window keeps one byte per call: bit 0 "an outcome is here", 1 "failed", 2 "slow".
_TAKEN, _FAILED, _SLOW = 1, 2, 4


class CountWindow:
    """Outcomes of the last ``size`` calls, in a ring of one byte per call."""

    __slots__ = ("_pos", "_ring", "calls", "failures", "size", "slow")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ring = bytearray(size)
        self._pos = 0
        self.calls = self.failures = self.slow = 0

    def add(self, now: float, failed: bool, slow: bool) -> None:
        """Count one outcome, pushing the oldest out once the ring is full."""
        pos = self._pos
        old = self._ring[pos]
        if old:
            self.calls -= 1
            self.failures -= bool(old & _FAILED)
            self.slow -= bool(old & _SLOW)
        self._ring[pos] = _TAKEN | (_FAILED if failed else 0) | (_SLOW if slow else 0)
        self.calls += 1
        self.failures += failed
        self.slow += slow
        self._pos = (pos + 1) % self.size

    def totals(self, now: float) -> tuple[int, int, int]:
        """(calls, failures, slow calls) among the last ``size`` calls."""
        return self.calls, self.failures, self.slow

    def clear(self) -> None:
        """Forget every outcome."""
        self._ring = bytearray(self.size)
        self._pos = 0
        self.calls = self.failures = self.slow = 0


Window = TimeWindow | CountWindow


def window_stats(calls: int, failures: int, slow: int) -> dict[str, float | int]:
    """The ``window`` entry of ``Breaker.stats()``."""
    return {
        "calls": calls,
        "failures": failures,
        "slow": slow,
        "failure_rate": round(failures / calls, 6) if calls else 0.0,
        "slow_rate": round(slow / calls, 6) if calls else 0.0,
    }
