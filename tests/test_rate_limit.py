"""``rs.rate_limit``: a token bucket on the resilience clock: exact admissions, waits, drains."""

# House style reads `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilience as rs
from resilience.classify import Classifier, Outcome, Verdict, on_result


@pytest.fixture(autouse=True)
def _fresh_limits() -> Iterator[None]:
    """Every test starts with no named rate limits."""
    rs.rate_limit.clear()
    yield
    rs.rate_limit.clear()


def attempt(twin: Any, fn: Callable[..., Any], calls: int, step: float, clock: Any) -> list[Any]:
    """Call ``fn`` ``calls`` times, ``step`` fake seconds apart; each outcome is the value or the exception."""

    def outcome_of(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except rs.RateLimited as exc:
            return exc

    if twin.is_async:

        async def main() -> list[Any]:
            outcomes = []
            for _ in range(calls):
                try:
                    outcomes.append(await fn())
                except rs.RateLimited as exc:
                    outcomes.append(exc)
                clock.advance(step)
            return outcomes

        return asyncio.run(main())
    outcomes = []
    for _ in range(calls):
        outcomes.append(outcome_of(fn))
        clock.advance(step)
    return outcomes


def admitted(outcomes: list[Any]) -> int:
    return sum(not isinstance(o, rs.RateLimited) for o in outcomes)


# --- exactness on the fake clock -----------------------------------------------------------


def test_burst_then_rejection_with_retry_after(twin, clock):
    """rate 10/s: a burst of 10 passes at once, the 11th fails with RateLimited(retry_after=0.1 s)."""
    fn = rs.rate_limit(10, per=1.0, name="api")(twin.wrap(lambda: "ok"))
    outcomes = attempt(twin, fn, 11, 0.0, clock)
    assert ["ok"] * 10 == outcomes[:10]
    error = outcomes[10]
    assert isinstance(error, rs.RateLimited)
    assert isinstance(error, rs.ResilienceError)
    assert ("api", pytest.approx(0.1)) == (error.name, error.retry_after)
    assert "rate limit 'api' exceeded; next call allowed in 0.1 s" == str(error)
    stats = rs.rate_limit.get("api").stats()
    assert (10, 1, 0) == (stats["admitted"], stats["limited"], stats["waited"])
    assert [] == clock.sleeps


def test_admissions_over_time_are_exact(twin, clock):
    """Calling every 10 ms for 10 s at 10/s with burst 10 admits exactly 10 + 100 calls."""
    fn = rs.rate_limit(10, per=1.0, name="api")(twin.wrap(lambda: "ok"))
    outcomes = attempt(twin, fn, 1001, 0.01, clock)
    assert 110 == admitted(outcomes)


def test_per_and_burst(twin, clock):
    """rate=3 per 60 s with burst=1: one call now, the next one 20 s later, not before."""
    fn = rs.rate_limit(3, per=60.0, burst=1, name="slow-api")(twin.wrap(lambda: "ok"))
    outcomes = attempt(twin, fn, 3, 10.0, clock)  # at 0 s, 10 s, 20 s
    assert ["ok", rs.RateLimited, "ok"] == [o if o == "ok" else type(o) for o in outcomes]
    assert pytest.approx(10.0) == outcomes[1].retry_after


def test_fractional_rates_admit_the_exact_count(twin, clock):
    """rate 2.5/s with burst 1, one call every 0.1 s for 4 s: 1 + 10 admitted (one every 0.4 s)."""
    fn = rs.rate_limit(2.5, burst=1, name="api")(twin.wrap(lambda: "ok"))
    outcomes = attempt(twin, fn, 41, 0.1, clock)
    assert 11 == admitted(outcomes)


def test_wait_true_waits_for_each_token(twin, clock):
    """With wait=True, calls beyond the burst sleep until their token is due (0.1 s apart at 10/s)."""
    fn = rs.rate_limit(10, name="api", wait=True)(twin.wrap(lambda: "ok"))
    start = clock.monotonic()
    assert ["ok"] * 15 == attempt(twin, fn, 15, 0.0, clock)
    assert [pytest.approx(0.1)] * 5 == clock.sleeps
    assert pytest.approx(0.5) == clock.monotonic() - start
    stats = rs.rate_limit.get("api").stats()
    assert (15, 5, 0) == (stats["admitted"], stats["waited"], stats["limited"])


def test_waiting_callers_reserve_tokens_in_order(clock):
    """Each caller allowed to wait reserves the next token: waits of 0.1, 0.2, 0.3 s at 10/s."""
    limiter = rs.rate_limit(10, burst=1, name="api", wait=True).limiter
    bucket = limiter._bucket
    start = clock.monotonic()
    assert (True, 0.0, ("memory", start)) == bucket.take(60.0)
    waits = [bucket.take(60.0) for _ in range(3)]
    assert [(True, pytest.approx(w), ("memory", pytest.approx(start + w))) for w in (0.1, 0.2, 0.3)] == waits
    assert pytest.approx(-3.0) == limiter.tokens


def test_wait_never_goes_past_the_deadline(twin, clock):
    """With wait=True and 0.05 s left, a token due in 0.1 s fails at once, without sleeping."""
    fn = rs.rate_limit(10, burst=1, name="api", wait=True)(twin.wrap(lambda: "ok"))
    deadlined = rs.timeout(0.05, mode="cooperative")(fn)
    outcomes = attempt(twin, deadlined, 2, 0.0, clock)
    assert "ok" == outcomes[0]
    assert isinstance(outcomes[1], rs.RateLimited)
    assert pytest.approx(0.1) == outcomes[1].retry_after
    assert "deadline" in str(outcomes[1])
    assert [] == clock.sleeps
    assert pytest.approx(0.0, abs=1e-9) == rs.rate_limit.get("api").tokens  # nothing was reserved


def test_wait_in_seconds_bounds_the_wait(twin, clock):
    """wait=2.5 waits for a token due within 2.5 s and rejects one due later."""
    fn = rs.rate_limit(1, per=2.0, burst=1, name="api", wait=2.5)(twin.wrap(lambda: "ok"))
    slow = rs.rate_limit(1, per=3.0, burst=1, name="slower", wait=2.5)(twin.wrap(lambda: "ok"))
    assert ["ok", "ok"] == attempt(twin, fn, 2, 0.0, clock)
    assert [pytest.approx(2.0)] == clock.sleeps
    outcomes = attempt(twin, slow, 2, 0.0, clock)
    assert isinstance(outcomes[1], rs.RateLimited)
    assert pytest.approx(3.0) == outcomes[1].retry_after


def test_cancelled_wait_gives_the_token_back(clock):
    """A task cancelled while waiting for its reserved token returns it to the bucket."""
    layer = rs.rate_limit(10, burst=1, name="api", wait=True)

    @layer
    async def call() -> str:
        return "ok"

    async def main() -> None:
        await call()  # takes the only token
        task = asyncio.ensure_future(call())  # reserves the next one and waits for it
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert pytest.approx(1.0) == layer.limiter.tokens


def test_cancelled_wait_drops_the_token_when_someone_reserved_after_it(clock):
    """A reservation given back while a later one is pending is dropped: a newcomer queues behind the later one."""
    limiter = rs.rate_limit(10, burst=1, name="api", wait=True).limiter
    bucket = limiter._bucket
    bucket.take(60.0)  # the only token
    _, _, first = bucket.take(60.0)  # due in 0.1 s
    bucket.take(60.0)  # due in 0.2 s
    bucket.refund(first)  # dropped: the 0.2 s reservation keeps its place, and nobody may share it
    assert pytest.approx(-2.0) == limiter.tokens
    assert pytest.approx(0.3) == bucket.take(60.0)[1]
    _, _, last = bucket.take(60.0)  # due in 0.4 s, the latest reservation
    bucket.refund(last)  # given back: the next newcomer takes its place
    assert pytest.approx(0.4) == bucket.take(60.0)[1]


def test_def_call_inside_a_running_loop_never_waits(clock):
    """A sync call with wait=True made inside an event loop is rejected rather than blocking the loop."""
    fn = rs.rate_limit(10, burst=1, name="api", wait=True)(lambda: "ok")

    async def main() -> Any:
        fn()
        try:
            fn()
        except rs.RateLimited as exc:
            return exc
        return None

    exc = asyncio.run(main())
    assert isinstance(exc, rs.RateLimited)
    assert "event loop" in str(exc)
    assert [] == clock.sleeps


def test_bucket_follows_a_newly_installed_clock():
    """A bucket first used on one clock and then on another (earlier) one neither crashes nor refills."""
    layer = rs.rate_limit(1, per=10.0, burst=1)
    fn = layer(lambda: "ok")
    fn()
    with rs.testing.fake_clock(start=5.0), pytest.raises(rs.RateLimited):
        fn()


# --- draining (a 429 from the dependency) ----------------------------------------------------


def test_drain_makes_the_next_calls_back_off(twin, clock):
    """limiter.drain(5) at 10/s: nothing passes for 5.1 s, then calls come at the normal rate again."""
    fn = rs.rate_limit(10, name="api")(twin.wrap(lambda: "ok"))
    limiter = rs.rate_limit.get("api")
    limiter.drain(5.0)
    first = attempt(twin, fn, 1, 5.0, clock)[0]
    assert isinstance(first, rs.RateLimited)
    assert pytest.approx(5.1) == first.retry_after
    clock.advance(0.1)
    assert ["ok", rs.RateLimited] == [o if o == "ok" else type(o) for o in attempt(twin, fn, 2, 0.0, clock)]
    assert 1 == limiter.stats()["drained"]


def test_drain_holds_callers_already_waiting_for_their_token(twin, clock):
    """A drain(5) made while a caller sleeps for its token: it wakes, queues behind the drain, calls at 5.15 s."""
    fn = rs.rate_limit(10, burst=1, name="api", wait=True)(twin.wrap(lambda: clock.monotonic()))
    limiter = rs.rate_limit.get("api")
    start = clock.monotonic()
    twin.run(fn)  # the only token
    clock.call_later(0.05, lambda: limiter.drain(5.0))  # a 429 arrives while the next caller waits
    called_at = twin.run(fn) - start
    assert [pytest.approx(0.1), pytest.approx(5.05)] == clock.sleeps
    assert pytest.approx(5.15) == called_at
    stats = limiter.stats()
    assert (2, 1, 0, 1) == (stats["admitted"], stats["waited"], stats["limited"], stats["drained"])


def test_drain_fails_a_waiting_caller_that_may_not_wait_that_long(twin, clock):
    """With wait=1, a caller woken inside a 5 s drain fails with RateLimited instead of calling."""
    fn = rs.rate_limit(10, burst=1, name="api", wait=1.0)(twin.wrap(lambda: "ok"))
    limiter = rs.rate_limit.get("api")
    twin.run(fn)
    clock.call_later(0.05, lambda: limiter.drain(5.0))
    with pytest.raises(rs.RateLimited) as excinfo:
        twin.run(fn)
    assert pytest.approx(5.05) == excinfo.value.retry_after
    assert "drained while this call waited" in str(excinfo.value)
    assert [pytest.approx(0.1)] == clock.sleeps
    stats = limiter.stats()
    assert (1, 0, 1) == (stats["admitted"], stats["waited"], stats["limited"])


def test_drain_without_seconds_empties_the_bucket(clock):
    """drain() with no argument leaves no token: the next one is due in one interval."""
    limiter = rs.rate_limit(10, name="api").limiter
    limiter.drain()
    assert pytest.approx(0.0) == limiter.tokens
    with pytest.raises(rs.RateLimited) as excinfo:
        limiter.acquire_sync()
    assert pytest.approx(0.1) == excinfo.value.retry_after


class Throttled(Exception):
    """A 429 carrying a Retry-After."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429, retry after {retry_after}")
        self.retry_after = retry_after


def throttled(outcome: Outcome) -> Verdict | None:
    """A classifier reading Retry-After from Throttled, as an HTTP 429 preset would."""
    if isinstance(outcome.exception, Throttled):
        return Verdict(failed=True, retryable=True, reason="status_429", retry_after=outcome.exception.retry_after)
    return None


def test_drain_on_a_429_verdict_backs_off_for_its_retry_after(twin, clock):
    """drain_on=<classifier>: a Throttled(retry_after=2) drains the bucket for 2 s; the error surfaces."""

    def call(fail: bool) -> str:
        if fail:
            raise Throttled(2.0)
        return "ok"

    fn = rs.rate_limit(10, name="api", drain_on=Classifier(throttled, "throttled"))(twin.wrap(call))
    with pytest.raises(Throttled):
        twin.run(fn, True)
    with pytest.raises(rs.RateLimited) as excinfo:
        twin.run(fn, False)
    assert pytest.approx(2.1) == excinfo.value.retry_after
    clock.advance(2.1)
    assert "ok" == twin.run(fn, False)


def test_drain_on_a_returned_value(twin, clock):
    """drain_on a result predicate: a returned 429 empties the bucket and is returned as is."""
    fn = rs.rate_limit(10, name="api", drain_on=on_result(lambda status: status == 429))(twin.wrap(lambda s: s))
    assert 429 == twin.run(fn, 429)
    with pytest.raises(rs.RateLimited):
        twin.run(fn, 200)


def test_drain_on_other_outcomes_changes_nothing(twin, clock):
    """Outcomes drain_on does not flag (successes, other errors) leave the bucket alone."""

    def call(fail: bool) -> str:
        if fail:
            raise ValueError("bad")
        return "ok"

    fn = rs.rate_limit(10, burst=3, name="api", drain_on=Throttled)(twin.wrap(call))
    with pytest.raises(ValueError):
        twin.run(fn, True)
    assert "ok" == twin.run(fn, False)
    assert pytest.approx(1.0) == rs.rate_limit.get("api").tokens


def test_drain_on_classifier_that_raises_is_ignored(twin, clock, caplog):
    """A drain_on classifier that raises is logged and never changes the call's outcome."""

    def broken(outcome: Outcome) -> Verdict | None:
        raise RuntimeError("classifier bug")

    fn = rs.rate_limit(10, name="api", drain_on=Classifier(broken, "broken"))(twin.wrap(lambda: "ok"))
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert "ok" == twin.run(fn)
    assert "drain_on classifier raised" in caplog.text
    assert 0 == rs.rate_limit.get("api").stats()["drained"]


# --- with retries ---------------------------------------------------------------------------


def test_retry_on_rate_limited_waits_for_the_token(twin, clock):
    """retry_on(RateLimited) around a limit waits the error's retry_after, then succeeds."""
    limited = rs.rate_limit(1, per=2.0, burst=1, name="api")
    fn = rs.retry_on(rs.RateLimited, attempts=2, wait_initial=0.01)(limited(twin.wrap(lambda: "ok")))
    assert ["ok", "ok"] == [twin.run(fn), twin.run(fn)]
    assert [pytest.approx(2.0)] == clock.sleeps


def test_rate_limited_is_not_retried_unless_named(twin, clock):
    """retry_on(ConnectionError) does not retry a RateLimited: it surfaces at once."""
    limited = rs.rate_limit(1, per=2.0, burst=1, name="api")
    fn = rs.retry_on(ConnectionError)(limited(twin.wrap(lambda: "ok")))
    twin.run(fn)
    with pytest.raises(rs.RateLimited):
        twin.run(fn)
    assert [] == clock.sleeps


# --- sharing, configuration -----------------------------------------------------------------


def test_same_name_shares_one_bucket(twin, clock):
    """Two functions limited under one name draw from one bucket."""
    a = rs.rate_limit(2, name="api")(twin.wrap(lambda: "a"))
    b = rs.rate_limit(2, name="api")(twin.wrap(lambda: "b"))
    assert ["a", "b"] == [twin.run(a), twin.run(b)]
    with pytest.raises(rs.RateLimited):
        twin.run(a)


def test_same_name_with_another_configuration_is_an_error():
    """A second declaration of a name must repeat its configuration."""
    rs.rate_limit(2, name="api")
    with pytest.raises(ValueError, match="already exists"):
        rs.rate_limit(3, name="api")


def test_unknown_name_is_a_key_error():
    """get() of a name never declared raises KeyError."""
    with pytest.raises(KeyError, match="nope"):
        rs.rate_limit.get("nope")


def test_clear_refills_and_frees_names(clock):
    """clear() zeroes counters, refills memory buckets and forgets the names."""
    limiter = rs.rate_limit(1, name="api").limiter
    limiter.acquire_sync()
    rs.rate_limit.clear()
    assert ([], 0, pytest.approx(1.0)) == (rs.rate_limit.names(), limiter.stats()["admitted"], limiter.tokens)


def test_repr_and_anonymous_name():
    """The layer's repr shows rate, burst and wait; an anonymous limit is named after its function."""
    layer = rs.rate_limit(5, per=2.0, wait=True)

    @layer
    def fetch() -> None:
        pass

    assert layer.limiter.name.endswith("fetch")
    assert f"rate_limit({layer.limiter.name!r}, 5/2 s, burst=5, wait=True)" == repr(layer)
    assert "rate_limit('x', 0.5/1 s, burst=1, wait=1.5)" == repr(rs.rate_limit(0.5, wait=1.5, name="x"))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "parameter"),
    [
        ((0,), {}, ValueError, "rate"),
        ((-1,), {}, ValueError, "rate"),
        ((float("inf"),), {}, ValueError, "rate"),
        (("10",), {}, TypeError, "rate"),
        ((True,), {}, TypeError, "rate"),
        ((10, 0), {}, ValueError, "per"),
        ((10,), {"burst": 0.5}, ValueError, "burst"),
        ((10,), {"burst": "5"}, TypeError, "burst"),
        ((10,), {"wait": -1}, ValueError, "wait"),
        ((10,), {"wait": "yes"}, TypeError, "wait"),
        ((10,), {"wait": float("inf")}, ValueError, "wait"),
        ((10,), {"name": ""}, ValueError, "name"),
        ((10,), {"name": 5}, TypeError, "name"),
        ((10,), {"name": "x", "storage": "http://localhost"}, ValueError, "storage"),
        ((10,), {"name": "x", "storage": object()}, TypeError, "storage"),
        ((10,), {"storage": "redis://localhost:1/0"}, ValueError, "storage"),
        ((10,), {"drain_on": 42}, TypeError, "drain_on"),
    ],
)
def test_bad_configuration_fails_at_decoration_time(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type, parameter: str
):
    """Bad arguments raise ValueError/TypeError naming the parameter."""
    with pytest.raises(error, match=parameter):
        rs.rate_limit(*args, **kwargs)


