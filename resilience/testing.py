"""Helpers for testing code that uses resilience: instant waits, a fake clock, resets.

``no_wait()`` makes every wait resilience does instant and records it; time still
appears to pass by the waited amount, so deadlines, Retry-After and breaker open periods
behave as in production (only resilience's own waits move fake time; code that blocks for
real is not interrupted by a fake deadline)::

    def test_retries_then_succeeds():
        with rs.testing.no_wait() as clock:
            assert "ok" == flaky()
        assert [0.5, 1.0] == clock.sleeps  # with jitter=False

As a pytest fixture (conftest.py)::

    @pytest.fixture(autouse=True)
    def resilience_clock():
        rs.testing.reset()
        with rs.testing.no_wait() as clock:
            yield clock

**freezegun.** Inside ``freeze_time``, ``no_wait()`` reads and advances the frozen time: a
wait ticks freezegun forward. freezegun hands *real* time to code running a few frames
below a ``threading`` frame (its default ignore list), so plain ``time.monotonic()`` in a
worker thread, such as the one ``rs.timeout`` runs a sync call in, sees real time while
the test sees frozen time. resilience's own clock reads the frozen time directly in every
thread, so its timeouts, retries and breakers agree with the test. For your own code in
threads, either read time through the clock ``no_wait()`` yields, or remove "threading"
from freezegun's ignore list for the test::

    freezegun.configure(default_ignore_list=[m for m in freezegun.config.DEFAULT_IGNORE_LIST
                                             if m != "threading"])
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from resilience import _clock, monitor
from resilience._bulkhead import bulkhead
from resilience._circuit import circuit
from resilience._clock import FakeClock
from resilience._rate_limit import rate_limit

if TYPE_CHECKING:
    from resilience._demo_server import DemoServer

__all__ = ["DemoServer", "FakeClock", "fake_clock", "no_wait", "reset"]


def __getattr__(name: str) -> Any:
    # DemoServer (a misbehaving loopback HTTP server) pulls in http.server: only on demand.
    if name == "DemoServer":
        from resilience._demo_server import DemoServer

        return DemoServer
    raise AttributeError(f"module 'resilience.testing' has no attribute {name!r}")


@contextmanager
def fake_clock(start: float = 1_000.0) -> Iterator[FakeClock]:
    """Install a virtual clock starting at ``start`` (monotonic seconds) for the block.

    Sleeps advance it instantly (recorded in ``.sleeps``); ``clock.advance(s)`` moves it
    by hand; timeouts fire when it passes their deadline.
    """
    clock = FakeClock(start)
    previous = _clock.use(clock)
    try:
        yield clock
    finally:
        _clock.use(previous)


@contextmanager
def no_wait() -> Iterator[FakeClock]:
    """Make every resilience wait instant and record it, continuing from the current time.

    Under freezegun the clock follows (and ticks) the frozen time.
    """
    clock = FakeClock(time.monotonic(), wall=time.time())
    freezegun_api = sys.modules.get("freezegun.api")
    factories = getattr(freezegun_api, "freeze_factories", None)
    if factories:
        clock.follow_freezegun(factories[-1])
    previous = _clock.use(clock)
    try:
        yield clock
    finally:
        _clock.use(previous)


def reset() -> None:
    """Reset every breaker and zero every monitored name, in place, and forget bulkheads and
    rate limits (call it between tests).

    Functions decorated at import time keep working with fresh state.
    """
    circuit.clear()
    bulkhead.clear()
    rate_limit.clear()
    monitor.default.reset()
