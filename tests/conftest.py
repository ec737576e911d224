"""Shared fixtures: a clean registry per test, a fake clock, and sync/async twins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilience as rs
from resilience import _clock


@pytest.fixture(autouse=True)
def _fresh_registries() -> Iterator[None]:
    """Every test starts with no breakers and no monitored names."""
    rs.testing.reset()
    yield
    rs.testing.reset()


@pytest.fixture
def clock() -> Iterator[rs.testing.FakeClock]:
    """A virtual clock: sleeps are instant and recorded, timers fire as it advances."""
    with rs.testing.fake_clock() as fake:
        yield fake


class Twin:
    """Builds and calls the same behaviour as a `def` or an `async def`.

    ``body`` callables are plain functions; ``wrap`` turns them into the flavour under test.
    ``sleep(seconds)`` inside a body must go through ``twin.sleeping`` so that the async
    flavour awaits (a fake clock then advances and fires timeouts).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.is_async = kind == "async"

    def __repr__(self) -> str:
        return self.kind

    def wrap(self, body: Callable[..., Any]) -> Callable[..., Any]:
        """A function of this flavour that returns ``body(*args, **kwargs)``."""
        if self.is_async:

            async def async_fn(*args: Any, **kwargs: Any) -> Any:
                await asyncio.sleep(0)
                return body(*args, **kwargs)

            async_fn.__name__ = async_fn.__qualname__ = getattr(body, "__name__", "async_fn")
            return async_fn

        def sync_fn(*args: Any, **kwargs: Any) -> Any:
            return body(*args, **kwargs)

        sync_fn.__name__ = sync_fn.__qualname__ = getattr(body, "__name__", "sync_fn")
        return sync_fn

    def sleeping(self, seconds: float, result: Any = None) -> Callable[..., Any]:
        """A function of this flavour that sleeps ``seconds`` on the resilience clock, then returns ``result``."""
        if self.is_async:

            async def async_sleeper(*args: Any, **kwargs: Any) -> Any:
                await _clock.current.asleep(seconds)
                return result

            return async_sleeper

        def sync_sleeper(*args: Any, **kwargs: Any) -> Any:
            _clock.current.sleep(seconds)
            return result

        return sync_sleeper

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` (awaiting it in a fresh event loop for the async flavour)."""
        if self.is_async:
            return asyncio.run(fn(*args, **kwargs))
        return fn(*args, **kwargs)


@pytest.fixture(params=["sync", "async"])
def twin(request: pytest.FixtureRequest) -> Twin:
    """Run the test once with `def` functions and once with `async def` functions."""
    return Twin(request.param)
