"""Small helpers shared by test modules (imported as ``helpers``; tests/ is on sys.path)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


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
