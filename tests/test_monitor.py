"""``rs.monitored``, ``rs.monitor.snapshot()``, ``health()`` and ``Registry``."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from typing import Any

import pytest
from helpers import call, log_fields, raising

import resilience as rs


def expiring_timeout(twin: Any) -> Callable[..., Any]:
    """A call that an ``rs.timeout(1)`` ends after 1 s of its 2 s sleep on the fake clock.

    mode="signal" fires in the calling thread as the fake clock advances, so the sync
    twin times out deterministically here (async ignores the mode); the default thread
    mode is pinned in test_policy.
    """
    return rs.timeout(1, mode="signal")(twin.sleeping(2, "late"))


def resilience_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What resilience logged (asyncio logs its selector at DEBUG; that is not ours)."""
    return [record for record in caplog.records if record.name.startswith("resilience")]


OUTCOME_CASES: dict[str, Callable[[Any], Callable[..., Any]]] = {
    "ok": lambda twin: twin.wrap(lambda: "fine"),
    "timeout": expiring_timeout,
    "circuit_open": lambda twin: rs.circuit("svc", fail_max=1)(twin.wrap(lambda: "unreachable")),
    "connection": lambda twin: twin.wrap(raising(ConnectionResetError("reset by peer"))),
    "fallback": lambda twin: rs.fallback("cached")(twin.wrap(raising(ConnectionError("down")))),
    "ValueError": lambda twin: twin.wrap(raising(ValueError("bad input"))),
    "KeyError": lambda twin: twin.wrap(raising(KeyError("missing"))),
}


@pytest.mark.parametrize("outcome", list(OUTCOME_CASES))
def test_outcome_kinds(twin: Any, clock: rs.testing.FakeClock, outcome: str) -> None:
    """Each ending is counted under its outcome: ok, timeout, circuit_open, connection, fallback, or the type name."""
    inner = OUTCOME_CASES[outcome](twin)
    if outcome == "circuit_open":
        rs.circuit.get("svc").open()
    call(twin, rs.monitored("svc")(inner))
    assert {outcome: 1} == rs.monitor.snapshot("svc")["outcomes"]


def test_snapshot_keys(twin: Any) -> None:
    """A snapshot has the documented counters and latency summary."""
    fn = rs.monitored("svc")(twin.wrap(lambda: 1))
    twin.run(fn)
    snap = rs.monitor.snapshot("svc")
    assert {"calls", "ok", "failed", "success_rate", "retries", "outcomes", "latency", "errors"} <= set(snap)
    assert {"mean", "p50", "p95", "p99", "max"} == set(snap["latency"])


def test_counts_calls_ok_and_failed(twin: Any) -> None:
    """Three successes and one failure: calls 4, ok 3, failed 1, success rate 0.75."""
    results = iter([1, 2, ValueError("no"), 3])

    def body() -> int:
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    fn = rs.monitored("svc")(twin.wrap(body))
    for _ in range(4):
        call(twin, fn)
    snap = rs.monitor.snapshot("svc")
    assert (4, 3, 1, 0.75) == (snap["calls"], snap["ok"], snap["failed"], snap["success_rate"])
    assert {"ok": 3, "ValueError": 1} == snap["outcomes"]


