"""``rs.bulkhead``: how many calls may be in flight, who waits, for how long, and who is told no."""

# House style reads `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import until, wait_until

import resilience as rs
from resilience import _clock


@pytest.fixture(autouse=True)
def _fresh_bulkheads() -> Iterator[None]:
    """Every test starts with no named bulkheads."""
    rs.bulkhead.clear()
    yield
    rs.bulkhead.clear()


def call_while_queued(twin: Any, fn: Callable[..., Any], state: Any, then: Callable[[], None]) -> Any:
    """Call ``fn`` (in a thread, or as a task); once it queues in ``state``, run ``then()``.

    Returns what the call returned, or the exception it raised.
    """
    if twin.is_async:

        async def main() -> Any:
            task = asyncio.ensure_future(fn())
            await until(lambda: state.waiting > 0)
            then()
            try:
                return await task
            except Exception as exc:
                return exc

        return asyncio.run(main())
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: state.waiting == 1)
    then()
    thread.join(10)
    return outcome[0]


async def queued_behind_the_only_slot(layer: Any, body: Callable[[], object] = lambda: "ran") -> asyncio.Future[Any]:
    """Take ``layer``'s only slot, start a task calling an async ``body`` through it; return the task once queued."""

    @layer
    async def guarded() -> object:
        return body()

    layer.state.acquire_sync()
    task = asyncio.ensure_future(guarded())
    await until(lambda: layer.state.waiting > 0)
    return task


# --- admission ---------------------------------------------------------------------------


def test_calls_within_the_limit_run(twin):
    """Calls below max_concurrent run and are counted as admitted."""
    fn = rs.bulkhead(2, name="db")(twin.wrap(lambda x: x * 2))
    assert [2, 4, 6] == [twin.run(fn, x) for x in (1, 2, 3)]
    stats = rs.bulkhead.get("db").stats()
    assert (3, 0, 0, 1) == (stats["admitted"], stats["rejected"], stats["in_flight"], stats["peak"])


def test_full_bulkhead_rejects_at_once_without_max_wait(twin, clock):
    """With its only slot taken, a call fails at once with BulkheadFull (a ResilienceError) and is counted."""
    layer = rs.bulkhead(1, name="llm")
    inner = layer(twin.wrap(lambda: "inner"))
    if twin.is_async:

        async def outer() -> Any:
            return await inner()

    else:

        def outer() -> Any:
            return inner()

    with pytest.raises(rs.BulkheadFull) as excinfo:
        twin.run(layer(outer))
    assert isinstance(excinfo.value, rs.ResilienceError)
    assert ("llm", 1, 0.0) == (excinfo.value.name, excinfo.value.max_concurrent, excinfo.value.waited)
    assert "bulkhead 'llm' is full (1 calls in flight)" == str(excinfo.value)
    assert [] == clock.sleeps
    stats = rs.bulkhead.get("llm").stats()
    assert (1, 1, 0) == (stats["admitted"], stats["rejected"], stats["in_flight"])


def test_slot_is_released_when_the_call_raises(twin):
    """A call that raises gives its slot back."""

    def boom() -> None:
        raise ValueError("bad")

    fn = rs.bulkhead(1, name="db")(twin.wrap(boom))
    for _ in range(3):
        with pytest.raises(ValueError):
            twin.run(fn)
    assert (0, 3) == (rs.bulkhead.get("db").in_flight, rs.bulkhead.get("db").stats()["admitted"])


# --- waiting -----------------------------------------------------------------------------


def test_waiter_gets_the_slot_a_finished_call_frees(twin, clock):
    """A queued call runs as soon as a slot is released, before max_wait runs out."""
    state = rs.bulkhead(1, max_wait=5.0, name="db").state
    fn = rs.bulkhead(1, max_wait=5.0, name="db")(twin.wrap(lambda: "ran"))
    state.acquire_sync()  # someone else holds the only slot
    assert "ran" == call_while_queued(twin, fn, state, state.release)
    stats = state.stats()
    assert (2, 0, 0, 0) == (stats["admitted"], stats["rejected"], stats["in_flight"], stats["waiting"])


def test_waiter_gives_up_after_max_wait(twin, clock):
    """A call that waits max_wait without a slot fails with BulkheadFull saying how long it waited."""
    fn = rs.bulkhead(1, max_wait=2.0, name="db")(twin.wrap(lambda: "ran"))
    state = rs.bulkhead.get("db")
    state.acquire_sync()
    outcome = call_while_queued(twin, fn, state, lambda: clock.advance(2.0))
    assert isinstance(outcome, rs.BulkheadFull)
    assert 2.0 == outcome.waited
    assert "no slot came free within 2 s" in str(outcome)
    assert (1, 0) == (state.stats()["rejected"], state.waiting)
    state.release()
    assert 0 == state.in_flight


