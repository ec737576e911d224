"""``rs.circuit(..., storage="redis://...")`` against a real redis-server, shared by two OS processes."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pybreaker
import pytest

import resilience as rs
from resilience import _circuit_redis

pytestmark = pytest.mark.integration

# The other process: declares the same breaker from a JSON config, then answers one JSON
# command per line on stdin with one JSON line on stdout.
WORKER = r"""
import json, sys, threading
import resilience as rs

config = json.loads(sys.argv[1])
name = config.pop("name")
gate = threading.Event()
entered = threading.Semaphore(0)


def dependency(outcome):
    if outcome == "hold":
        entered.release()
        gate.wait(10)
        return "ok"
    if outcome == "fail":
        raise ConnectionError("down")
    return outcome


guarded = rs.circuit(name, **config)(dependency)
breaker = rs.circuit.get(name)
held = []


def call(outcome):
    try:
        return guarded(outcome)
    except rs.CircuitOpenError as exc:
        return ["rejected", exc.retry_after]
    except ConnectionError:
        return "failed"


def hold(n):
    admitted = rejected = 0
    for _ in range(n):
        box = []
        thread = threading.Thread(target=lambda: box.append(call("hold")))
        thread.start()
        while True:
            if entered.acquire(timeout=0.005):
                admitted += 1
                held.append((thread, box))
                break
            if not thread.is_alive():
                rejected += 1
                break
    return {"admitted": admitted, "rejected": rejected}


def release():
    gate.set()
    results = []
    for thread, box in held:
        thread.join(10)
        results.extend(box)
    return results


for line in sys.stdin:
    op, *args = json.loads(line)
    if op == "calls":
        reply = [call(args[0]) for _ in range(args[1])]
    elif op == "hold":
        reply = hold(args[0])
    elif op == "release":
        reply = release()
    elif op == "manual":
        getattr(breaker, args[0])()
        reply = breaker.state
    else:
        reply = breaker.stats()
    print(json.dumps(reply), flush=True)
"""


class Worker:
    """A second OS process using the breaker ``config["name"]``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ask(self, *command: object) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            assert self.process.stderr is not None
            raise AssertionError(f"worker died: {self.process.stderr.read()[-2000:]}")
        return json.loads(line)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def workers() -> Iterator[Callable[[dict[str, Any]], Worker]]:
    """Start other processes sharing a breaker; they are stopped when the test ends."""
    started: list[Worker] = []

    def start(config: dict[str, Any]) -> Worker:
        started.append(Worker(config))
        return started[-1]

    yield start
    for worker in started:
        worker.close()


def dependency(twin: Any) -> Callable[..., Any]:
    """``fn(outcome)`` in the twin's flavour: "fail" raises ConnectionError, anything else is returned."""

    def body(outcome: str = "ok") -> str:
        if outcome == "fail":
            raise ConnectionError("down")
        return outcome

    return twin.wrap(body)


def attempt(twin: Any, guarded: Callable[..., Any], outcome: str = "ok") -> object:
    """The result, "failed", or ("rejected", retry_after)."""
    try:
        return twin.run(guarded, outcome)
    except rs.CircuitOpenError as exc:
        return ("rejected", exc.retry_after)
    except ConnectionError:
        return "failed"


class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        self.changes.append((old_state.name, new_state.name))


