"""``rs.RetryBudget``: retries (and hedged requests) limited to a fraction of recent traffic.

Finagle / Envoy / gRPC style: every logical call *deposits* one first attempt; every
retry asks to *withdraw* one. A withdrawal is allowed while the retries made in the last
``window`` seconds stay below ``ratio`` x the first attempts made in that window, plus a
floor of ``min_per_second`` x ``window`` (so a quiet service can still retry). A failing
dependency then sees about ``1 + ratio`` times its normal load, not ``attempts`` times.

A logical call deposits *once* per budget, however many layers using that budget it
crosses: ``retry_on(..., budget=b)`` and ``hedge(budget=b)`` around one function (as
``rs.Policy(budget=b, hedge=rs.hedge(budget=b))`` builds them) open the call with
:func:`open_call`, which deposits only when no enclosing layer of the same call already
did. A context variable carries that mark into every attempt -- retries, hedged extras
(their worker threads get the caller's context) and whatever the function itself calls --
so a retry is never counted as a first attempt, and the budget cannot grow with the very
failures it caps.
"""

from __future__ import annotations

import contextvars
import math
import threading
from typing import Any

from resilience import _clock
from resilience._engine import check_seconds

SLOTS = 10  # the window is kept as this many periods: old traffic ages out in steps of window/10


# The budgets whose deposit the logical call running in this context has already made.
_deposited: contextvars.ContextVar[tuple[RetryBudget, ...]] = contextvars.ContextVar(
    "resilience_budget_deposited", default=()
)


def open_call(budget: RetryBudget) -> contextvars.Token[tuple[RetryBudget, ...]] | None:
    """Deposit ``budget``'s first attempt for the logical call starting here, unless an
    enclosing layer of the same call already did (this is then one of its attempts).

    Returns the token for :func:`close_call` (None when nothing was marked).
    """
    deposited = _deposited.get()
    for other in deposited:
        if other is budget:
            return None
    budget.deposit()
    return _deposited.set((*deposited, budget))


def close_call(token: contextvars.Token[tuple[RetryBudget, ...]] | None) -> None:
    """End the logical call :func:`open_call` marked (called in the same context)."""
    if token is not None:
        _deposited.reset(token)