def test_wait_never_goes_past_the_enclosing_deadline(twin, clock):
    """With 1 s left before the deadline, a call waits 1 s, not max_wait, and says why."""
    fn = rs.bulkhead(1, max_wait=30.0, name="db")(twin.wrap(lambda: "ran"))
    state = rs.bulkhead.get("db")
    state.acquire_sync()
    deadlined = rs.timeout(1.0, mode="cooperative")(fn)
    outcome = call_while_queued(twin, deadlined, state, lambda: clock.advance(1.0))
    state.release()
    assert isinstance(outcome, rs.BulkheadFull)
    assert 1.0 == outcome.waited
    assert "deadline" in outcome.reason


def test_passed_deadline_rejects_at_once(twin, clock):
    """When the deadline has already passed, a call that finds no free slot is rejected without waiting."""
    fn = rs.bulkhead(1, max_wait=30.0, name="db")(twin.wrap(lambda: "ran"))
    state = rs.bulkhead.get("db")
    state.acquire_sync()

    def late() -> Any:
        with rs.deadline.scope(1.0):
            clock.advance(1.5)
            return twin.run(fn)

    with pytest.raises(rs.BulkheadFull) as excinfo:
        late()
    state.release()
    assert (0.0, 0) == (excinfo.value.waited, state.waiting)


def test_waiters_are_served_first_come_first_served(clock):
    """Released slots go to the waiters in the order they queued."""
    layer = rs.bulkhead(1, max_wait=60.0, name="fifo")
    order: list[int] = []

    @layer
    async def work(i: int) -> None:
        order.append(i)

    async def main() -> None:
        layer.state.acquire_sync()
        tasks = []
        for i in range(5):
            tasks.append(asyncio.ensure_future(work(i)))
            await until(lambda i=i: layer.state.waiting > i)
        layer.state.release()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert [0, 1, 2, 3, 4] == order


def test_newcomer_does_not_overtake_the_queue(clock):
    """A released slot goes to the queued waiter: a caller arriving right then finds no free slot."""
    layer = rs.bulkhead(1, max_wait=60.0, name="fair")
    state = layer.state
    order: list[str] = []
    newcomer = layer(lambda: order.append("newcomer"))  # a def call in the loop: never waits

    async def main() -> None:
        task = await queued_behind_the_only_slot(layer, lambda: order.append("waiter"))
        state.release()  # handed to the waiter, which has not woken yet
        assert (1, 0) == (state.in_flight, state.waiting)
        with pytest.raises(rs.BulkheadFull):
            newcomer()
        await task

    asyncio.run(main())
    assert ["waiter"] == order


# --- cancellation ------------------------------------------------------------------------


def test_cancelled_waiter_leaves_the_queue(clock):
    """A waiting task that is cancelled leaves the queue; the slot later goes back to the pool."""
    layer = rs.bulkhead(1, max_wait=60.0, name="db")

    async def main() -> None:
        task = await queued_behind_the_only_slot(layer)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert 0 == layer.state.waiting
    layer.state.release()
    assert 0 == layer.state.in_flight


def test_waiter_cancelled_just_after_its_grant_passes_the_slot_on(clock):
    """A task granted a slot but cancelled before it woke gives the slot back instead of leaking it."""
    layer = rs.bulkhead(1, max_wait=60.0, name="db")

    async def main() -> None:
        task = await queued_behind_the_only_slot(layer)
        layer.state.release()  # granted; the wake-up is only scheduled
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert (0, 0) == (layer.state.in_flight, layer.state.waiting)


# --- acceptance: 100 callers, never more than 10 inside ------------------------------------


