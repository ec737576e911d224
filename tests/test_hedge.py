"""``rs.hedge``: a slow call gets a second attempt, the first success wins, the loser is let go."""

# House style reads `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import blocked_call, turns, until, wait_until

import resilience as rs
from resilience import _clock, _hedge
from resilience._workers import WorkerPool

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


class Closable:
    """A result that records being closed (like an HTTP response)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


# --- async: attempts are tasks, the loser is cancelled --------------------------------------


async def run_until_hedged(fn: Callable[[], Any], clock: rs.testing.FakeClock, advance: float) -> Any:
    """Start ``fn()``, let its first attempt start, move the fake clock by ``advance``, await the result."""
    task = asyncio.ensure_future(fn())
    await turns()
    clock.advance(advance)
    return await task


def test_async_slow_first_attempt_is_hedged_and_cancelled(clock):
    """After ``delay``, a second attempt starts; its answer is returned and the first is cancelled."""
    layer = rs.hedge(1.0)
    started: list[int] = []
    cancelled: list[int] = []

    @layer
    async def fetch() -> str:
        number = len(started) + 1
        started.append(number)
        if number == 1:
            try:
                await asyncio.Event().wait()  # hangs
            except asyncio.CancelledError:
                cancelled.append(number)
                raise
        return f"attempt {number}"

    async def main() -> str:
        result = await run_until_hedged(fetch, clock, 1.0)
        await asyncio.sleep(0)  # the loser's cancellation lands
        return result

    assert "attempt 2" == asyncio.run(main())
    assert ([1, 2], [1]) == (started, cancelled)
    assert {"calls": 1, "hedged": 1, "won": 1, "denied": 0, "saturated": 0, "delay": 1.0} == layer.stats()


def test_async_fast_answer_is_not_hedged(clock):
    """A first attempt that answers before ``delay`` is the only one."""
    layer = rs.hedge(1.0)
    calls: list[int] = []

    @layer
    async def fetch() -> str:
        calls.append(1)
        await _clock.current.asleep(0.5)
        return "fast"

    assert "fast" == asyncio.run(fetch())
    assert ([1], 0) == (calls, layer.stats()["hedged"])


def test_async_every_attempt_failing_surfaces_the_first_error(clock):
    """When all attempts fail, the first attempt's error surfaces with a note saying so."""
    layer = rs.hedge(1.0)

    async def main() -> BaseException:
        release = asyncio.Event()
        started: list[int] = []

        @layer
        async def fetch() -> str:
            started.append(1)
            if len(started) == 1:
                await release.wait()
                raise ConnectionError("first")
            raise ConnectionError("second")

        task = asyncio.ensure_future(fetch())
        await turns()
        clock.advance(1.0)
        await until(lambda: len(started) >= 2)
        release.set()
        try:
            await task
        except ConnectionError as exc:
            return exc
        raise AssertionError("no error")

    error = asyncio.run(main())
    assert "first" == str(error)
    assert any("all 2 hedged attempts" in note for note in error.__notes__)


def test_async_failure_does_not_start_a_hedge(clock):
    """A first attempt that fails before ``delay`` fails the call: failures are retry's business."""
    layer = rs.hedge(1.0)

    @layer
    async def fetch() -> str:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError) as excinfo:
        asyncio.run(fetch())
    assert (0, []) == (layer.stats()["hedged"], getattr(excinfo.value, "__notes__", []))


def test_async_budget_denial_waits_for_the_first_attempt(clock):
    """When the budget refuses the extra attempt, the call waits for the first one, and the denial is counted."""
    layer = rs.hedge(1.0, budget=rs.RetryBudget(ratio=0.0, min_per_second=0.0))
    assert ("attempt 1", 1) == asyncio.run(blocked_call(layer, clock, 1.0))
    assert (0, 1) == (layer.stats()["hedged"], layer.stats()["denied"])


