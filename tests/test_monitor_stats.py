"""``@monitored`` statistics: outcome kinds, statuses, timeouts, retries, per-outcome latency,
the sliding window, the fast path's buffer, threads, bounded memory."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from helpers import call, raising

import resilience as rs
from resilience import _monitor_stats, monitor
from resilience._engine import Args, CallRecord, Kwargs, Layer, current_record
from resilience._sketch import MAX_KEY, MIN_KEY


class Annotate(Layer):
    """A test layer that writes fields of the call record, as an HTTP layer would."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def _write(self) -> None:
        record = current_record.get()
        assert record is not None
        for name, value in self.fields.items():
            setattr(record, name, value)

    def run_sync(self, fn: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
        self._write()
        return fn(*args, **kwargs)

    async def run_async(self, fn: Callable[..., Awaitable[Any]], args: Args, kwargs: Kwargs) -> Any:
        self._write()
        return await fn(*args, **kwargs)


class ConnectTimeout(TimeoutError):
    """Named like requests' and httpx's connect timeouts."""


class ReadTimeout(TimeoutError):
    """Named like requests' and httpx's read timeouts."""


NEW_KEYS = {"statuses", "circuit_rejections", "fallbacks", "drops", "latency_by_outcome", "window"}
CORE_KEYS = {
    "name",
    "calls",
    "ok",
    "failed",
    "success_rate",
    "recent_calls",
    "recent_success_rate",
    "retries",
    "retry_reasons",
    "outcomes",
    "errors",
    "timeouts",
    "latency",
    "last_failure",
}


def test_snapshot_keeps_its_keys_and_gains_the_new_ones(twin: Any) -> None:
    """A snapshot keeps the core issue's keys and adds statuses, rejections, fallbacks, drops, window..."""
    twin.run(rs.monitored("svc")(twin.wrap(lambda: 1)))
    snap = rs.monitor.snapshot("svc")
    assert CORE_KEYS | NEW_KEYS == set(snap)
    assert {"seconds", "calls", "ok", "failed", "success_rate", "outcomes", "latency", "latency_by_outcome"} <= set(
        snap["window"]
    )


def test_latency_per_outcome(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Durations are kept per outcome: 0.1 s successes and 2 s ValueErrors have their own quantiles."""
    ok = rs.monitored("svc")(twin.sleeping(0.1, "ok"))
    slow = twin.sleeping(2.0)

    async def slow_then_fail_async() -> None:
        await slow()
        raise ValueError("late")

    def slow_then_fail() -> None:
        slow()
        raise ValueError("late")

    failing = rs.monitored("svc")(slow_then_fail_async if twin.is_async else slow_then_fail)
    for _ in range(3):
        twin.run(ok)
        call(twin, failing)
    by_outcome = rs.monitor.snapshot("svc")["latency_by_outcome"]
    assert ["ValueError", "ok"] == sorted(by_outcome)
    assert pytest.approx(0.1, rel=0.01) == by_outcome["ok"]["p50"]
    assert pytest.approx(2.0, rel=0.01) == by_outcome["ValueError"]["p99"]
    assert pytest.approx(1.05, rel=1e-9) == rs.monitor.snapshot("svc")["latency"]["mean"]


def test_window_forgets_calls_older_than_it(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Calls 400 s old leave the 5-minute window but stay in the lifetime counters."""
    fn = rs.monitored("svc")(twin.wrap(raising(ValueError("old"))))
    for _ in range(3):
        call(twin, fn)
    clock.advance(400)
    twin.run(rs.monitored("svc")(twin.wrap(lambda: "new")))
    snap = rs.monitor.snapshot("svc")
    assert (4, 1) == (snap["calls"], snap["ok"])
    assert (1, 1, 1.0) == (snap["window"]["calls"], snap["window"]["ok"], snap["window"]["success_rate"])
    assert (1, 1.0) == (snap["recent_calls"], snap["recent_success_rate"])


@pytest.mark.parametrize(("age", "counted"), [(0, 1), (269, 1), (299, 1), (331, 0), (1_000, 0)])
def test_window_is_five_minutes_in_thirty_second_buckets(clock: rs.testing.FakeClock, age: float, counted: int) -> None:
    """By default the window counts the buckets overlapping the last 300 s: 300 to 330 s of calls."""
    clock.advance(30 - clock.monotonic() % 30)  # start on a bucket boundary
    rs.monitored("svc")(lambda: None)()
    clock.advance(age)
    assert counted == rs.monitor.snapshot("svc")["window"]["calls"]


def test_registry_window_is_configurable(clock: rs.testing.FakeClock) -> None:
    """``Registry(window=60, buckets=6)`` judges by the last minute, in 10 s buckets."""
    registry = rs.monitor.Registry(window=60, buckets=6)
    fn = rs.monitored("svc", registry=registry)(lambda: None)
    fn()
    clock.advance(61)
    fn()
    window = registry.snapshot("svc")["window"]
    assert (60.0, 2, 2) == (window["seconds"], window["calls"], registry.snapshot("svc")["calls"])
    clock.advance(70)
    assert 0 == registry.snapshot("svc")["window"]["calls"]


@pytest.mark.parametrize(("window", "buckets"), [(0, 10), (-5, 10), (300, 0), (300, 1.5), (300, True)])
def test_registry_rejects_bad_window(window: Any, buckets: Any) -> None:
    """A window must be positive seconds and buckets an int from 1 to 1000, naming the parameter."""
    with pytest.raises((ValueError, TypeError), match=r"window|buckets"):
        rs.monitor.Registry(window=window, buckets=buckets)


def test_http_status_classes_from_the_record(twin: Any) -> None:
    """A status an inner layer writes to the call record is counted by class, on success and failure."""
    ok = rs.monitored("api")(Annotate(status=200)(twin.wrap(lambda: "fine")))
    created = rs.monitored("api")(Annotate(status=201)(twin.wrap(lambda: "made")))
    failing = rs.monitored("api")(Annotate(status=503, url="http://api/x")(twin.wrap(raising(ConnectionError("5xx")))))
    twin.run(ok)
    twin.run(created)
    call(twin, failing)
    snap = rs.monitor.snapshot("api")
    assert {"2xx": 2, "5xx": 1} == snap["statuses"]
    assert {"2xx": 2, "5xx": 1} == snap["window"]["statuses"]
    assert (503, "http://api/x") == (snap["last_failure"]["status"], snap["last_failure"]["url"])


def test_timeout_kinds(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Timeouts are counted by kind: the timeout layer's, a policy's total, and connect/read by exception name."""
    layer = rs.monitored("svc")(rs.timeout(1, mode="signal")(twin.sleeping(2)))
    total = rs.Policy(timeout=1.0, monitor="svc")(twin.sleeping(2))
    connect = rs.monitored("svc")(twin.wrap(raising(ConnectTimeout("connect"))))
    read = rs.monitored("svc")(twin.wrap(raising(ReadTimeout("read"))))
    for fn in (layer, total, connect, read, read):
        call(twin, fn)
    snap = rs.monitor.snapshot("svc")
    assert {"timeout": 1, "total": 1, "connect": 1, "read": 2} == snap["timeouts"]
    assert {"timeout": 5} == snap["outcomes"]


def test_circuit_rejections_fallbacks_and_drops(twin: Any) -> None:
    """Open-circuit rejections, fallback answers and drops have their own counts and keep the error kind."""
    rejected = rs.monitored("svc")(rs.circuit("svc-cb")(twin.wrap(lambda: "unreachable")))
    answered = rs.monitored("svc")(rs.fallback("cached")(twin.wrap(raising(ConnectionError("down")))))
    dropped = rs.monitored("svc")(Annotate(dropped=True, error_kind="timeout")(twin.wrap(lambda: None)))
    rs.circuit.get("svc-cb").open()
    call(twin, rejected)
    call(twin, rejected)
    assert "cached" == twin.run(answered)
    assert None is twin.run(dropped)
    snap = rs.monitor.snapshot("svc")
    assert (2, 1, 1) == (snap["circuit_rejections"], snap["fallbacks"], snap["drops"])
    assert {"circuit_open": 2, "fallback": 1, "dropped": 1} == snap["outcomes"]
    assert {"circuit_open": 2, "connection": 1, "timeout": 1} == snap["errors"]
    assert (0, 4) == (snap["ok"], snap["failed"])


def test_retries_per_reason(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Retries are counted per name and per reason; their sum is the retries made."""
    script = iter([ConnectionError("a"), TimeoutError("b"), None, ConnectionError("c"), None])

    def body() -> str:
        exc = next(script)
        if exc is not None:
            raise exc
        return "ok"

    fn = rs.monitored("svc")(rs.retry_on(ConnectionError, TimeoutError, attempts=3, wait_initial=0)(twin.wrap(body)))
    assert ["ok", "ok"] == [twin.run(fn), twin.run(fn)]
    snap = rs.monitor.snapshot("svc")
    assert 3 == snap["retries"]
    assert {"ConnectionError": 2, "TimeoutError": 1} == snap["retry_reasons"]
    assert sum(snap["retry_reasons"].values()) == snap["retries"]
    assert 3 == snap["window"]["retries"]


def test_retries_without_reasons_count_as_unknown(twin: Any) -> None:
    """A layer that reports attempts but no reasons still makes the reasons add up to the retries."""
    fn = rs.monitored("svc")(Annotate(attempts=3)(twin.wrap(lambda: "ok")))
    twin.run(fn)
    snap = rs.monitor.snapshot("svc")
    assert (2, {"unknown": 2}) == (snap["retries"], snap["retry_reasons"])


def test_snapshot_without_name_returns_every_name_with_calls(twin: Any) -> None:
    """``snapshot()`` maps every name that has seen a call to its counters."""
    for name in ("b", "a", "c"):
        twin.run(rs.monitored(name)(twin.wrap(lambda: 1)))
    rs.monitored("never-called")
    assert ["a", "b", "c"] == sorted(rs.monitor.snapshot())


def test_outcome_kinds_are_capped(clock: rs.testing.FakeClock) -> None:
    """Beyond 32 kinds per name, new outcomes count as "other": counters stay bounded."""
    errors = [type(f"Error{index}", (Exception,), {}) for index in range(40)]
    fn = rs.monitored("svc")(lambda exc: (_ for _ in ()).throw(exc()))
    for error in errors:
        with pytest.raises(error):
            fn(error)
    outcomes = rs.monitor.snapshot("svc")["outcomes"]
    assert 33 == len(outcomes)  # 32 kinds and "other"
    assert 8 == outcomes["other"]
    assert 40 == sum(outcomes.values())


def test_successes_wait_in_the_buffer_until_read(clock: rs.testing.FakeClock) -> None:
    """On the fast path a success is only appended; reading the numbers folds it in."""
    fn = rs.monitored("svc")(lambda: None)
    fn()  # the first call sets the name's time bucket up
    stats = rs.monitor.default.stats("svc")
    fn()
    fn()
    assert 2 == len(stats.buffer)
    assert 3 == rs.monitor.snapshot("svc")["ok"]
    assert [] == stats.buffer


def test_frozen_clock_bounds_the_buffer(clock: rs.testing.FakeClock) -> None:
    """Calls of 0 s on a clock that does not move fold every BUFFER_LIMIT calls: the buffer stays bounded."""
    fn = rs.monitored("svc")(lambda: None)
    stats = rs.monitor.default.stats("svc")
    longest = 0
    for _ in range(5 * _monitor_stats.BUFFER_LIMIT):
        fn()
        longest = max(longest, len(stats.buffer))
    assert longest <= _monitor_stats.BUFFER_LIMIT
    assert 5 * _monitor_stats.BUFFER_LIMIT == rs.monitor.snapshot("svc")["ok"]


def test_moving_clock_folds_at_the_call_rate(clock: rs.testing.FakeClock) -> None:
    """With time moving, the fast path folds about every BUFFER_LIMIT calls, by the clock alone."""
    fn = rs.monitored("svc")(lambda: clock.advance(0.0001))
    stats = rs.monitor.default.stats("svc")
    longest = 0
    for _ in range(20 * _monitor_stats.BUFFER_LIMIT):
        fn()
        longest = max(longest, len(stats.buffer))
    assert longest <= 2 * _monitor_stats.BUFFER_LIMIT
    assert 20 * _monitor_stats.BUFFER_LIMIT == rs.monitor.snapshot("svc")["ok"]


def test_fast_path_builds_no_event(monkeypatch: pytest.MonkeyPatch, twin: Any) -> None:
    """A plain success builds no CallEvent: the slow path is for calls something happened to."""
    built: list[object] = []
    real_event = monitor._event

    def counting(*args: Any) -> Any:
        built.append(args)
        return real_event(*args)

    monkeypatch.setattr(monitor, "_event", counting)
    fn = rs.monitored("svc")(rs.retry_on(ConnectionError)(rs.circuit("svc")(twin.wrap(lambda: 1))))
    for _ in range(10):
        twin.run(fn)
    assert [] == built
    call(twin, rs.monitored("svc")(twin.wrap(raising(ValueError("x")))))
    assert 1 == len(built)
    assert 11 == rs.monitor.snapshot("svc")["calls"]


def hammer(fn: Callable[[int], Any], threads: int, calls: int, reader: Callable[[], object]) -> None:
    """``threads`` threads make ``calls`` calls each, released together, while ``reader`` keeps reading."""
    start = threading.Barrier(threads + 1)
    done = threading.Event()

    def worker() -> None:
        start.wait()
        for index in range(calls):
            with contextlib.suppress(ValueError):
                fn(index)

    def read() -> None:
        start.wait()
        while not done.is_set():
            reader()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    watcher = threading.Thread(target=read)
    for thread in [*pool, watcher]:
        thread.start()
    for thread in pool:
        thread.join()
    done.set()
    watcher.join()


def every_seventh_fails(index: int) -> int:
    """Succeeds, except when ``index`` is a multiple of 7."""
    if index % 7 == 0:
        raise ValueError("seventh")
    return index


def test_threads_lose_no_counts_on_the_real_clock() -> None:
    """8 threads x 5,000 calls, a reader snapshotting all along: every call is counted exactly once."""
    fn = rs.monitored("shared")(every_seventh_fails)
    hammer(fn, threads=8, calls=5_000, reader=lambda: rs.monitor.snapshot())
    snap = rs.monitor.snapshot("shared")
    failures = 8 * len(range(0, 5_000, 7))
    assert (40_000, 40_000 - failures, failures) == (snap["calls"], snap["ok"], snap["failed"])
    assert 40_000 == sum(sketch["calls"] for sketch in [snap["window"]])
    assert 40_000 == rs.monitor.default.stats("shared").sketch.count


def test_threads_lose_no_counts_on_a_frozen_clock(clock: rs.testing.FakeClock) -> None:
    """The same on a fake clock that never moves (every call 0 s: the buffer is counted, not timed)."""
    fn = rs.monitored("shared")(every_seventh_fails)
    hammer(fn, threads=8, calls=3_000, reader=lambda: rs.monitor.snapshot())
    snap = rs.monitor.snapshot("shared")
    failures = 8 * len(range(0, 3_000, 7))
    assert (24_000, 24_000 - failures) == (snap["calls"], snap["ok"])


def test_async_tasks_lose_no_counts(clock: rs.testing.FakeClock) -> None:
    """200 concurrent tasks, each sleeping on the fake clock mid-call, are all counted."""

    @rs.monitored("tasks")
    async def work(index: int) -> int:
        await clock.asleep(0.001 * (index % 5))
        return every_seventh_fails(index)

    async def main() -> None:
        await asyncio.gather(*(work(index) for index in range(200)), return_exceptions=True)

    asyncio.run(main())
    snap = rs.monitor.snapshot("tasks")
    assert (200, 200 - len(range(0, 200, 7))) == (snap["calls"], snap["ok"])


def test_memory_stays_bounded_as_the_window_rolls(clock: rs.testing.FakeClock) -> None:
    """50,000 calls over ~2 hours of fake time: at most 12 time buckets, sketches within their ~1,300 cells."""
    rng = random.Random(5)
    fn = rs.monitored("busy")(lambda: clock.advance(rng.lognormvariate(math.log(0.1), 1.5)))
    stats = rs.monitor.default.stats("busy")
    for _ in range(50_000):
        fn()
        assert len(stats.buckets) <= 12
    rs.monitor.snapshot("busy")
    cells = MAX_KEY - MIN_KEY + 1
    sketches = [*stats.lifetime.sketches.values()] + [s for b in stats.buckets.values() for s in b.sketches.values()]
    assert all(len(sketch._counts) <= cells for sketch in sketches)
    assert 50_000 == stats.sketch.count


def test_a_clock_swapped_for_an_earlier_one_keeps_counting(twin: Any) -> None:
    """Moving to a clock far behind the last one (tests swapping fake clocks) starts the window over there."""
    fn = rs.monitored("svc")(twin.wrap(lambda: 1))
    with rs.testing.fake_clock(start=10_000.0):
        twin.run(fn)
    with rs.testing.fake_clock(start=100.0):
        twin.run(fn)
        snap = rs.monitor.snapshot("svc")
    assert (2, 1) == (snap["calls"], snap["window"]["calls"])


def test_reset_clears_window_buffer_and_failures(twin: Any, clock: rs.testing.FakeClock) -> None:
    """``rs.testing.reset()`` zeroes lifetime, window, buffer and failure details of decorated functions in place."""
    ok = rs.monitored("svc")(twin.wrap(lambda: 1))
    bad = rs.monitored("svc")(twin.wrap(raising(ValueError("x"))))
    twin.run(ok)
    twin.run(ok)
    call(twin, bad)
    rs.testing.reset()
    assert [] == rs.monitor.recent_failures("svc")
    twin.run(ok)
    snap = rs.monitor.snapshot("svc")
    assert (1, 1, None) == (snap["calls"], snap["window"]["calls"], snap["last_failure"])


def test_recent_failures_keep_the_last_five(twin: Any, clock: rs.testing.FakeClock) -> None:
    """``recent_failures(name)`` holds the last five failures, oldest first, with their details."""
    fn = rs.monitored("svc")(twin.wrap(lambda n: every_seventh_fails(0) if n else 1))
    for index in range(1, 8):
        with rs.monitor.trace_id.scope(f"trace-{index}"):
            call(twin, fn, index)
        clock.advance(1)
    recent = rs.monitor.recent_failures("svc")
    assert [f"trace-{index}" for index in range(3, 8)] == [event.trace_id for event in recent]
    assert {"ValueError"} == {event.outcome for event in recent}
    assert ("seventh", "ValueError") == (recent[0].error, recent[0].error_type)
    assert [1_700_000_002.0 + index for index in range(5)] == [event.at for event in recent]
    with pytest.raises(KeyError, match="nobody"):
        rs.monitor.recent_failures("nobody")


def test_call_record_fields_default_until_written() -> None:
    """A new record reads its defaults and is untouched; a write marks it touched; unknown fields are errors."""
    record = CallRecord()
    assert (1, None, False, False, None, None, False) == (
        record.attempts,
        record.status,
        record.fallback,
        record.dropped,
        record.url,
        record.retry_reasons,
        record.touched,
    )
    record.status = 204
    assert (204, True, 1) == (record.status, record.touched, record.attempts)
    assert isinstance(record, CallRecord)
    with pytest.raises(AttributeError, match="statu"):
        record.statu = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no field"):
        _ = CallRecord().nothing  # type: ignore[attr-defined]
    assert "status=204" in repr(record)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_inherit_held_monitor_locks() -> None:
    """A fork while another thread holds a name's lock and the registry's: the child still counts calls."""
    script = textwrap.dedent(
        """
        import faulthandler, logging, os, threading
        logging.disable(logging.CRITICAL)
        import resilience as rs
        def fail():
            raise ConnectionError("down")
        failing = rs.monitored("svc")(fail)
        stats = rs.monitor.default.stats("svc")
        held, release = threading.Event(), threading.Event()
        def hold():
            with stats.lock, rs.monitor.default._lock:
                held.set()
                release.wait()
        threading.Thread(target=hold, daemon=True).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            faulthandler.dump_traceback_later(5, exit=True)  # a deadlock exits 1 instead of hanging
            try:
                failing()
            except ConnectionError:
                pass
            rs.monitored("other")(lambda: None)()
            os._exit(0 if rs.monitor.snapshot("svc")["failed"] == 1 else 2)
        release.set()
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "0" == done.stdout.strip(), done.stderr