class RetryBudget:
    """A budget of retries shared by every call that uses it.

    - ``ratio``: retries allowed per first attempt over the window (0.2 = 20 % extra load).
    - ``min_per_second``: retries allowed per second whatever the traffic (a floor for
      quiet periods; 0 for none).
    - ``window``: seconds of history the budget looks at (default 10).

    Pass it to ``rs.retry_on(..., budget=b)``, ``rs.Policy(budget=b)`` or
    ``rs.hedge(budget=b)``; one budget may be shared by many functions (one per
    dependency is the usual choice), and by a ``retry_on`` and a ``hedge`` of the same
    call: a logical call deposits once per budget, its retries and hedged extras only
    withdraw (so do calls made *inside* it through layers on the same budget). A retry
    the budget denies is not made: the failure surfaces with a note saying so, and
    ``stats()["denied"]`` counts it. Time is the resilience clock, so a fake clock drives
    it in tests.

    >>> import resilience as rs
    >>> budget = rs.RetryBudget(ratio=0.2, min_per_second=0.0)
    >>> for _ in range(10):
    ...     budget.deposit()
    >>> [budget.withdraw() for _ in range(3)]
    [True, True, False]
    """

    __slots__ = (
        "_allowed",
        "_denied",
        "_end",
        "_epoch",
        "_lock",
        "_marks",
        "_retries",
        "_total",
        "_width",
        "min_per_second",
        "ratio",
        "window",
    )

    def __init__(self, ratio: float = 0.2, min_per_second: float = 1.0, window: float = 10.0) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
            raise TypeError(f"ratio must be a number >= 0 (retries per first attempt), got {ratio!r}")
        if not math.isfinite(ratio) or ratio < 0:
            raise ValueError(f"ratio must be a finite number >= 0 (retries per first attempt), got {ratio!r}")
        if isinstance(min_per_second, bool) or not isinstance(min_per_second, (int, float)):
            raise TypeError(f"min_per_second must be a number >= 0 (retries per second), got {min_per_second!r}")
        if not math.isfinite(min_per_second) or min_per_second < 0:
            raise ValueError(
                f"min_per_second must be a finite number >= 0 (retries per second), got {min_per_second!r}"
            )
        check_seconds("window", window)
        self.ratio = float(ratio)
        self.min_per_second = float(min_per_second)
        self.window = float(window)
        self._width = self.window / SLOTS
        self._lock = threading.Lock()
        self._allowed = 0
        self._denied = 0
        self._clear()

    def _clear(self) -> None:
        # Running totals, never reset while in use, and for each of the last SLOTS periods
        # of window/SLOTS seconds that saw any traffic, the totals when it began: the
        # traffic of the window is the totals now minus the oldest mark inside it.
        self._total = 0  # first attempts
        self._retries = 0
        self._marks: list[tuple[int, int, int]] = [(-(2**62), 0, 0)] * SLOTS  # (period, total, retries)
        self._epoch = -(2**62)
        self._end = -math.inf  # when the current period ends

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self.ratio:g}, min_per_second={self.min_per_second:g}, window={self.window:g})"

    def deposit(self) -> None:
        """Count one first attempt (every logical call does this once); cheap, no lock."""
        if _clock.current.monotonic() >= self._end:
            self._roll()
        # Unlocked on purpose: the total only grows, so a race between threads can at worst
        # lose a count (a slightly stricter budget), never invent one.
        self._total += 1

    def _roll(self) -> None:
        with self._lock:
            self._advance(int(_clock.current.monotonic() // self._width))

    def _advance(self, epoch: int) -> None:
        """Start period ``epoch`` if it is new (lock held); a clock that went back starts afresh."""
        if epoch == self._epoch:
            return
        if epoch < self._epoch:  # another clock was installed: the history means nothing now
            total, retries = self._total, self._retries
            self._marks = [(-(2**62), 0, 0)] * SLOTS
            self._total, self._retries = total, retries
        self._epoch = epoch
        self._end = (epoch + 1) * self._width
        self._marks[epoch % SLOTS] = (epoch, self._total, self._retries)

    def _in_window(self) -> tuple[int, int]:
        """(first attempts, retries) in the window (lock held, current period started)."""
        oldest = self._epoch - SLOTS
        base = min(
            (mark for mark in self._marks if mark[0] > oldest), default=(self._epoch, self._total, self._retries)
        )
        return self._total - base[1], self._retries - base[2]

    def _allowance(self, firsts: int, retries: int) -> float:
        return self.ratio * firsts + self.min_per_second * self.window - retries

    def withdraw(self) -> bool:
        """Ask for one retry: True (and counted) if the budget allows it, else False (counted as denied)."""
        with self._lock:
            self._advance(int(_clock.current.monotonic() // self._width))
            if self._allowance(*self._in_window()) >= 1 - 1e-9:
                self._retries += 1
                self._allowed += 1
                return True
            self._denied += 1
            return False

    @property
    def balance(self) -> float:
        """How many retries the budget would allow right now."""
        with self._lock:
            self._advance(int(_clock.current.monotonic() // self._width))
            return max(self._allowance(*self._in_window()), 0.0)

    def stats(self) -> dict[str, Any]:
        """ratio, min_per_second, window, first_attempts and retries in the window,
        balance, allowed and denied since creation (or ``reset()``)."""
        with self._lock:
            self._advance(int(_clock.current.monotonic() // self._width))
            firsts, retries = self._in_window()
            allowed, denied = self._allowed, self._denied
        return {
            "ratio": self.ratio,
            "min_per_second": self.min_per_second,
            "window": self.window,
            "first_attempts": firsts,
            "retries": retries,
            "balance": max(self._allowance(firsts, retries), 0.0),
            "allowed": allowed,
            "denied": denied,
        }

    def reset(self) -> None:
        """Forget all history and counters."""
        with self._lock:
            self._clear()
            self._allowed = 0
            self._denied = 0
