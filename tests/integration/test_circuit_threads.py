"""``rs.circuit`` under real concurrency: no lock is held while the call runs, and counts stay exact."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import resilience as rs

pytestmark = pytest.mark.integration

WORKERS = 8
CALLS = 20
PAUSE = 0.02
ROUNDS = 3  # best of three, so one descheduled round does not decide the ratio


def slow_function(twin: Any) -> Callable[[], Any]:
    """A call that takes PAUSE seconds of real time in the twin's flavour."""
    if twin.is_async:

        async def slow_async() -> str:
            await asyncio.sleep(PAUSE)
            return "ok"

        return slow_async

    def slow_sync() -> str:
        time.sleep(PAUSE)
        return "ok"

    return slow_sync


def run_concurrently(twin: Any, fn: Callable[[], Any]) -> tuple[float, list[Any]]:
    """WORKERS threads (or tasks) each make CALLS calls; returns the wall time and every result."""
    if twin.is_async:

        async def worker() -> list[Any]:
            return [await fn() for _ in range(CALLS)]

        async def main() -> list[list[Any]]:
            return await asyncio.gather(*(worker() for _ in range(WORKERS)))

        started = time.perf_counter()
        batches = asyncio.run(main())
    else:
        with ThreadPoolExecutor(WORKERS) as pool:
            started = time.perf_counter()
            batches = list(pool.map(lambda _: [fn() for _ in range(CALLS)], range(WORKERS)))
    return time.perf_counter() - started, [result for batch in batches for result in batch]


def test_breaker_does_not_serialize_concurrent_calls(twin: Any) -> None:
    """8 workers x 20 calls through one breaker take under 1.5x the time of the same run without it."""
    plain = slow_function(twin)
    guarded = rs.circuit("shared")(slow_function(twin))
    bare_times, guarded_times = [], []
    for _ in range(ROUNDS):
        bare_time, bare_results = run_concurrently(twin, plain)
        guarded_time, guarded_results = run_concurrently(twin, guarded)
        bare_times.append(bare_time)
        guarded_times.append(guarded_time)
        assert ["ok"] * WORKERS * CALLS == bare_results
        assert ["ok"] * WORKERS * CALLS == guarded_results
    ratio = min(guarded_times) / min(bare_times)
    assert ratio < 1.5, f"guarded {min(guarded_times):.3f} s vs bare {min(bare_times):.3f} s"
    assert ("closed", 0) == (rs.circuit.get("shared").state, rs.circuit.get("shared").fail_counter)


def test_concurrent_failures_are_counted_exactly(twin: Any) -> None:
    """160 concurrent failures leave a fail_counter of exactly 160."""
    if twin.is_async:

        async def failing() -> None:
            await asyncio.sleep(0)
            raise ConnectionError

    else:

        def failing() -> None:
            raise ConnectionError

    guarded = rs.circuit("counted", fail_max=10_000)(failing)

    def swallow() -> Any:
        if twin.is_async:

            async def call_async() -> str:
                try:
                    await guarded()
                except ConnectionError:
                    return "failed"
                return "returned"

            return call_async()
        try:
            guarded()
        except ConnectionError:
            return "failed"
        return "returned"

    _, results = run_concurrently(twin, swallow)
    assert ["failed"] * WORKERS * CALLS == results
    assert WORKERS * CALLS == rs.circuit.get("counted").fail_counter


def test_racing_callers_get_exactly_half_open_calls_trials(twin: Any, clock: Any) -> None:
    """8 callers racing into a half-open breaker with half_open_calls=2: 2 admitted, 6 rejected."""
    admitted = []
    release = threading.Event() if not twin.is_async else None
    if twin.is_async:
        release_async: list[asyncio.Event] = []  # [release the trials, every caller decided]
        decisions = []

        def decided() -> None:
            decisions.append(1)
            if WORKERS == len(decisions):
                release_async[1].set()

        async def trial() -> str:
            admitted.append(1)
            decided()
            await release_async[0].wait()
            return "ok"

        fn: Callable[[], Any] = trial
    else:

        def trial_sync() -> str:
            admitted.append(1)
            assert release is not None
            assert release.wait(5)
            return "ok"

        fn = trial_sync
    guarded = rs.circuit("racing", fail_max=1, half_open_calls=2)(fn)
    breaker = rs.circuit.get("racing")
    breaker.open()
    clock.advance(30)
    outcomes: list[str] = []

    if twin.is_async:

        async def attempt() -> None:
            try:
                outcomes.append(await guarded())
            except rs.CircuitOpenError:
                outcomes.append("rejected")
                decided()

        async def main() -> None:
            release_async.extend([asyncio.Event(), asyncio.Event()])
            tasks = [asyncio.create_task(attempt()) for _ in range(WORKERS)]
            await asyncio.wait_for(release_async[1].wait(), 5)  # every caller admitted or rejected
            release_async[0].set()
            await asyncio.gather(*tasks)

        asyncio.run(main())
    else:
        barrier = threading.Barrier(WORKERS)
        lock = threading.Lock()

        def attempt_sync() -> None:
            barrier.wait()
            try:
                result = guarded()
            except rs.CircuitOpenError:
                result = "rejected"
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=attempt_sync) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while len(outcomes) < WORKERS - 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert release is not None
        release.set()
        for thread in threads:
            thread.join(5)
    assert 2 == len(admitted)
    assert sorted(["ok"] * 2 + ["rejected"] * (WORKERS - 2)) == sorted(outcomes)
    assert "closed" == breaker.state