def test_async_max_extra_starts_one_more_attempt_per_delay(clock):
    """max_extra=2: extra attempts start at ``delay`` and 2 x ``delay``; the third one wins."""
    layer = rs.hedge(1.0, max_extra=2)
    started: list[float] = []

    async def main() -> str:
        @layer
        async def fetch() -> str:
            number = len(started) + 1
            started.append(_clock.monotonic())
            if number < 3:
                await asyncio.Event().wait()
            return f"attempt {number}"

        task = asyncio.ensure_future(fetch())
        for step in range(2):
            await turns()
            clock.advance(1.0)
            await until(lambda step=step: len(started) >= step + 2)
        return await task

    begin = clock.monotonic()
    assert "attempt 3" == asyncio.run(main())
    assert [0.0, 1.0, 2.0] == [at - begin for at in started]
    assert (2, 1) == (layer.stats()["hedged"], layer.stats()["won"])


def test_async_no_hedge_after_the_deadline(clock):
    """An extra attempt never starts once the enclosing deadline has passed."""
    layer = rs.hedge(1.0)
    within_deadline = rs.timeout(0.5, mode="cooperative")
    assert ("attempt 1", 1) == asyncio.run(blocked_call(lambda fn: within_deadline(layer(fn)), clock, 1.0))
    assert 0 == layer.stats()["hedged"]


def test_async_cancelling_the_caller_cancels_every_attempt(clock):
    """A caller cancelled while attempts run takes them all down with it."""
    layer = rs.hedge(1.0)
    cancelled: list[int] = []

    @layer
    async def fetch() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(1)
            raise
        return "never"

    async def main() -> None:
        task = asyncio.ensure_future(fetch())
        await turns()
        clock.advance(1.0)
        await turns()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await turns()

    asyncio.run(main())
    assert [1, 1] == cancelled


def test_async_attempts_see_the_callers_deadline(clock):
    """Every attempt runs in the caller's context: the deadline is visible inside it."""

    @rs.timeout(5.0, mode="cooperative")
    @rs.hedge(1.0)
    async def fetch() -> float | None:
        return rs.deadline.remaining()

    assert 5.0 == asyncio.run(fetch())


def test_async_fast_answer_costs_no_extra_loop_turn():
    """An answer before ``delay`` reaches the caller as soon as awaiting a plain task would.

    The caller is woken from the attempt's last step, not from a done callback, which
    would add one event-loop turn (and one wait behind every other ready callback) to
    every call, hedged or not.
    """

    async def answer() -> str:
        return "fast"

    hedged = rs.hedge(10.0)(answer)

    async def turns_taken(call: Callable[[], Any]) -> int:
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        ticking = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)  # the ticker is running
        before = ticks
        assert "fast" == await call()
        spent = ticks - before
        stop = True
        await ticking
        return spent

    async def main() -> tuple[int, int]:
        return await turns_taken(hedged), await turns_taken(lambda: asyncio.ensure_future(answer()))

    hedged_turns, task_turns = asyncio.run(main())
    assert hedged_turns <= task_turns


# --- sync: attempts run in worker threads, the loser is abandoned ---------------------------


def test_sync_slow_first_attempt_is_hedged_and_its_late_result_closed(clock):
    """After ``delay`` a second attempt runs in another worker and wins; the first one's late result is closed."""
    layer = rs.hedge(1.0)
    gate = threading.Event()
    results: list[Closable] = []

    @layer
    def fetch() -> Closable:
        number = len(results) + 1
        result = Closable(f"attempt {number}")
        results.append(result)
        if number == 1:
            clock.advance(1.0)  # the first attempt is slow: the hedge falls due
            assert gate.wait(10)
        return result

    winner = fetch()
    assert "attempt 2" == winner.name
    assert False is winner.closed
    gate.set()  # the abandoned first attempt finishes now
    wait_until(lambda: results[0].closed)
    assert {"calls": 1, "hedged": 1, "won": 1, "denied": 0, "saturated": 0, "delay": 1.0} == layer.stats()


def test_sync_fast_answer_is_not_hedged(clock):
    """A first attempt that answers before ``delay`` is the only one."""
    layer = rs.hedge(1.0)
    calls: list[int] = []

    @layer
    def fetch() -> str:
        calls.append(1)
        return "fast"

    assert "fast" == fetch()
    assert ([1], 0) == (calls, layer.stats()["hedged"])