def test_failures_in_one_process_open_the_breaker_for_the_other(twin: Any, redis_server: Any, workers: Any) -> None:
    """Consecutive failures add up across processes; the other one is rejected with the time left, told once."""
    config = {"name": "shared", "fail_max": 3, "reset_timeout": 30, "storage": redis_server.url}
    recorder = Recorder()
    guarded = rs.circuit("shared", fail_max=3, reset_timeout=30, storage=redis_server.url, listeners=[recorder])(
        dependency(twin)
    )
    worker = workers(config)
    assert "ok" == attempt(twin, guarded)
    assert "failed" == attempt(twin, guarded, "fail")
    assert ["failed", "failed"] == worker.ask("calls", "fail", 2)
    outcome = attempt(twin, guarded)
    assert isinstance(outcome, tuple)
    assert "rejected" == outcome[0]
    assert 29 < outcome[1] <= 30
    assert [("closed", "open")] == recorder.changes
    stats = rs.circuit.get("shared").stats()
    assert ("open", 3, 1, 1) == (stats["state"], stats["fail_counter"], stats["opened"], stats["rejected"])
    assert {"backend": "redis", "connected": True, "outages": 0} == stats["storage"]
    worker.ask("manual", "reset")
    assert ("closed", "ok") == (rs.circuit.get("shared").state, attempt(twin, guarded))
    assert [("closed", "open"), ("open", "closed")] == recorder.changes


def hold_here(guarded: Callable[[], Any], n: int, entered: threading.Semaphore) -> tuple[dict[str, int], list[object]]:
    """Start ``n`` calls in threads of this process; count those that entered the function and those rejected."""
    counts = {"admitted": 0, "rejected": 0}
    results: list[object] = []

    def call() -> None:
        try:
            results.append(guarded())
        except rs.CircuitOpenError:
            results.append("rejected")

    for _ in range(n):
        thread = threading.Thread(target=call)
        thread.start()
        while True:
            if entered.acquire(timeout=0.005):
                counts["admitted"] += 1
                break
            if not thread.is_alive():
                counts["rejected"] += 1
                break
    return counts, results


def test_exactly_n_half_open_trials_across_two_processes(redis_server: Any, workers: Any) -> None:
    """half_open_calls=3: the other process takes 2 trial slots, this one 1 of 3 asked, then nobody; trials close it."""
    gate, entered = threading.Event(), threading.Semaphore(0)

    def trial() -> str:
        entered.release()
        assert gate.wait(10)
        return "ok"

    config = {"name": "trials", "fail_max": 1, "reset_timeout": 1.0, "half_open_calls": 3, "storage": redis_server.url}
    guarded = rs.circuit("trials", fail_max=1, reset_timeout=1.0, half_open_calls=3, storage=redis_server.url)(trial)
    breaker = rs.circuit.get("trials")
    worker = workers(config)
    assert ["failed"] == worker.ask("calls", "fail", 1)
    time.sleep(breaker.retry_after)
    assert {"admitted": 2, "rejected": 0} == worker.ask("hold", 2)
    here, results = hold_here(guarded, 3, entered)
    assert {"admitted": 1, "rejected": 2} == here
    assert {"admitted": 0, "rejected": 2} == worker.ask("hold", 2)
    assert "half-open" == breaker.state
    gate.set()
    assert ["ok", "ok"] == worker.ask("release")
    deadline = time.monotonic() + 10
    while len(results) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ["ok", "rejected", "rejected"] == sorted(results, key=str)
    assert "closed" == breaker.state
    assert "closed" == worker.ask("stats")["state"]