def test_retries_come_from_inner_retry(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Retries an inner ``@retry_on`` made are counted once, on the one logical call."""
    failures = iter([ConnectionError("1"), ConnectionError("2")])

    def body() -> str:
        for exc in failures:
            raise exc
        return "ok"

    fn = rs.monitored("svc")(rs.retry_on(ConnectionError, attempts=3)(twin.wrap(body)))
    assert "ok" == twin.run(fn)
    snap = rs.monitor.snapshot("svc")
    assert (1, 1, 2) == (snap["calls"], snap["ok"], snap["retries"])


def test_durations_come_from_the_clock(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Latency is measured on the resilience clock: a 2.5 s fake sleep reads as 2.5 s."""
    fn = rs.monitored("svc")(twin.sleeping(2.5, "done"))
    assert "done" == twin.run(fn)
    latency = rs.monitor.snapshot("svc")["latency"]
    assert 2.5 == latency["mean"]
    assert 2.5 == latency["max"]
    assert pytest.approx(2.5, rel=0.01) == latency["p50"]
    assert pytest.approx(2.5, rel=0.01) == latency["p99"]


def test_snapshot_without_name_returns_every_name(twin: Any) -> None:
    """``snapshot()`` maps every monitored name to its counters."""
    twin.run(rs.monitored("a")(twin.wrap(lambda: 1)))
    twin.run(rs.monitored("b")(twin.wrap(lambda: 2)))
    everything = rs.monitor.snapshot()
    assert ["a", "b"] == sorted(everything)
    assert 1 == everything["b"]["calls"]


def test_unknown_name_is_a_key_error() -> None:
    """Asking for a name nothing was monitored under is a KeyError naming it."""
    with pytest.raises(KeyError, match="nobody"):
        rs.monitor.snapshot("nobody")


def test_separate_registry_keeps_its_own(twin: Any) -> None:
    """A call monitored into a private ``Registry`` is counted there, not in the default one."""
    registry = rs.monitor.Registry()
    twin.run(rs.monitored("svc", registry=registry)(twin.wrap(lambda: 1)))
    assert 1 == registry.snapshot("svc")["calls"]
    assert 1 == rs.monitor.snapshot("svc", registry=registry)["calls"]
    assert {} == rs.monitor.snapshot()


def lookup() -> str:
    return "found"


async def lookup_async() -> str:
    return "found"


def test_name_defaults_to_module_and_qualname(twin: Any) -> None:
    """Without a name, calls are counted under the function's ``module.qualname``."""
    fn = lookup_async if twin.is_async else lookup
    twin.run(rs.monitored()(fn))
    assert [f"{__name__}.{fn.__qualname__}"] == list(rs.monitor.snapshot())


@pytest.mark.parametrize(("name", "error"), [("", ValueError), (42, TypeError)])
def test_bad_name_rejected(name: Any, error: type[Exception]) -> None:
    """A name must be a string (TypeError) and not empty (ValueError)."""
    with pytest.raises(error, match="name"):
        rs.monitored(name)


def test_timeout_logs_one_warning(twin: Any, clock: rs.testing.FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """A timeout logs exactly one WARNING on "resilience" with call_name, outcome, duration and attempts."""
    caplog.set_level(logging.DEBUG)
    call(twin, rs.monitored("svc")(expiring_timeout(twin)))
    [record] = resilience_records(caplog)
    assert ("resilience", logging.WARNING) == (record.name, record.levelno)
    assert ("svc", "timeout", 1) == log_fields(record, "call_name", "outcome", "attempts")
    assert record.duration >= 1.0  # type: ignore[attr-defined]


def test_failure_logs_one_error(twin: Any, clock: rs.testing.FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """A call that fails with a ValueError logs exactly one ERROR with the extra fields."""
    caplog.set_level(logging.DEBUG)
    fn = rs.monitored("svc")(twin.sleeping(0.25))
    failing = rs.monitored("svc")(twin.wrap(raising(ValueError("bad input"))))
    twin.run(fn)
    call(twin, failing)
    [record] = resilience_records(caplog)
    assert ("resilience", logging.ERROR) == (record.name, record.levelno)
    assert ("svc", "ValueError", 0.0, 1) == log_fields(record, "call_name", "outcome", "duration", "attempts")


def test_give_up_after_retries_logs_one_error(
    twin: Any, clock: rs.testing.FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """When retries give up, the monitor logs one ERROR carrying the number of attempts."""
    caplog.set_level(logging.DEBUG)
    fn = rs.monitored("svc")(rs.retry_on(ValueError, attempts=3)(twin.wrap(raising(ValueError("bad")))))
    call(twin, fn)
    errors = [record for record in resilience_records(caplog) if record.levelno >= logging.ERROR]
    assert [("svc", "ValueError", 3)] == [log_fields(r, "call_name", "outcome", "attempts") for r in errors]


def test_success_logs_nothing(twin: Any, clock: rs.testing.FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """A successful call through every layer logs nothing at all, not even at DEBUG."""
    caplog.set_level(logging.DEBUG)
    fn = rs.monitored("svc")(
        rs.fallback(0)(rs.retry_on(ConnectionError)(rs.circuit("svc")(rs.timeout(5)(twin.sleeping(0.1, 7)))))
    )
    assert 7 == twin.run(fn)
    assert [] == resilience_records(caplog)


def test_health_is_healthy_by_default() -> None:
    """With nothing monitored, health is healthy and JSON-serialisable."""
    health = rs.monitor.health()
    assert {"status": "healthy", "reasons": [], "names": {}, "circuits": {}} == json.loads(json.dumps(health))


def test_health_healthy_with_successes(twin: Any) -> None:
    """A name whose calls succeed is healthy."""
    fn = rs.monitored("svc")(twin.wrap(lambda: 1))
    for _ in range(20):
        twin.run(fn)
    health = rs.monitor.health()
    assert "healthy" == health["status"]
    assert ("healthy", []) == (health["names"]["svc"]["status"], health["names"]["svc"]["reasons"])


def test_health_degraded_by_low_success_rate(twin: Any) -> None:
    """Below the success-rate threshold over recent calls, the name and the whole are degraded, with a reason."""
    outcomes = iter([True] * 5 + [False] * 5)

    def body() -> str:
        if not next(outcomes):
            raise ConnectionError("down")
        return "ok"

    fn = rs.monitored("svc")(twin.wrap(body))
    for _ in range(10):
        call(twin, fn)
    health = json.loads(json.dumps(rs.monitor.health()))
    assert "degraded" == health["status"]
    assert "degraded" == health["names"]["svc"]["status"]
    [reason] = health["names"]["svc"]["reasons"]
    assert "success rate" in reason
    assert ["svc is degraded"] == health["reasons"]


def test_health_ignores_too_few_calls(twin: Any) -> None:
    """Fewer than ``min_calls`` recent calls never degrade a name, however they ended."""
    fn = rs.monitored("svc")(twin.wrap(raising(ConnectionError("down"))))
    for _ in range(3):
        call(twin, fn)
    assert "healthy" == rs.monitor.health(min_calls=10)["status"]
    assert "unhealthy" == rs.monitor.health(min_calls=3)["status"]  # 0 % success: below unhealthy_success_rate


def test_health_degraded_by_open_breaker_of_same_name(twin: Any) -> None:
    """A breaker named like a monitored name that is open degrades it, whatever its success rate."""
    fn = rs.monitored("payments")(rs.circuit("payments")(twin.wrap(lambda: "paid")))
    twin.run(fn)
    rs.circuit.get("payments").open()
    health = json.loads(json.dumps(rs.monitor.health()))
    assert "degraded" == health["status"]
    assert ["circuit 'payments' is open"] == health["names"]["payments"]["reasons"]
    assert {"payments": "open"} == health["circuits"]


def test_memory_per_name_is_bounded(clock: rs.testing.FakeClock) -> None:
    """100,000 calls with durations from 10 ns to 10 days keep the latency sketch within ~1,500 buckets."""
    rng = random.Random(20240601)

    @rs.monitored("busy")
    def work() -> None:
        clock.advance(10 ** rng.uniform(-8, 6))

    for _ in range(100_000):
        work()
    stats = rs.monitor.default.stats("busy")
    assert 100_000 == stats.sketch.count
    assert len(stats.sketch._buckets) <= 1_500


# Regressions found in review


def test_fallback_inside_a_helper_does_not_relabel_a_failing_call(twin: Any) -> None:
    """A monitored call that used a fallback deep down and then raised counts its own exception."""

    @rs.fallback(0)
    def helper() -> int:
        raise ConnectionError

    def handler() -> int:
        helper()
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        twin.run(rs.monitored("handler")(twin.wrap(handler)))
    assert {"ValueError": 1} == rs.monitor.snapshot("handler")["outcomes"]


def test_reset_zeroes_counters_of_decorated_functions_in_place(twin: Any) -> None:
    """After rs.testing.reset(), a function decorated earlier reports into zeroed counters under its name."""
    fn = rs.monitored("svc")(twin.wrap(lambda: "ok"))
    twin.run(fn)
    rs.testing.reset()
    assert {} == rs.monitor.snapshot()
    twin.run(fn)
    assert 1 == rs.monitor.snapshot("svc")["calls"]


def test_limiter_refusals_have_their_own_outcome_kinds(twin: Any) -> None:
    """A full bulkhead and an exhausted rate limit are counted as "bulkhead_full" and "rate_limited"."""

    def refuse_slot() -> None:
        raise rs.BulkheadFull("db", 4, 0.0)

    def refuse_token() -> None:
        raise rs.RateLimited("api", 0.5)

    for body in (refuse_slot, refuse_token):
        with pytest.raises(rs.ResilienceError):
            twin.run(rs.monitored("refusals")(twin.wrap(body)))
    outcomes = rs.monitor.snapshot("refusals")["outcomes"]
    assert (1, 1) == (outcomes["bulkhead_full"], outcomes["rate_limited"])
