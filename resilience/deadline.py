"""The deadline of the current call, for deadline-aware code.

Inside ``@rs.timeout(...)`` or a ``Policy`` with a total timeout, ``remaining()`` says how
many seconds are left; outside any deadline it returns None. Nested timeouts never extend
an enclosing deadline: the inner one is min(outer remaining, own).

>>> import resilience as rs
>>> rs.deadline.remaining() is None
True
>>> with rs.deadline.scope(5.0):
...     0 < rs.deadline.remaining() <= 5.0
True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from resilience import _clock
from resilience._engine import DeadlineScope, active_deadline, check_seconds, current_deadline
from resilience.errors import DeadlineExceeded

__all__ = ["check", "expires_at", "remaining", "scope"]


def expires_at() -> float | None:
    """The absolute deadline on the resilience clock (monotonic seconds), or None."""
    return active_deadline()


def remaining() -> float | None:
    """Seconds left before the current deadline (may be negative once passed), or None."""
    deadline = active_deadline()
    return None if deadline is None else deadline - _clock.monotonic()


def check(what: str = "call") -> None:
    """Raise :class:`DeadlineExceeded` if the current deadline has passed."""
    deadline = active_deadline()
    if deadline is not None:
        now = _clock.monotonic()
        if now >= deadline:
            raise DeadlineExceeded(None, now - deadline, deadline=deadline, kind="deadline", what=what)


@contextmanager
def scope(seconds: float) -> Iterator[float]:
    """Set a deadline ``seconds`` from now (never later than an enclosing one) for the block.

    Nothing is interrupted: deadline-aware code (retries, ``resilience.http.Session``)
    reads it. Yields the absolute deadline.
    """
    check_seconds("seconds", seconds)
    now = _clock.monotonic()
    outer = active_deadline()
    deadline = now + seconds if outer is None else min(outer, now + seconds)
    scope_ = DeadlineScope(deadline, current_deadline.get())
    token = current_deadline.set(scope_)
    try:
        yield deadline
    finally:
        scope_.active = False
        current_deadline.reset(token)
