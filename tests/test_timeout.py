"""``rs.timeout``: deadlines on the fake clock, in every mode, sync and async."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilience as rs
from resilience import _clock

MODES = ("thread", "signal", "cooperative")
STATS_KEYS = {"max_workers", "workers", "busy", "queued", "abandoned", "abandoned_total", "completed"}

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


class Stall:
    """Bodies that sleep on the resilience clock, then (sync) keep their worker thread busy.

    A sync body that simply returns after a fake sleep finishes in zero real time, so its
    worker may beat the waiting caller; a stalled body is still running when the caller
    gives up, like a real hung call.
    """

    def __init__(self) -> None:
        self.release = threading.Event()
        self.finished: list[threading.Event] = []

    def __call__(self, twin: Any, seconds: float, result: Any = None) -> Callable[..., Any]:
        """A body of the twin's flavour; the async one is cancelled at the deadline anyway."""
        if twin.is_async:
            return twin.sleeping(seconds, result)
        return self.sync(seconds, result)

    def sync(self, seconds: float, result: Any = None) -> Callable[[], Any]:
        """A ``def`` that sleeps ``seconds`` on the resilience clock, then blocks until released."""
        finished = threading.Event()
        self.finished.append(finished)

        def stalled() -> Any:
            try:
                _clock.current.sleep(seconds)
                self.release.wait()
                return result
            finally:
                finished.set()

        return stalled

    def close(self) -> None:
        self.release.set()
        for finished in self.finished:
            finished.wait(timeout=5)


@pytest.fixture
def stall() -> Iterator[Stall]:
    """Stalled bodies, released when the test ends."""
    stalls = Stall()
    yield stalls
    stalls.close()


@pytest.fixture
def restore_max_workers() -> Iterator[None]:
    """Put the worker pool's bound back after a test changes it."""
    previous = rs.timeout.stats()["max_workers"]
    yield
    rs.timeout.configure(max_workers=previous)