def test_an_asyncio_redis_client_is_rejected_at_declaration():
    """storage=redis.asyncio.Redis(...) is a TypeError naming storage, not a failure on every call."""
    redis = pytest.importorskip("redis.asyncio")
    client = redis.Redis(host="127.0.0.1", port=1)  # never connects
    with pytest.raises(TypeError, match=r"storage must be .* sync redis\.Redis client"):
        rs.rate_limit(10, name="api", storage=client)
    assert [] == rs.rate_limit.names()


def test_drain_rejects_negative_seconds():
    """limiter.drain(-1) is a ValueError naming the parameter."""
    with pytest.raises(ValueError, match="seconds"):
        rs.rate_limit(1).limiter.drain(-1)


def test_redis_storage_without_the_redis_package_says_what_to_install(monkeypatch):
    """storage='redis://...' without redis installed is an ImportError naming the extra to install."""
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"resilience\[redis\]"):
        rs.rate_limit(10, name="api", storage="redis://127.0.0.1:1/0")


def test_rate_limited_pickles():
    """RateLimited survives pickling with its attributes."""
    exc = pickle.loads(pickle.dumps(rs.RateLimited("api", 0.25, "why")))
    assert ("api", 0.25, "why", "rate limit 'api' exceeded; next call allowed in 0.25 s (why)") == (
        exc.name,
        exc.retry_after,
        exc.reason,
        str(exc),
    )