class Gauge:
    """Counts how many calls are inside at once, and the most ever seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)

    def leave(self) -> None:
        with self.lock:
            self.inside -= 1


def test_100_threads_never_have_more_than_10_inside():
    """100 concurrent threads through bulkhead(10): all succeed, at most 10 run at once, 90 queue."""
    gauge = Gauge()
    go = threading.Event()
    layer = rs.bulkhead(10, max_wait=60.0, name="threads")

    @layer
    def work(i: int) -> int:
        gauge.enter()
        try:
            assert go.wait(30)
            return i
        finally:
            gauge.leave()

    results: list[int] = []
    threads = [threading.Thread(target=lambda i=i: results.append(work(i))) for i in range(100)]
    for thread in threads:
        thread.start()
    wait_until(lambda: (10, 90) == (layer.state.in_flight, layer.state.waiting))
    go.set()
    for thread in threads:
        thread.join(30)
    assert list(range(100)) == sorted(results)
    assert 10 == gauge.peak
    stats = layer.stats()
    assert (100, 0, 10, 0) == (stats["admitted"], stats["rejected"], stats["peak"], stats["in_flight"])


def test_100_tasks_never_have_more_than_10_inside(clock):
    """100 concurrent tasks through bulkhead(10): all succeed, at most 10 run at once, 90 queue."""
    gauge = Gauge()
    layer = rs.bulkhead(10, max_wait=60.0, name="tasks")

    async def main() -> list[int]:
        go = asyncio.Event()

        @layer
        async def work(i: int) -> int:
            gauge.enter()
            try:
                await go.wait()
                return i
            finally:
                gauge.leave()

        tasks = [asyncio.ensure_future(work(i)) for i in range(100)]
        await until(lambda: (layer.state.in_flight, layer.state.waiting) == (10, 90))
        go.set()
        return await asyncio.gather(*tasks)

    assert list(range(100)) == asyncio.run(main())
    assert 10 == gauge.peak
    assert (100, 0, 10) == (layer.stats()["admitted"], layer.stats()["rejected"], layer.stats()["peak"])


def test_100_tasks_without_wait_reject_the_rest(clock):
    """With max_wait=0, 100 tasks arriving together: 10 run, 90 fail with BulkheadFull and are counted."""
    layer = rs.bulkhead(10, name="tasks")

    async def main() -> list[Any]:
        go = asyncio.Event()

        @layer
        async def work() -> str:
            await go.wait()
            return "ok"

        tasks = [asyncio.ensure_future(work()) for _ in range(100)]
        await until(lambda: layer.state.in_flight == 10 and sum(t.done() for t in tasks) == 90)
        go.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert (10, 90) == (outcomes.count("ok"), sum(isinstance(o, rs.BulkheadFull) for o in outcomes))
    assert (10, 90) == (layer.stats()["admitted"], layer.stats()["rejected"])


# --- threads and event loops sharing one bulkhead ------------------------------------------


def test_async_waiter_behind_a_thread_does_not_block_the_loop():
    """A task waiting for a slot a thread holds lets other tasks run, and is woken by the thread's release."""
    inside = threading.Event()
    leave = threading.Event()

    @rs.bulkhead(1, max_wait=30.0, name="shared")
    def in_thread() -> str:
        inside.set()
        assert leave.wait(30)
        return "thread"

    @rs.bulkhead(1, max_wait=30.0, name="shared")
    async def in_loop() -> str:
        return "task"

    thread_result: list[str] = []
    thread = threading.Thread(target=lambda: thread_result.append(in_thread()))
    thread.start()
    assert inside.wait(10)

    async def main() -> tuple[str, int]:
        ticks = 0
        task = asyncio.ensure_future(in_loop())
        await until(lambda: rs.bulkhead.get("shared").waiting > 0)
        while ticks < 100:  # the loop keeps running other work while the task waits
            ticks += 1
            await asyncio.sleep(0)
        assert not task.done()
        leave.set()  # the thread's release wakes the task through call_soon_threadsafe
        return await task, ticks

    assert ("task", 100) == asyncio.run(main())
    thread.join(10)
    assert ["thread"] == thread_result


def test_def_call_inside_a_running_loop_never_waits(clock):
    """A sync call made inside an event loop is rejected at once rather than blocking the loop."""
    layer = rs.bulkhead(1, max_wait=30.0, name="shared")
    sync_fn = layer(lambda: "sync")

    async def main() -> rs.BulkheadFull:
        layer.state.acquire_sync()
        try:
            sync_fn()
        except rs.BulkheadFull as exc:
            return exc
        finally:
            layer.state.release()
        raise AssertionError("not rejected")

    exc = asyncio.run(main())
    assert (0.0, 0) == (exc.waited, layer.state.waiting)
    assert "event loop" in str(exc)
    assert [] == clock.sleeps