def qualified(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


# -- outcomes ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_call_finishing_in_time_returns_its_result(twin, clock, mode):
    """A call that finishes before the deadline returns its result, in every mode."""
    fn = rs.timeout(1, mode=mode)(twin.sleeping(0.5, "ok"))

    assert "ok" == twin.run(fn)


@pytest.mark.parametrize("mode", ["thread", "signal"])
def test_call_running_past_the_deadline_raises_deadline_exceeded(twin, clock, mode):
    """A call still sleeping when the fake clock passes the deadline raises DeadlineExceeded."""
    fn = rs.timeout(1, mode=mode)(twin.sleeping(5, "late"))

    with pytest.raises(rs.DeadlineExceeded):
        twin.run(fn)


def test_deadline_exceeded_is_a_resilience_error_and_a_timeout_error(twin, clock, stall):
    """DeadlineExceeded subclasses both ResilienceError and the builtin TimeoutError."""
    fn = rs.timeout(1)(stall(twin, 5))

    with pytest.raises(TimeoutError) as info:
        twin.run(fn)

    assert isinstance(info.value, rs.DeadlineExceeded)
    assert isinstance(info.value, rs.ResilienceError)


def test_deadline_exceeded_carries_limit_elapsed_and_a_readable_message(twin, clock, stall):
    """The error has .limit, .elapsed and a message naming the call, the limit and the elapsed time."""
    fn = rs.timeout(1)(stall(twin, 5))

    with pytest.raises(rs.DeadlineExceeded) as info:
        twin.run(fn)

    error = info.value
    assert 1.0 == error.limit
    assert error.elapsed >= 1.0
    assert "timeout" == error.kind
    assert f"{qualified(fn)} exceeded its 1 s deadline after {error.elapsed:.3g} s" == str(error)


@pytest.mark.parametrize("mode", MODES)
def test_exception_from_the_callee_propagates_unchanged(twin, clock, mode):
    """The callee's own exception reaches the caller as the very same object."""
    error = LookupError("no such user")

    def body() -> None:
        raise error

    fn = rs.timeout(1, mode=mode)(twin.wrap(body))

    with pytest.raises(LookupError) as info:
        twin.run(fn)

    assert error is info.value


def test_callee_sees_the_callers_contextvars(twin, clock):
    """The callee reads ContextVars set by the caller (copied into the worker thread for sync)."""
    token = request_id.set("req-42")
    try:
        fn = rs.timeout(1)(twin.wrap(request_id.get))
        assert "req-42" == twin.run(fn)
    finally:
        request_id.reset(token)


def test_sync_thread_mode_runs_in_a_worker_thread(clock):
    """A sync call in thread mode runs in a thread other than the caller's."""
    fn = rs.timeout(1)(threading.get_ident)

    assert threading.get_ident() != fn()


def test_abandoned_worker_is_counted_in_stats(clock, stall):
    """A sync call that times out leaves its worker running, counted as abandoned."""
    fn = rs.timeout(1)(stall.sync(5))
    before = rs.timeout.stats()

    with pytest.raises(rs.DeadlineExceeded):
        fn()

    after = rs.timeout.stats()
    assert before["abandoned_total"] + 1 == after["abandoned_total"]
    assert after["abandoned"] >= 1


# -- async cancellation --------------------------------------------------------------------


def test_async_timeout_raises_after_the_cancellation_has_finished(clock):
    """The timed-out coroutine is cancelled and its cleanup has run before DeadlineExceeded is raised."""
    log: list[str] = []

    @rs.timeout(1)
    async def body() -> None:
        try:
            await _clock.current.asleep(5)
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        finally:
            await asyncio.sleep(0)
            log.append("cleaned up")

    async def main() -> list[str]:
        with pytest.raises(rs.DeadlineExceeded):
            await body()
        return list(log)

    assert ["cancelled", "cleaned up"] == asyncio.run(main())


def test_async_timeout_leaves_the_task_uncancelled(clock):
    """After our deadline fires, the caller's task is not left cancelling and keeps running."""

    @rs.timeout(1)
    async def body() -> None:
        await _clock.current.asleep(5)

    async def main() -> str:
        with pytest.raises(rs.DeadlineExceeded):
            await body()
        task = asyncio.current_task()
        assert task is not None
        assert 0 == task.cancelling()
        await asyncio.sleep(0)
        return "still running"

    assert "still running" == asyncio.run(main())


def test_async_callee_that_swallows_the_cancellation_keeps_its_result(clock):
    """A coroutine that catches our cancellation and returns: its result is kept, the task uncancelled."""

    @rs.timeout(1)
    async def body() -> str:
        try:
            await _clock.current.asleep(5)
        except asyncio.CancelledError:
            return "salvaged"
        return "finished"

    async def main() -> tuple[str, int]:
        result = await body()
        task = asyncio.current_task()
        assert task is not None
        return result, task.cancelling()

    assert ("salvaged", 0) == asyncio.run(main())


def test_outer_cancellation_stays_a_cancelled_error(clock):
    """Cancelling the task from outside, before the deadline, raises CancelledError, not DeadlineExceeded."""

    async def main() -> bool:
        running = asyncio.Event()

        @rs.timeout(10)
        async def body() -> None:
            running.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(body())
        await running.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(main())


def test_outer_cancellation_coinciding_with_the_deadline_stays_a_cancelled_error(clock):
    """When someone else cancels the task as our deadline fires, the CancelledError is not converted."""

    @rs.timeout(1)
    async def body() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # someone else's cancellation, pending...
        await _clock.current.asleep(5)  # ...when our deadline fires too

    async def main() -> None:
        await body()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())


# -- modes -----------------------------------------------------------------------------------


def test_cooperative_mode_runs_in_the_callers_thread(twin, clock):
    """mode="cooperative" starts no thread: the callee runs in the caller's thread."""
    fn = rs.timeout(1, mode="cooperative")(twin.wrap(threading.get_ident))

    assert threading.get_ident() == twin.run(fn)


def test_cooperative_mode_sets_the_deadline(twin, clock):
    """mode="cooperative" sets rs.deadline.remaining() for deadline-aware code."""
    fn = rs.timeout(5, mode="cooperative")(twin.wrap(rs.deadline.remaining))

    assert 5.0 == twin.run(fn)


def test_cooperative_mode_interrupts_nothing(twin, clock):
    """mode="cooperative" lets a call run past its deadline and returns its result."""
    fn = rs.timeout(1, mode="cooperative")(twin.sleeping(5, "late"))

    assert "late" == twin.run(fn)


def test_thread_mode_sets_the_deadline_inside_the_callee(twin, clock):
    """The default mode makes rs.deadline.remaining() inside the callee equal the timeout."""
    fn = rs.timeout(5)(twin.wrap(rs.deadline.remaining))

    assert 5.0 == twin.run(fn)


