"""``rs.rate_limit(storage="redis://...")`` against a real redis-server on loopback.

Each test takes well under a second: the limits use long periods, so that no token
comes back while a test runs and the counts are exact.
"""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilience as rs

pytestmark = pytest.mark.integration

# A child process: takes up to `calls` tokens without waiting, prints how many it got.
CHILD = textwrap.dedent(
    """
    import json, sys
    import resilience as rs

    url, name, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    take = rs.rate_limit(10, per=3600.0, name=name, storage=url)(lambda: None)
    sys.stdin.readline()  # start together
    got, retry_afters = 0, []
    for _ in range(calls):
        try:
            take()
            got += 1
        except rs.RateLimited as exc:
            retry_afters.append(exc.retry_after)
    print(json.dumps({"got": got, "min_retry_after": min(retry_afters, default=None)}))
    """
)


@pytest.fixture(autouse=True)
def _fresh_limits() -> Iterator[None]:
    """Every test starts with no named rate limits."""
    rs.rate_limit.clear()
    yield
    rs.rate_limit.clear()


def children(url: str, name: str, processes: int, calls: int) -> list[dict[str, Any]]:
    """Start ``processes`` children, release them together, return what each one took."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, name, str(calls)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    outputs = []
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert 0 == proc.returncode, err
        outputs.append(json.loads(out))
    return outputs


def test_limit_holds_across_two_processes(redis_server):
    """Two processes each trying 15 calls against one 10-token Redis bucket get 10 between them."""
    outputs = children(redis_server.url, "shared-api", processes=2, calls=15)
    assert 10 == sum(output["got"] for output in outputs)
    assert all(output["min_retry_after"] > 300 for output in outputs)  # a token every 360 s
    limiter = rs.rate_limit(10, per=3600.0, name="shared-api", storage=redis_server.url).limiter
    assert pytest.approx(0.0, abs=0.01) == limiter.tokens


def test_drain_in_one_process_is_seen_by_another(redis_server):
    """A drain (a 429's back-off) by this process makes another process's calls fail with that retry_after."""
    limiter = rs.rate_limit(10, per=3600.0, name="drained-api", storage=redis_server.url).limiter
    limiter.drain(30.0)
    (output,) = children(redis_server.url, "drained-api", processes=1, calls=3)
    assert 0 == output["got"]
    assert 30.0 < output["min_retry_after"] <= 30.0 + 360.0 + 1.0


def test_async_calls_share_the_redis_bucket(redis_server):
    """async def calls draw on the same Redis bucket, without blocking their event loop."""

    @rs.rate_limit(2, per=3600.0, name="async-api", storage=redis_server.url)
    async def call() -> str:
        return "ok"

    async def main() -> list[Any]:
        return await asyncio.gather(*(call() for _ in range(3)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert (2, 1) == (outcomes.count("ok"), sum(isinstance(o, rs.RateLimited) for o in outcomes))
    stats = rs.rate_limit.get("async-api").stats()
    assert (2, 1) == (stats["admitted"], stats["limited"])
    assert {"backend": "redis", "connected": True, "outages": 0} == stats["storage"]


def test_waiting_caller_reserves_its_token_in_redis(redis_server):
    """With wait=True, a caller beyond the burst reserves the next token and waits for it (here 50 ms)."""
    fn = rs.rate_limit(20, per=1.0, burst=1, wait=True, name="waiting-api", storage=redis_server.url)(lambda: "ok")
    assert ["ok", "ok"] == [fn(), fn()]
    assert 1 == rs.rate_limit.get("waiting-api").stats()["waited"]


def test_a_redis_client_object_is_accepted(redis_server):
    """storage= also takes a redis.Redis client."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        fn = rs.rate_limit(1, per=3600.0, name="client-api", storage=client)(lambda: "ok")
        assert "ok" == fn()
        with pytest.raises(rs.RateLimited):
            fn()
    finally:
        client.close()


def calls(twin: Any, fn: Callable[[], Any], count: int) -> list[str]:
    """Call ``fn`` ``count`` times in a row (in one event loop for async): "ok" or "limited" for each."""
    if twin.is_async:

        async def main() -> list[str]:
            results = []
            for _ in range(count):
                try:
                    await fn()
                    results.append("ok")
                except rs.RateLimited:
                    results.append("limited")
            return results

        return asyncio.run(main())
    results = []
    for _ in range(count):
        try:
            fn()
            results.append("ok")
        except rs.RateLimited:
            results.append("limited")
    return results


def test_redis_outage_limits_locally_warns_once_and_shares_again(
    twin: Any, redis_server: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis stopped: the local bucket limits, one WARNING, an outage in stats; restarted: the Redis bucket again."""
    import redis

    from resilience import _redis_outage

    monkeypatch.setattr(_redis_outage, "RESYNC_INTERVAL", 0.1)
    caplog.set_level(logging.INFO, logger="resilience")
    fn = rs.rate_limit(3, per=3600.0, name="outage-api", storage=redis_server.url)(twin.wrap(lambda: "ok"))
    limiter = rs.rate_limit.get("outage-api")
    assert ["ok"] == calls(twin, fn, 1)
    redis_server.stop()
    assert ["ok", "ok", "limited"] == calls(twin, fn, 3)  # the 2 tokens Redis last reported, then the limit
    assert {"backend": "redis", "connected": False, "outages": 1} == limiter.stats()["storage"]
    time.sleep(0.15)
    assert ["limited"] == calls(twin, fn, 1)  # Redis tried again, still down: the same outage
    assert {"backend": "redis", "connected": False, "outages": 1} == limiter.stats()["storage"]
    redis_server.start()  # same port, no data: the shared bucket starts full
    time.sleep(0.15)
    assert ["ok", "ok"] == calls(twin, fn, 2)
    assert {"backend": "redis", "connected": True, "outages": 1} == limiter.stats()["storage"]
    client = redis.Redis.from_url(redis_server.url)
    try:
        shared = float(client.hget("resilience:rate_limit:outage-api", "tokens") or "nan")
    finally:
        client.close()
    assert pytest.approx(1.0, abs=0.01) == shared  # the two calls after the restart drew on Redis
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "resilience"]
    assert 1 == sum("Redis unreachable" in message for _, message in messages), messages
    assert 1 == sum(level == "WARNING" for level, _ in messages), messages
    assert any("Redis reachable again" in message for _, message in messages)


def test_redis_refund_is_dropped_when_a_later_reservation_exists(redis_server):
    """In Redis, a reservation given back while a later one is pending is dropped; the latest one is given back."""
    limiter = rs.rate_limit(1, per=3600.0, burst=1, wait=True, name="refund-api", storage=redis_server.url).limiter
    bucket = limiter._bucket
    bucket.take(1e6)  # the only token
    _, first_wait, first = bucket.take(1e6)  # due in an hour
    _, second_wait, second = bucket.take(1e6)  # due in two
    assert (pytest.approx(3600.0, abs=1.0), pytest.approx(7200.0, abs=1.0)) == (first_wait, second_wait)
    bucket.refund(first)  # dropped: the later reservation keeps its place
    assert pytest.approx(-2.0, abs=0.01) == limiter.tokens
    bucket.refund(second)  # the latest: given back
    assert pytest.approx(-1.0, abs=0.01) == limiter.tokens


def test_redis_drain_holds_an_async_caller_already_waiting(redis_server):
    """A drain in Redis while an async caller sleeps for its reserved token (50 ms): it wakes and fails, uncalled."""
    ran: list[str] = []

    @rs.rate_limit(20, per=1.0, burst=1, wait=1.0, name="drain-wait-api", storage=redis_server.url)
    async def call() -> None:
        ran.append("call")

    limiter = rs.rate_limit.get("drain-wait-api")

    async def main() -> BaseException | None:
        await call()
        waiting = asyncio.create_task(call())
        await asyncio.sleep(0.01)
        await asyncio.to_thread(limiter.drain, 5.0)
        (outcome,) = await asyncio.gather(waiting, return_exceptions=True)
        return outcome

    outcome = asyncio.run(main())
    assert isinstance(outcome, rs.RateLimited)
    assert 4.0 < outcome.retry_after <= 5.1
    assert ["call"] == ran
    stats = limiter.stats()
    assert (1, 1, 1) == (stats["admitted"], stats["limited"], stats["drained"])


class SlowScripts:
    """A real redis client whose script round trips take 100 ms (a slow network)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def register_script(self, source: str) -> Callable[..., Any]:
        script = self.client.register_script(source)

        def run(**kwargs: Any) -> Any:
            time.sleep(0.1)
            return script(**kwargs)

        return run


def test_async_caller_cancelled_during_the_redis_take_gives_its_token_back(redis_server):
    """Three async callers cancelled while their take runs in a thread leave the 2-token Redis bucket full."""
    import redis

    client = redis.Redis.from_url(redis_server.url)

    @rs.rate_limit(2, per=3600.0, name="cancel-api", storage=SlowScripts(client))
    async def call() -> str:
        return "ok"

    async def main() -> list[Any]:
        for _ in range(3):
            task = asyncio.create_task(call())
            await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return await asyncio.gather(call(), call(), return_exceptions=True)

    try:
        assert ["ok", "ok"] == asyncio.run(main())
        assert pytest.approx(0.0, abs=0.01) == rs.rate_limit.get("cancel-api").tokens
    finally:
        client.close()
