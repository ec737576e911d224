"""Shared fixtures: a clean registry per test, a fake clock, and sync/async twins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilience as rs
from resilience import _clock
from resilience._demo_server import DemoServer


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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A real redis-server on a free loopback port, started and stopped by the tests."""

    def __init__(self, binary: str, workdir: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import subprocess
        import time

        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def redis_server(tmp_path: Any) -> Iterator[RedisServer]:
    """A fresh redis-server for one test (skipped, saying why, where no binary exists)."""
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not found (install Debian's redis-server; .ci/run does)")
    pytest.importorskip("redis", reason="the redis client package is not installed")
    server = RedisServer(binary, str(tmp_path))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _demo_server_process_wide() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


@pytest.fixture
def http_server(_demo_server_process_wide: DemoServer) -> DemoServer:
    """The misbehaving loopback HTTP server (resilience._demo_server), counters reset per test."""
    _demo_server_process_wide.reset_counts()
    return _demo_server_process_wide