def test_sync_every_attempt_failing_surfaces_the_first_error(clock):
    """When all attempts fail, the first attempt's error surfaces with a note saying so."""
    layer = rs.hedge(1.0)
    second_done = threading.Event()
    started: list[int] = []

    @layer
    def fetch() -> str:
        started.append(1)
        if len(started) == 1:
            clock.advance(1.0)
            assert second_done.wait(10)
            raise ConnectionError("first")
        second_done.set()
        raise ConnectionError("second")

    with pytest.raises(ConnectionError, match="first") as excinfo:
        fetch()
    assert any("all 2 hedged attempts" in note for note in excinfo.value.__notes__)


def test_sync_failure_does_not_start_a_hedge(clock):
    """A first attempt that fails before ``delay`` fails the call at once."""
    layer = rs.hedge(1.0)

    @layer
    def fetch() -> str:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        fetch()
    assert 0 == layer.stats()["hedged"]


def test_sync_attempts_see_the_callers_context(clock):
    """Worker-thread attempts run with the caller's contextvars: the deadline is visible."""

    @rs.hedge(1.0)
    def fetch() -> float | None:
        return rs.deadline.remaining()

    with rs.deadline.scope(5.0):
        assert 5.0 == fetch()


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], WorkerPool]:
    """Give sync hedges a fresh pool of ``n`` workers (no idle workers left by other tests)."""

    def install(workers: int) -> WorkerPool:
        fresh = WorkerPool(workers, idle_seconds=1.0, thread_name="test-hedge", discard=_hedge._discard)
        monkeypatch.setattr(_hedge, "pool", fresh)
        return fresh

    return install


def run_bounded(target: Callable[[], None], seconds: float = 10.0) -> None:
    """Run ``target`` in a daemon thread; fail (instead of hanging the suite) if it is not done in ``seconds``."""
    runner = threading.Thread(target=target, daemon=True)
    runner.start()
    runner.join(seconds)
    assert False is runner.is_alive(), "hung"


