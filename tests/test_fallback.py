"""``rs.fallback``: a value or a factory's answer instead of an error, and what it never swallows."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from helpers import raising

import resilience as rs


def raises_through(twin: Any, fn: Callable[..., Any], expected: type[BaseException]) -> BaseException:
    """Call ``fn`` and return the ``expected`` exception that came out of it.

    The async flavour checks inside the coroutine, so a KeyboardInterrupt or a
    CancelledError never reaches the event loop's own machinery.
    """
    if twin.is_async:

        async def check() -> BaseException:
            with pytest.raises(expected) as info:
                await fn()
            return info.value

        return asyncio.run(check())  # type: ignore[no-any-return]
    with pytest.raises(expected) as info:
        fn()
    return info.value


def test_returns_value_on_failure(twin: Any) -> None:
    """A failing call returns the fallback value."""
    fn = rs.fallback(["cached"])(twin.wrap(raising(ConnectionError("down"))))
    assert ["cached"] == twin.run(fn)


def test_default_value_is_none(twin: Any) -> None:
    """``rs.fallback()`` answers None."""
    assert None is twin.run(rs.fallback()(twin.wrap(raising(ValueError("bad")))))


def test_success_passes_through(twin: Any) -> None:
    """A call that succeeds returns its own result, not the fallback."""
    fn = rs.fallback("cached")(twin.wrap(lambda a, b: a + b))
    assert 5 == twin.run(fn, 2, 3)


def test_factory_receives_the_exception(twin: Any) -> None:
    """``factory(exc)`` is called with the very exception the call raised, and its result returned."""
    error = ConnectionError("down")
    seen: list[BaseException] = []

    def factory(exc: BaseException) -> str:
        seen.append(exc)
        return f"fallback after {type(exc).__name__}"

    fn = rs.fallback(factory=factory)(twin.wrap(raising(error)))
    assert "fallback after ConnectionError" == twin.run(fn)
    assert [error] == seen


def test_async_factory_awaited_for_async_function() -> None:
    """An ``async def`` factory is awaited when the decorated function is async."""

    async def factory(exc: BaseException) -> str:
        await asyncio.sleep(0)
        return f"async fallback after {exc}"

    @rs.fallback(factory=factory)
    async def fetch() -> str:
        raise ConnectionError("down")

    assert "async fallback after down" == asyncio.run(fetch())


@pytest.mark.parametrize(
    "on",
    [ConnectionError, (ConnectionError, TimeoutError), lambda exc: "retry later" in str(exc)],
    ids=["class", "tuple", "predicate"],
)
def test_on_restricts_which_errors(twin: Any, on: Any) -> None:
    """Only errors matching ``on`` are answered; others surface unchanged."""
    error = ValueError("bad input")
    answered = rs.fallback("cached", on=on)(twin.wrap(raising(ConnectionError("retry later"))))
    surfaced = rs.fallback("cached", on=on)(twin.wrap(raising(error)))
    assert "cached" == twin.run(answered)
    assert error is raises_through(twin, surfaced, ValueError)


@pytest.mark.parametrize("abort", [asyncio.CancelledError, KeyboardInterrupt])
@pytest.mark.parametrize("on", [Exception, BaseException], ids=["default", "on-BaseException"])
def test_never_swallows_cancellation_or_interrupt(twin: Any, abort: type[BaseException], on: Any) -> None:
    """CancelledError and KeyboardInterrupt propagate, even when ``on`` names BaseException."""
    fn = rs.fallback("cached", on=on)(twin.wrap(raising(abort())))
    raises_through(twin, fn, abort)


def test_task_cancellation_reaches_the_caller() -> None:
    """Cancelling a task blocked inside a fallback-wrapped call cancels the task; no fallback answers."""
    started = asyncio.Event()

    @rs.fallback("cached")
    async def wait_forever() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    async def main() -> bool:
        task = asyncio.create_task(wait_forever())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(main())


def test_monitored_counts_fallback_and_keeps_error_kind(twin: Any) -> None:
    """An enclosing ``@monitored`` counts outcome "fallback" and the original error kind under errors."""
    fn = rs.monitored("svc")(rs.fallback("cached")(twin.wrap(raising(ConnectionError("down")))))
    assert "cached" == twin.run(fn)
    snap = rs.monitor.snapshot("svc")
    assert {"fallback": 1} == snap["outcomes"]
    assert {"connection": 1} == snap["errors"]
    assert (1, 0) == (snap["calls"], snap["ok"])


def test_monitored_counts_timeout_kind_behind_fallback(twin: Any, clock: rs.testing.FakeClock) -> None:
    """A timeout answered by a fallback is counted as outcome "fallback" with error kind "timeout"."""
    inner = rs.timeout(1, mode="signal")(twin.sleeping(2, "late"))
    fn = rs.monitored("svc")(rs.fallback("cached")(inner))
    assert "cached" == twin.run(fn)
    snap = rs.monitor.snapshot("svc")
    assert ({"fallback": 1}, {"timeout": 1}) == (snap["outcomes"], snap["errors"])


def test_failing_factory_is_not_counted_as_fallback(twin: Any) -> None:
    """When the factory itself raises, the caller gets its error and the monitor counts a failure, not "fallback"."""

    def broken_factory(exc: BaseException) -> str:
        raise RuntimeError("fallback store unavailable")

    fn = rs.monitored("svc")(rs.fallback(factory=broken_factory)(twin.wrap(raising(ConnectionError("down")))))
    raises_through(twin, fn, RuntimeError)
    assert {"RuntimeError": 1} == rs.monitor.snapshot("svc")["outcomes"]


def test_value_and_factory_together_rejected() -> None:
    """Giving both a value and a factory is a TypeError at decoration time."""
    with pytest.raises(TypeError, match="factory"):
        rs.fallback("cached", factory=lambda exc: "other")


def test_non_callable_factory_rejected() -> None:
    """A factory that cannot be called is a TypeError naming ``factory``."""
    with pytest.raises(TypeError, match="factory"):
        rs.fallback(factory="cached")  # type: ignore[arg-type]


def test_async_factory_on_sync_function_rejected_at_decoration() -> None:
    """An async factory= on a plain function is a TypeError at decoration (its coroutine would never run)."""

    async def default(exc: BaseException) -> int:
        return 0

    def fetch() -> int:
        raise ConnectionError

    with pytest.raises(TypeError, match="factory"):
        rs.fallback(factory=default)(fetch)