# --- Redis outages (a stand-in client, on the fake clock) -----------------------------------


class FakeRedis:
    """A redis client stand-in: its one script keeps a token bucket on the resilience clock, or raises while down."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0  # script calls, answered or not
        self.bucket: Any = None

    def register_script(self, source: str) -> Callable[..., list[Any]]:
        import redis

        from resilience._rate_limit import _MemoryBucket

        def script(keys: list[str], args: list[str]) -> list[Any]:
            self.calls += 1
            if self.down:
                raise redis.exceptions.ConnectionError("Connection refused")
            capacity, interval, cost, max_wait, drain, due = map(float, args)
            if self.bucket is None:
                self.bucket = _MemoryBucket(capacity, interval)
            granted, wait, due = True, 0.0, 0.0
            if drain >= 0:
                self.bucket.drain(drain)
            elif cost < 0:
                self.bucket.refund(("memory", due))
            elif cost > 0:
                granted, wait, (_, due) = self.bucket.take(max_wait)
            held = self.bucket.drained_for()
            return [int(granted), repr(wait), repr(self.bucket.tokens()), repr(held), repr(due)]

        return script


@pytest.fixture
def fake_redis() -> FakeRedis:
    """A stand-in Redis client (needs the redis package for its error classes)."""
    pytest.importorskip("redis")
    return FakeRedis()


def outage_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "resilience" and "Redis" in r.message]


def test_redis_outage_limits_from_a_local_bucket_seeded_from_the_shared_one(twin, clock, caplog, fake_redis):
    """Redis down after 3 of 5 tokens: the local bucket admits the 2 left, then limits; one WARNING."""
    caplog.set_level(logging.INFO, logger="resilience")
    fn = rs.rate_limit(5, per=3600.0, name="api", storage=fake_redis)(twin.wrap(lambda: "ok"))
    assert ["ok"] * 3 == attempt(twin, fn, 3, 0.0, clock)
    fake_redis.down = True
    outcomes = attempt(twin, fn, 4, 0.0, clock)
    assert ["ok", "ok", rs.RateLimited, rs.RateLimited] == [o if o == "ok" else type(o) for o in outcomes]
    assert pytest.approx(720.0) == outcomes[2].retry_after
    stats = rs.rate_limit.get("api").stats()
    assert {"backend": "redis", "connected": False, "outages": 1} == stats["storage"]
    assert (5, 2, pytest.approx(-0.0, abs=1e-6)) == (stats["admitted"], stats["limited"], stats["tokens"])
    assert 4 == fake_redis.calls  # 3 answered, 1 refused: no retry within the second
    message = (
        "rate_limit 'api': Redis unreachable (ConnectionError: Connection refused); "
        "serving from a local bucket (2 of 5 tokens) until it is back"
    )
    assert [("WARNING", message)] == outage_logs(caplog)


def test_redis_is_tried_once_a_second_and_shared_again_when_it_answers(twin, clock, caplog, fake_redis):
    """Down from the start: a full local bucket, Redis tried at 0, 1, 2 s; back: shared; a new outage warns again."""
    caplog.set_level(logging.INFO, logger="resilience")
    fn = rs.rate_limit(100, per=1.0, name="api", storage=fake_redis)(twin.wrap(lambda: "ok"))
    limiter = rs.rate_limit.get("api")
    fake_redis.down = True
    assert ["ok"] * 12 == attempt(twin, fn, 12, 0.25, clock)  # at 0 .. 2.75 s
    assert 3 == fake_redis.calls
    fake_redis.down = False  # at 3 s the next attempt is due
    assert ["ok", "ok"] == attempt(twin, fn, 2, 0.0, clock)
    assert (5, 98.0) == (fake_redis.calls, fake_redis.bucket.tokens())  # both calls drew on the shared bucket
    assert {"backend": "redis", "connected": True, "outages": 1} == limiter.stats()["storage"]
    fake_redis.down = True
    assert ["ok"] == attempt(twin, fn, 1, 0.0, clock)
    assert {"backend": "redis", "connected": False, "outages": 2} == limiter.stats()["storage"]
    logs = outage_logs(caplog)
    assert ["WARNING", "INFO", "WARNING"] == [level for level, _ in logs]
    assert "rate_limit 'api': Redis reachable again after 3 s; back to the shared bucket (99 tokens)" == logs[1][1]
    assert "serving from a local bucket (100 of 100 tokens)" in logs[0][1]
    assert "serving from a local bucket (98 of 100 tokens)" in logs[2][1]


def test_drain_during_a_redis_outage_drains_the_local_bucket(twin, clock, fake_redis):
    """limiter.drain(5) while Redis is down empties the local bucket: the next call is due in 5.1 s."""
    fn = rs.rate_limit(10, per=1.0, name="api", storage=fake_redis)(twin.wrap(lambda: "ok"))
    limiter = rs.rate_limit.get("api")
    fake_redis.down = True
    limiter.drain(5.0)
    first = attempt(twin, fn, 1, 5.1, clock)[0]
    assert isinstance(first, rs.RateLimited)
    assert pytest.approx(5.1) == first.retry_after
    assert ["ok"] == attempt(twin, fn, 1, 0.0, clock)
    assert (1, 2) == (limiter.stats()["drained"], fake_redis.calls)  # Redis tried at 0 and 5.1 s


def test_memory_limiter_storage_stats():
    """A memory limiter's stats()["storage"] names its backend."""
    assert {"backend": "memory"} == rs.rate_limit(10).limiter.stats()["storage"]