def test_nested_sync_hedges_do_not_deadlock_a_full_pool(clock, small_pool):
    """As many outer hedged calls as workers, each calling a hedged def: the inner ones run inline, all finish."""
    small_pool(2)
    both_running = threading.Barrier(2, timeout=10)
    inner_layer, outer_layer = rs.hedge(60.0), rs.hedge(60.0)

    @inner_layer
    def inner() -> str:
        return "inner"

    @outer_layer
    def outer() -> str:
        both_running.wait()  # every worker now runs an outer attempt
        answer = inner()
        both_running.wait()  # and keeps it until both inner calls are made
        return answer

    results: list[str] = []

    def two_callers() -> None:
        callers = [threading.Thread(target=lambda: results.append(outer())) for _ in range(2)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()

    run_bounded(two_callers)
    assert ["inner", "inner"] == results
    assert (0, 2) == (outer_layer.stats()["saturated"], inner_layer.stats()["saturated"])


def test_nested_sync_hedge_gets_its_own_worker_while_the_pool_has_room(clock, small_pool):
    """With a free worker, the inner hedged call still runs in the pool (it can still be hedged)."""
    small_pool(4)

    @rs.hedge(60.0)
    def inner() -> threading.Thread:
        return threading.current_thread()

    @rs.hedge(60.0)
    def outer() -> tuple[threading.Thread, threading.Thread]:
        return threading.current_thread(), inner()

    found: list[tuple[threading.Thread, threading.Thread]] = []
    run_bounded(lambda: found.append(outer()))
    ((outer_thread, inner_thread),) = found
    assert (True, True) == ("test-hedge" == outer_thread.name, "test-hedge" == inner_thread.name)
    assert outer_thread is not inner_thread


def test_sync_call_runs_inline_when_no_worker_is_free(clock, small_pool):
    """A saturated pool does not queue the call: it runs in the caller's thread, unhedged, and is counted."""
    small_pool(1)
    hold, holding = threading.Event(), threading.Event()

    @rs.hedge(60.0)
    def occupy() -> None:
        holding.set()
        assert hold.wait(10)

    layer = rs.hedge(60.0)
    fn = layer(lambda: threading.current_thread())
    occupier = threading.Thread(target=occupy)
    occupier.start()
    try:
        assert holding.wait(10)
        assert threading.current_thread() is fn()
    finally:
        hold.set()
        occupier.join(10)
    assert (1, 1, 0) == (layer.stats()["calls"], layer.stats()["saturated"], layer.stats()["hedged"])


def test_sync_extra_attempt_is_not_started_without_a_free_worker(clock, small_pool):
    """When the hedge falls due and no worker is free, no extra attempt starts and the budget is not touched."""
    small_pool(1)
    budget = rs.RetryBudget(ratio=1.0, min_per_second=1.0)
    layer = rs.hedge(1.0, budget=budget)
    started: list[int] = []

    @layer
    def fetch() -> str:
        started.append(1)
        clock.advance(1.0)  # slow: the hedge falls due while this attempt holds the only worker
        wait_until(lambda: 1 == layer.stats()["saturated"])
        return "first"

    assert "first" == fetch()
    assert ([1], 0, 0) == (started, layer.stats()["hedged"], layer.stats()["denied"])
    assert (0, 0) == (budget.stats()["allowed"], budget.stats()["denied"])


# --- the adaptive delay ---------------------------------------------------------------------


def test_adaptive_delay_is_the_quantile_of_recent_latencies(twin, clock):
    """Without ``delay``, nothing is hedged for 20 calls; then the delay is their p95 (nearest rank)."""
    layer = rs.hedge(quantile=0.95)
    latencies = [0.01 * i for i in range(1, 21)]
    for seconds in latencies:
        assert None is layer.current_delay()
        twin.run(layer(twin.sleeping(seconds, "ok")))
    assert pytest.approx(0.19) == layer.current_delay()
    assert (20, 0) == (layer.stats()["calls"], layer.stats()["hedged"])


def test_adaptive_warm_up_runs_sync_calls_in_the_callers_thread(clock):
    """Until it knows the latencies, a sync hedge runs the call inline (no worker thread)."""
    layer = rs.hedge()
    fn = layer(lambda: threading.current_thread())
    assert threading.current_thread() is fn()


def test_reset_forgets_latencies_and_counters(clock):
    """reset() returns an adaptive hedge to learning, with zero counters."""
    layer = rs.hedge()
    fn = layer(lambda: "ok")
    for _ in range(25):
        fn()
    assert layer.current_delay() is not None
    layer.reset()
    assert {"calls": 0, "hedged": 0, "won": 0, "denied": 0, "saturated": 0, "delay": None} == layer.stats()


# --- configuration --------------------------------------------------------------------------


def test_repr():
    """The repr shows the delay (or the quantile) and max_extra."""
    assert ("hedge(delay=p95, max_extra=1)", "hedge(delay=0.05 s, max_extra=2)") == (
        repr(rs.hedge()),
        repr(rs.hedge(0.05, max_extra=2)),
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "parameter"),
    [
        ((-1,), {}, ValueError, "delay"),
        (("1",), {}, TypeError, "delay"),
        ((), {"max_extra": 0}, ValueError, "max_extra"),
        ((), {"max_extra": 1.5}, TypeError, "max_extra"),
        ((), {"quantile": 0}, ValueError, "quantile"),
        ((), {"quantile": 1}, ValueError, "quantile"),
        ((), {"quantile": "p95"}, TypeError, "quantile"),
        ((), {"budget": 0.1}, TypeError, "budget"),
    ],
)
def test_bad_configuration_fails_at_decoration_time(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type, parameter: str
):
    """Bad arguments raise ValueError/TypeError naming the parameter."""
    with pytest.raises(error, match=parameter):
        rs.hedge(*args, **kwargs)


def test_pool_configuration_and_stats():
    """rs.hedge.configure(max_workers=...) bounds the pool; stats() reports it; bad values are rejected."""
    previous = rs.hedge.stats()["max_workers"]
    rs.hedge.configure(max_workers=8)
    try:
        assert 8 == rs.hedge.stats()["max_workers"]
    finally:
        rs.hedge.configure(max_workers=previous)
    with pytest.raises(ValueError, match="max_workers"):
        rs.hedge.configure(max_workers=0)


# --- the benchmark script runs (no timing asserted) ----------------------------------------


def test_hedge_benchmark_smoke():
    """``benchmarks/hedge.py --quick`` starts its loopback server, prints every row and a verdict."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "hedge.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr[-2000:]
    assert "open loop" in done.stdout  # every row offers the server the same load
    for row in ("async unhedged", "async hedge(", "sync unhedged", "sync hedge("):
        assert row in done.stdout
    assert ("PASS" in done.stdout) or ("FAIL" in done.stdout)