def test_redis_outage_serves_local_state_warns_once_and_resynchronises(
    twin: Any, redis_server: Any, workers: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis stopped: calls go on from local state, one WARNING, an outage in stats; restarted: shared state wins."""
    monkeypatch.setattr(_circuit_redis, "RESYNC_INTERVAL", 0.1)
    caplog.set_level("INFO", logger="resilience")
    config = {"name": "outage", "fail_max": 2, "storage": redis_server.url}
    guarded = rs.circuit("outage", fail_max=2, storage=redis_server.url)(dependency(twin))
    breaker = rs.circuit.get("outage")
    assert "ok" == attempt(twin, guarded)
    redis_server.stop()
    assert ["ok"] * 5 == [attempt(twin, guarded) for _ in range(5)]
    assert ["failed", "failed"] == [attempt(twin, guarded, "fail") for _ in range(2)]  # the local rules still apply
    assert "rejected" == attempt(twin, guarded)[0]  # type: ignore[index]
    assert {"backend": "redis", "connected": False, "outages": 1} == breaker.stats()["storage"]
    time.sleep(0.15)
    assert "rejected" == attempt(twin, guarded)[0]  # type: ignore[index]  # a probe failed: still one outage
    redis_server.start()
    assert "forced-open" == workers(config).ask("manual", "force_open")
    time.sleep(0.15)
    assert ("rejected", math.inf) == attempt(twin, guarded)  # the shared state again
    assert {"backend": "redis", "connected": True, "outages": 1} == breaker.stats()["storage"]
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "resilience"]
    warnings = [message for level, message in messages if "Redis unreachable" in message]
    assert 1 == len(warnings), messages
    assert any("Redis reachable again" in message for _, message in messages)
    assert ("WARNING", "circuit 'outage': open -> forced-open") in messages


def test_rate_windows_are_shared(redis_server: Any, workers: Any) -> None:
    """Failures in one process and successes in another make one count window; 2 of 4 failed opens at 0.5."""
    config = {"name": "rates", "failure_rate": 0.5, "window_calls": 4, "min_calls": 4, "storage": redis_server.url}
    guarded = rs.circuit("rates", failure_rate=0.5, window_calls=4, min_calls=4, storage=redis_server.url)(
        lambda outcome="ok": outcome
    )
    worker = workers(config)
    assert ["failed", "failed"] == worker.ask("calls", "fail", 2)
    assert "ok" == guarded()
    assert {"calls": 3, "failures": 2} == {
        k: rs.circuit.get("rates").stats()["window"][k] for k in ("calls", "failures")
    }
    assert "ok" == guarded()
    assert "open" == worker.ask("stats")["state"]


def test_time_window_and_slow_calls_in_redis(redis_server: Any) -> None:
    """A 0.6 s window forgets a failure after 0.65 s; calls slower than slow_call count as slow and open it."""
    layer = rs.circuit(
        "timed", failure_rate=0.5, window=0.6, min_calls=2, slow_call=0.05, slow_rate=0.75, storage=redis_server.url
    )
    breaker = layer.breaker

    @layer
    def call(outcome: str = "ok", seconds: float = 0.0) -> str:
        time.sleep(seconds)
        if outcome == "fail":
            raise ConnectionError("down")
        return outcome

    def window() -> tuple[int, int, int]:
        counts = breaker.stats()["window"]
        return counts["calls"], counts["failures"], counts["slow"]

    with pytest.raises(ConnectionError):
        call("fail")
    time.sleep(0.65)
    call()
    assert ((1, 0, 0), "closed") == (window(), breaker.state)
    call(seconds=0.06)
    assert ((2, 0, 1), "closed") == (window(), breaker.state)
    call(seconds=0.06)
    call(seconds=0.06)
    assert "open" == breaker.state  # 3 of the 4 calls in the window were slow


def test_open_time_grows_and_keys_expire(redis_server: Any) -> None:
    """reset_backoff=3 in Redis: a failed trial re-opens for 3x as long; the keys carry an expiry."""
    import redis

    @rs.circuit("growing", fail_max=1, reset_timeout=0.3, reset_backoff=3, storage=redis_server.url)
    def failing() -> None:
        raise ConnectionError("down")

    breaker = rs.circuit.get("growing")
    with pytest.raises(ConnectionError):
        failing()
    assert 0.15 < breaker.retry_after <= 0.3
    time.sleep(breaker.retry_after)
    with pytest.raises(ConnectionError):
        failing()
    assert 0.6 < breaker.retry_after <= 0.9
    client = redis.Redis.from_url(redis_server.url)
    try:
        ttl = client.pttl("resilience:circuit:{growing}")
    finally:
        client.close()
    assert 24 * 3600 * 1000 <= ttl <= (24 * 3600 + 61) * 1000


def test_late_result_from_before_another_process_opened_it_changes_nothing(redis_server: Any, workers: Any) -> None:
    """A call admitted here while closed fails after the other process opened the breaker: no second opening."""
    gate, entered = threading.Event(), threading.Semaphore(0)

    def slow_failure() -> str:
        entered.release()
        assert gate.wait(10)
        raise ConnectionError("late")

    guarded = rs.circuit("late", fail_max=1, reset_timeout=30, storage=redis_server.url)(slow_failure)
    breaker = rs.circuit.get("late")
    results: list[object] = []

    def run() -> None:
        try:
            guarded()
        except ConnectionError as exc:
            results.append(str(exc))

    thread = threading.Thread(target=run)
    thread.start()
    assert entered.acquire(timeout=10)
    worker = workers({"name": "late", "fail_max": 1, "reset_timeout": 30, "storage": redis_server.url})
    assert ["failed"] == worker.ask("calls", "fail", 1)
    before = breaker.retry_after
    gate.set()
    thread.join(10)
    assert ["late"] == results
    stats = breaker.stats()
    assert ("open", 1) == (stats["state"], stats["opened"])
    assert stats["retry_after"] <= before


def test_redis_client_flavours(redis_server: Any) -> None:
    """A sync client serves sync functions, a redis.asyncio client async ones; the other flavour is refused."""
    import redis
    import redis.asyncio

    sync_client = redis.Redis.from_url(redis_server.url)
    async_client = redis.asyncio.Redis.from_url(redis_server.url)

    async def failing() -> None:
        raise ConnectionError("down")

    try:
        with pytest.raises(TypeError, match="is async"):
            rs.circuit("sync-client", storage=sync_client)(failing)
        with pytest.raises(TypeError, match="is not async"):
            rs.circuit("async-client", storage=async_client)(lambda: "ok")
        guarded = rs.circuit("async-only", fail_max=1, storage=async_client)(failing)

        async def main() -> float:
            with pytest.raises(ConnectionError):
                await guarded()
            with pytest.raises(rs.CircuitOpenError) as excinfo:
                await guarded()
            await async_client.aclose()
            return excinfo.value.retry_after

        assert 29 < asyncio.run(main()) <= 30
        breaker = rs.circuit.get("async-only")
        assert "open" == breaker.state  # the last state seen: sync code cannot ask a redis.asyncio client
        with pytest.raises(TypeError, match="storage='redis://"):
            breaker.force_open()
        shared = rs.circuit("sync-reader", storage=sync_client).breaker
        assert "closed" == shared.state
    finally:
        sync_client.close()


PARITY = [
    ({"fail_max": 3, "half_open_calls": 2}, "ffsfff|sf|ss"),
    ({"failure_rate": 0.5, "window_calls": 4, "min_calls": 4, "half_open_calls": 4}, "fsfsf|fss|sfssf"),
    ({"failure_rate": 0.75, "window_calls": 4, "min_calls": 2, "fail_max": 5}, "ffssssffiiff|s"),
    ({"slow_call": 1.0, "slow_rate": 0.5, "window_calls": 3, "min_calls": 3, "half_open_calls": 2}, "sSsSS|Ss|ss"),
    ({"failure_rate": 0.5, "slow_call": 1.0, "slow_rate": 0.5, "window": 60, "min_calls": 4}, "FsSisf|s"),
]


@pytest.mark.parametrize(("config", "script"), PARITY, ids=[script for _, script in PARITY])
def test_redis_rules_match_the_in_memory_rules(redis_server: Any, config: dict[str, Any], script: str) -> None:
    """Lua and Python rules give the same state after every outcome (s ok, S slow, f/F failed, i ignored)."""
    options = {"reset_timeout": 0.05, "exclude": KeyError, **config}
    breakers = [
        rs.circuit("memory", **options).breaker,
        rs.circuit("redis", storage=redis_server.url, **options).breaker,
    ]
    outcomes = {
        "s": (rs.Outcome("ok"), 0.0),
        "S": (rs.Outcome("ok"), 2.0),
        "f": (rs.Outcome(None, ConnectionError()), 0.0),
        "F": (rs.Outcome(None, ConnectionError()), 2.0),
        "i": (rs.Outcome(None, KeyError()), 0.0),
    }
    traces: list[list[str]] = [[], []]
    for step in script:
        if step == "|":
            time.sleep(max(breaker.retry_after for breaker in breakers) + 0.01)
            continue
        for breaker, trace in zip(breakers, traces, strict=True):
            try:
                token = breaker.acquire()
            except rs.CircuitOpenError:
                trace.append("rejected")
                continue
            breaker.record(token, *outcomes[step])
            trace.append(breaker.state)
    assert traces[0] == traces[1]
    assert "closed" in traces[0] and "open" in traces[0]


def test_redis_trial_admitted_late_in_half_open_is_not_presumed_hung(redis_server: Any) -> None:
    """In Redis too, only a trial in flight for reset_timeout is presumed hung; earlier successes count."""
    breaker = rs.circuit(
        "late-trial", fail_max=1, reset_timeout=0.5, half_open_calls=2, storage=redis_server.url
    ).breaker
    breaker.open()
    time.sleep(0.55)
    breaker.record(breaker.acquire(), rs.classify.Outcome("ok"))
    time.sleep(0.35)
    second = breaker.acquire()
    time.sleep(0.25)  # 0.6 s into half-open, the second trial 0.25 s old
    with pytest.raises(rs.CircuitOpenError):
        breaker.acquire()
    breaker.record(second, rs.classify.Outcome("ok"))
    assert "closed" == breaker.state


# Keeps Redis busy for ARGV[1] microseconds, as a slow server would be.
BUSY_SCRIPT = """
local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end
local stop = now() + tonumber(ARGV[1])
while now() < stop do end
"""


def test_async_caller_cancelled_during_admission_gives_its_trial_slot_back(redis_server: Any) -> None:
    """A caller cancelled while Redis admits it returns the half-open slot it was given."""
    import redis

    guarded = rs.circuit("cancelled", fail_max=1, reset_timeout=1.0, storage=redis_server.url)(asyncio.sleep)
    breaker = rs.circuit.get("cancelled")
    client = redis.Redis.from_url(redis_server.url)

    async def main() -> str:
        await guarded(0)
        breaker.open()
        await asyncio.sleep(1.05)
        busy = threading.Thread(target=client.eval, args=(BUSY_SCRIPT, 0, 300_000))  # Redis blocked 0.3 s
        busy.start()
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await guarded(0)
        busy.join()
        await asyncio.sleep(0.1)
        return (await guarded(0, "ok")) or ""

    try:
        assert "ok" == asyncio.run(main())
        assert "closed" == breaker.state
    finally:
        client.close()


def test_call_admitted_locally_during_an_outage_changes_nothing_after_resync(
    redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outcome of a call the local state admitted, arriving once Redis is back, neither trips nor notifies."""
    monkeypatch.setattr(_circuit_redis, "RESYNC_INTERVAL", 0.1)
    recorder = Recorder()
    breaker = rs.circuit("stale-local", fail_max=1, storage=redis_server.url, listeners=[recorder]).breaker
    assert "closed" == breaker.state
    redis_server.stop()
    token = breaker.acquire()
    redis_server.start()
    time.sleep(0.15)
    assert "closed" == breaker.state
    breaker.record(token, rs.classify.Outcome(None, ConnectionError("late")))
    assert ([], "closed", "closed") == (recorder.changes, breaker.state, breaker._storage.state)


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_clients_of_closed_event_loops_are_released(redis_server: Any) -> None:
    """Loops closed without asyncio.run do not each keep a client: at most the newest one is held."""
    import gc

    guarded = rs.circuit("loops", storage=redis_server.url)(asyncio.sleep)
    breaker = rs.circuit.get("loops")
    assert isinstance(breaker, _circuit_redis.RedisBreaker)
    for _ in range(5):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(guarded(0))
        loop.close()
    assert 1 == len(breaker._loop_scripts)
    breaker._loop_scripts.clear()
    gc.collect()