def test_signal_mode_alarm_is_disarmed_after_the_call(clock):
    """A signal-mode call that finished in time leaves no alarm: the clock passing its deadline raises nothing."""

    def body() -> str:
        _clock.current.sleep(0.5)
        return "ok"

    fn = rs.timeout(1, mode="signal")(body)

    assert "ok" == fn()
    clock.advance(10)


def test_signal_mode_outside_the_main_thread_raises_runtime_error(clock):
    """mode="signal" called from a non-main thread raises a RuntimeError that says "main thread"."""
    calls: list[str] = []
    fn = rs.timeout(1, mode="signal")(lambda: calls.append("called"))
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(timeout=5)

    assert [RuntimeError] == [type(error) for error in errors]
    assert "main thread" in str(errors[0])
    assert [] == calls


# -- nesting ---------------------------------------------------------------------------------


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def nested(twin: Any, outer: Decorator, inner: Decorator, body: Callable[..., Any]) -> Callable[..., Any]:
    """``outer`` around a function of the twin's flavour that calls ``inner(body)``."""
    inner_fn = inner(twin.wrap(body))
    if twin.is_async:

        async def outer_body() -> Any:
            return await inner_fn()

    else:

        def outer_body() -> Any:
            return inner_fn()

    return outer(outer_body)


def test_remaining_is_none_outside_any_deadline(twin, clock):
    """rs.deadline.remaining() is None outside any timeout, also after a timed call returns."""
    fn = rs.timeout(5)(twin.wrap(rs.deadline.remaining))
    twin.run(fn)

    assert rs.deadline.remaining() is None
    assert rs.deadline.expires_at() is None


def test_inner_timeout_never_extends_the_outer_deadline(twin, clock):
    """Inside @rs.timeout(10), an @rs.timeout(100) function sees at most 10 s and the outer deadline."""
    outer_deadline = clock.monotonic() + 10
    fn = nested(twin, rs.timeout(10), rs.timeout(100), lambda: (rs.deadline.remaining(), rs.deadline.expires_at()))

    remaining, expires_at = twin.run(fn)

    assert remaining <= 10
    assert outer_deadline == expires_at


def test_shorter_inner_timeout_wins(twin, clock):
    """Inside @rs.timeout(10), an @rs.timeout(1) function sees its own 1 s."""
    fn = nested(twin, rs.timeout(10), rs.timeout(1), rs.deadline.remaining)

    assert 1.0 == twin.run(fn)


def test_inner_timeout_capped_by_the_outer_fails_at_the_outer_deadline(twin, clock, stall):
    """An @rs.timeout(100) call under a 2 s cooperative deadline fails at 2 s, its limit reported as 2 s."""
    inner = rs.timeout(100)(stall(twin, 5))
    if twin.is_async:

        async def outer_body() -> Any:
            return await inner()

    else:

        def outer_body() -> Any:
            return inner()

    fn = rs.timeout(2, mode="cooperative")(outer_body)

    with pytest.raises(rs.DeadlineExceeded) as info:
        twin.run(fn)

    assert 2.0 == info.value.limit


@pytest.mark.parametrize("overrun", [0, 1])
def test_expired_outer_deadline_raises_at_once_without_calling(twin, clock, overrun):
    """When the enclosing deadline has already passed, an inner timeout raises without calling the function."""
    calls: list[str] = []
    fn = rs.timeout(100)(twin.wrap(lambda: calls.append("called")))
    completed = rs.timeout.stats()["completed"]

    with rs.deadline.scope(1):
        clock.advance(1 + overrun)
        with pytest.raises(rs.DeadlineExceeded):
            twin.run(fn)

    assert [] == calls
    assert completed == rs.timeout.stats()["completed"]


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, True, False, "1", None])
def test_bad_seconds_fail_at_factory_time(seconds):
    """A duration that is not a finite number > 0 is rejected by the factory, naming the parameter."""
    with pytest.raises((ValueError, TypeError), match=r"seconds.*> 0"):
        rs.timeout(seconds)


def test_unknown_mode_fails_at_factory_time():
    """An unknown mode is rejected with a ValueError naming the parameter and the accepted modes."""
    with pytest.raises(ValueError, match=r"mode.*'thread', 'signal', 'cooperative'.*'process'"):
        rs.timeout(1, mode="process")


