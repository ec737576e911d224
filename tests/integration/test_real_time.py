"""``rs.timeout`` on the real clock (SIGALRM, worker threads, asyncio) and under freezegun.

Each test waits at most a few tenths of a second; the bounds asserted are generous.
"""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import datetime
import signal
import threading
import time
from collections.abc import Callable, Iterator

import freezegun
import freezegun.config
import pytest

import resilience as rs
from resilience import _clock

pytestmark = pytest.mark.integration

# Far above the 0.05-0.1 s timeouts used here, far below the 2-5 s the bodies would take.
QUICK = 1.5


def times_out_quickly(fn: Callable[[], object]) -> rs.DeadlineExceeded:
    """Call ``fn``, expecting DeadlineExceeded in under QUICK seconds (long before its body would end); return it."""
    started = time.monotonic()
    with pytest.raises(rs.DeadlineExceeded) as info:
        fn()
    took = time.monotonic() - started
    assert took < QUICK
    return info.value


def _unexpected_alarm(signum: int, frame: object) -> None:
    raise AssertionError("the test's own SIGALRM handler ran")


@pytest.fixture
def own_sigalrm_handler() -> Iterator[None]:
    """Install a SIGALRM handler of the test's own, and put the previous one (pytest-timeout's) back."""
    previous = signal.signal(signal.SIGALRM, _unexpected_alarm)
    yield
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def freezegun_freezes_threads() -> Iterator[None]:
    """The remedy documented in resilience.testing: drop "threading" from freezegun's ignore list."""
    saved = list(freezegun.config.settings.default_ignore_list)
    freezegun.configure(default_ignore_list=[m for m in freezegun.config.DEFAULT_IGNORE_LIST if m != "threading"])
    yield
    freezegun.configure(default_ignore_list=saved)


# -- signal mode ---------------------------------------------------------------------------


def test_signal_mode_interrupts_a_blocking_sleep(own_sigalrm_handler):
    """SIGALRM in the main thread interrupts time.sleep(5) at about 0.1 s with DeadlineExceeded."""
    fn = rs.timeout(0.1, mode="signal")(lambda: time.sleep(5))

    assert 0.1 == times_out_quickly(fn).limit


def test_signal_mode_restores_the_previous_handler(own_sigalrm_handler):
    """After a signal-mode call, timed out or not, the previous SIGALRM handler is back."""
    slow = rs.timeout(0.1, mode="signal")(lambda: time.sleep(5))
    fast = rs.timeout(5, mode="signal")(lambda: "ok")

    with pytest.raises(rs.DeadlineExceeded):
        slow()
    assert _unexpected_alarm is signal.getsignal(signal.SIGALRM)

    assert "ok" == fast()
    assert _unexpected_alarm is signal.getsignal(signal.SIGALRM)


def test_signal_mode_rearms_an_enclosing_interval_timer(own_sigalrm_handler):
    """An interval timer armed before the call (e.g. pytest-timeout's) is re-armed with what is left of it."""
    saved = signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        fn = rs.timeout(0.1, mode="signal")(lambda: time.sleep(5))
        with pytest.raises(rs.DeadlineExceeded):
            fn()
        left, _ = signal.getitimer(signal.ITIMER_REAL)
    finally:
        signal.setitimer(signal.ITIMER_REAL, *saved)

    assert 20 < left <= 30


# -- thread mode and asyncio -----------------------------------------------------------------


def test_thread_mode_gives_up_on_a_blocking_sleep():
    """rs.timeout(0.1) around time.sleep(2) raises DeadlineExceeded long before the sleep ends."""
    fn = rs.timeout(0.1)(lambda: time.sleep(2))

    error = times_out_quickly(fn)
    assert 0.1 == error.limit
    assert error.elapsed >= 0.1


def test_asyncio_timeout_cancels_a_long_sleep():
    """rs.timeout(0.05) around asyncio.sleep(5) raises DeadlineExceeded after about 0.05 s."""

    @rs.timeout(0.05)
    async def body() -> None:
        await asyncio.sleep(5)

    assert 0.05 == times_out_quickly(lambda: asyncio.run(body())).limit


# -- freezegun -------------------------------------------------------------------------------


def read_monotonic() -> float:
    return time.monotonic()


def read_both() -> tuple[float, float]:
    return time.monotonic(), _clock.monotonic()


def test_worker_thread_sees_real_time_under_freezegun():
    """Under freeze_time, plain time.monotonic() inside a rs.timeout worker thread reads real time."""
    real_before = time.monotonic()
    with freezegun.freeze_time("2024-01-01"):
        frozen = time.monotonic()
        seen_in_worker = rs.timeout(1)(read_monotonic)()

    assert frozen != seen_in_worker
    assert 0 <= seen_in_worker - real_before < 60


def test_resilience_clock_in_worker_thread_sees_frozen_time_under_no_wait():
    """Under freeze_time and no_wait(), the resilience clock in a worker thread reads the frozen time."""
    with freezegun.freeze_time("2024-01-01"), rs.testing.no_wait():
        frozen = time.monotonic()
        plain, resilience_clock = rs.timeout(1)(read_both)()

    assert frozen == resilience_clock
    assert frozen != plain


def test_no_wait_sleep_ticks_freezegun_forward():
    """Under freeze_time, a no_wait() sleep of 5 s (e.g. a retry backoff) advances the frozen time by 5 s."""
    with freezegun.freeze_time("2024-01-01") as frozen, rs.testing.no_wait() as clock:
        before = time.monotonic()
        _clock.sleep(5)
        after = time.monotonic()
        now = frozen()

    assert 5.0 == after - before
    assert datetime.datetime(2024, 1, 1, 0, 0, 5) == now
    assert [5] == clock.sleeps


def test_documented_remedy_freezes_time_in_worker_threads(freezegun_freezes_threads):
    """Without "threading" in freezegun's ignore list, time.monotonic() in a worker thread is frozen too."""
    with freezegun.freeze_time("2024-01-01"):
        frozen = time.monotonic()
        seen_in_worker = rs.timeout(1)(read_monotonic)()

    assert frozen == seen_in_worker


def test_worker_threads_are_daemons():
    """The pool's worker threads are daemons, so an abandoned call never blocks interpreter exit."""
    fn = rs.timeout(1)(lambda: threading.current_thread().daemon)

    assert fn()


def test_idle_workers_exit_and_the_pool_still_serves() -> None:
    """Worker threads idle past idle_seconds exit; later calls start new ones."""
    from resilience import _timeout

    pool = _timeout.WorkerPool(max_workers=2, idle_seconds=0.05)
    job = _timeout._Job(lambda: "first", (), {})
    pool.submit(job)
    assert job.done.wait(5)
    deadline = time.monotonic() + 5
    while pool.stats()["workers"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 0 == pool.stats()["workers"]
    again = _timeout._Job(lambda: "second", (), {})
    pool.submit(again)
    assert again.done.wait(5)
    assert "second" == again.result
