"""Small helpers shared by test modules (imported as ``helpers``; tests/ is on sys.path)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import resilience as rs


def raising(exc: BaseException) -> Callable[..., Any]:
    """A body that raises ``exc``."""

    def body(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return body


def call(twin: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``, returning the exception it raised instead of raising it."""
    try:
        return twin.run(fn, *args)
    except Exception as exc:
        return exc


def wait_until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    """Yield the GIL until ``predicate()`` holds (test orchestration, not a timing assertion)."""
    give_up = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < give_up, "condition never held"
        time.sleep(0)


async def until(predicate: Callable[[], bool], turns: int = 100_000) -> None:
    """Let the event loop run until ``predicate()`` holds (no time passes)."""
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def turns(n: int = 5) -> None:
    """Let the event loop run ``n`` turns (no time passes)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def blocked_call(
    wrap: Callable[[Callable[[], Awaitable[str]]], Callable[[], Awaitable[str]]],
    clock: rs.testing.FakeClock,
    advance: float,
) -> tuple[str, int]:
    """Call ``wrap(attempt)``, whose attempts block until released, advancing ``clock`` meanwhile: (answer, started)."""
    release = asyncio.Event()
    started = 0

    async def attempt() -> str:
        nonlocal started
        started += 1
        number = started
        await release.wait()
        return f"attempt {number}"

    task = asyncio.ensure_future(wrap(attempt)())
    await turns()
    clock.advance(advance)
    await turns(10)
    release.set()
    return await task, started


def log_fields(record: logging.LogRecord, *names: str) -> tuple[Any, ...]:
    """The values of ``record``'s fields ``names`` (extra fields included), in that order."""
    return tuple(getattr(record, name) for name in names)