def test_mode_is_keyword_only():
    """mode cannot be passed positionally."""
    with pytest.raises(TypeError):
        rs.timeout(1, "thread")  # type: ignore[misc]


def test_decorating_a_non_callable_fails():
    """Decorating something that is not callable raises TypeError at decoration time."""
    with pytest.raises(TypeError, match="callable"):
        rs.timeout(1)(42)  # type: ignore[arg-type]


def test_decorating_a_generator_function_fails():
    """A generator function is rejected at decoration time with a TypeError."""

    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        rs.timeout(1)(numbers)


def test_decorating_an_async_generator_function_fails():
    """An async generator function is rejected at decoration time with a TypeError."""

    async def numbers() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        rs.timeout(1)(numbers)


def test_decorated_function_keeps_its_metadata_and_flavour(twin):
    """The wrapper keeps the function's name and stays a coroutine function for async def."""

    def fetch_user() -> None:
        """Fetch one user."""

    body = twin.wrap(fetch_user)
    fn = rs.timeout(1)(body)

    assert "fetch_user" == fn.__name__
    assert twin.is_async == asyncio.iscoroutinefunction(fn)


@pytest.mark.parametrize("max_workers", [0, -1, True, 1.5, "4", None])
def test_configure_rejects_bad_max_workers(max_workers, restore_max_workers):
    """configure(max_workers=...) accepts only an int >= 1 and names the parameter otherwise."""
    with pytest.raises(ValueError, match=r"max_workers.*>= 1"):
        rs.timeout.configure(max_workers=max_workers)


def test_configure_sets_the_pool_bound(restore_max_workers):
    """configure(max_workers=n) is reported back by stats()."""
    rs.timeout.configure(max_workers=4)

    assert 4 == rs.timeout.stats()["max_workers"]


def test_configure_is_keyword_only(restore_max_workers):
    """max_workers cannot be passed positionally."""
    with pytest.raises(TypeError):
        rs.timeout.configure(4)  # type: ignore[misc]


def test_stats_keys():
    """stats() reports the worker pool as a dict of ints with fixed keys."""
    stats = rs.timeout.stats()

    assert STATS_KEYS == set(stats)
    assert all(isinstance(value, int) for value in stats.values())


def test_completed_calls_are_counted(clock):
    """Each sync thread-mode call that finishes adds one to stats()["completed"]."""
    fn = rs.timeout(1)(lambda: "ok")
    before = rs.timeout.stats()["completed"]

    fn()
    fn()

    assert before + 2 == rs.timeout.stats()["completed"]


# Regressions found in review


def test_async_timeout_gives_back_its_cancellation_when_the_callee_raises_another_error(clock: Any) -> None:
    """A callee that turns our cancellation into another error leaves the task's cancel count at zero."""

    @rs.timeout(1)
    async def converts() -> None:
        try:
            await clock.asleep(5)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    async def main() -> int:
        with pytest.raises(RuntimeError):
            await converts()
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert 0 == asyncio.run(main())


def test_deadline_does_not_leak_into_tasks_spawned_during_the_call(clock: Any) -> None:
    """A task started inside a timed call and still running after it sees no deadline."""
    seen: list[float | None] = []

    async def background() -> None:
        await asyncio.sleep(0)
        seen.append(rs.deadline.remaining())

    @rs.timeout(1)
    async def spawns() -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(background())

    async def main() -> None:
        task = await spawns()
        await task

    asyncio.run(main())
    assert [None] == seen


def test_timeout_beyond_a_year_is_rejected() -> None:
    """seconds above a year fail at decoration time, not with an OverflowError at call time."""
    with pytest.raises(ValueError, match="seconds"):
        rs.timeout(1e10)


def test_abandoned_queued_job_leaves_the_queue() -> None:
    """A job given up while still queued is removed from the pool's queue with what it held."""
    from resilience import _timeout

    pool = _timeout.WorkerPool(max_workers=1)
    release = threading.Event()
    blocker = _timeout._Job(release.wait, (5,), {})
    pool.submit(blocker)
    queued = _timeout._Job(lambda: "never", (), {})
    pool.submit(queued)
    assert 1 == pool.stats()["queued"]
    assert pool.abandon(queued)
    assert (0, "dropped") == (pool.stats()["queued"], queued.state)
    release.set()
    assert blocker.done.wait(5)