def test_waiter_of_a_closed_loop_is_skipped():
    """A slot released after a waiting task's loop has closed goes to the next waiter, not to the dead one."""
    state = rs.bulkhead(1, max_wait=30.0, name="db").state
    state.acquire_sync()
    loop = asyncio.new_event_loop()
    future: asyncio.Future[None] = loop.create_future()
    from resilience._bulkhead import _Waiter

    with state._lock:
        state._waiters.append(_Waiter(future=future, loop=loop))
    loop.close()
    state.release()
    assert (0, 0) == (state.in_flight, state.waiting)


# --- sharing by name, configuration -------------------------------------------------------


def test_same_name_shares_one_bulkhead(twin):
    """Two declarations of a name share the slots and the counters."""
    a = rs.bulkhead(3, name="db")
    b = rs.bulkhead(3, name="db")
    assert a.state is b.state is rs.bulkhead.get("db")
    assert ["db"] == rs.bulkhead.names()


def test_same_name_with_another_configuration_is_an_error():
    """A second declaration of a name must repeat its configuration."""
    rs.bulkhead(3, name="db")
    with pytest.raises(ValueError, match="already exists"):
        rs.bulkhead(4, name="db")


def test_unknown_name_is_a_key_error():
    """get() of a name never declared raises KeyError listing the known names."""
    rs.bulkhead(1, name="known")
    with pytest.raises(KeyError, match="known"):
        rs.bulkhead.get("unknown")


def test_clear_keeps_decorated_functions_working(twin):
    """After clear(), functions decorated earlier still run and their bulkhead is still found by name."""
    fn = rs.bulkhead(1, name="db")(twin.wrap(lambda: "ok"))
    twin.run(fn)
    rs.bulkhead.clear()
    assert "ok" == twin.run(fn)
    assert (1, []) == (rs.bulkhead.get("db").stats()["admitted"], rs.bulkhead.names())


def test_anonymous_bulkhead_takes_the_function_name():
    """Without a name, the layer's own bulkhead is named after the function it decorates."""

    @rs.bulkhead(2)
    def fetch() -> None:
        pass

    layer = rs.bulkhead(2, max_wait=0.5)
    layer(fetch)
    assert layer.state.name.endswith("fetch")
    assert f"bulkhead({layer.state.name!r}, max_concurrent=2, max_wait=0.5)" == repr(layer)
    assert [] == rs.bulkhead.names()


@pytest.mark.parametrize(
    ("kwargs", "error", "parameter"),
    [
        ({"max_concurrent": 0}, ValueError, "max_concurrent"),
        ({"max_concurrent": -2}, ValueError, "max_concurrent"),
        ({"max_concurrent": 1.5}, TypeError, "max_concurrent"),
        ({"max_concurrent": True}, TypeError, "max_concurrent"),
        ({"max_concurrent": 1, "max_wait": -1}, ValueError, "max_wait"),
        ({"max_concurrent": 1, "max_wait": float("inf")}, ValueError, "max_wait"),
        ({"max_concurrent": 1, "max_wait": 1e12}, ValueError, "max_wait"),
        ({"max_concurrent": 1, "max_wait": "1"}, TypeError, "max_wait"),
        ({"max_concurrent": 1, "name": ""}, ValueError, "name"),
        ({"max_concurrent": 1, "name": 3}, TypeError, "name"),
    ],
)
def test_bad_configuration_fails_at_decoration_time(kwargs: dict[str, Any], error: type, parameter: str):
    """Bad arguments raise ValueError/TypeError naming the parameter."""
    with pytest.raises(error, match=parameter):
        rs.bulkhead(**kwargs)


def test_bulkhead_full_pickles():
    """BulkheadFull survives pickling with its attributes."""
    import pickle

    exc = pickle.loads(pickle.dumps(rs.BulkheadFull("db", 4, 0.5, "why")))
    assert ("db", 4, 0.5, "why", "bulkhead 'db' is full (4 calls in flight); no slot came free within 0.5 s (why)") == (
        exc.name,
        exc.max_concurrent,
        exc.waited,
        exc.reason,
        str(exc),
    )


def test_wait_uses_the_resilience_clock(clock):
    """A thread's wait for a slot is timed by the installed clock (here: fake time)."""
    state = rs.bulkhead(1, max_wait=3.0, name="db").state
    state.acquire_sync()
    started = _clock.monotonic()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            state.acquire_sync()
        except rs.BulkheadFull as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: state.waiting == 1)
    clock.advance(3.0)
    thread.join(10)
    state.release()
    assert 1 == len(errors)
    assert 3.0 == _clock.monotonic() - started
