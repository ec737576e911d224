"""``rs.monitor.health()``: healthy / degraded / unhealthy per name and overall, with reasons."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from helpers import call

import resilience as rs


def scripted(twin: Any, outcomes: str) -> Callable[..., Any]:
    """A function of ``twin``'s flavour that succeeds for each "o" and fails for each "x", in order."""
    script = iter(outcomes)

    def body() -> str:
        if next(script) == "x":
            raise ConnectionError("down")
        return "ok"

    wrapped: Callable[..., Any] = twin.wrap(body)
    return wrapped


def run_script(twin: Any, name: str, outcomes: str) -> None:
    """Call a monitored ``name`` once per letter of ``outcomes``."""
    fn = rs.monitored(name)(scripted(twin, outcomes))
    for _ in outcomes:
        call(twin, fn)


def roundtrip(value: dict[str, Any]) -> dict[str, Any]:
    """The value after a JSON round trip (health must be JSON-ready)."""
    result: dict[str, Any] = json.loads(json.dumps(value))
    return result


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [("o" * 10, "healthy"), ("o" * 9 + "x", "healthy"), ("o" * 8 + "xx", "degraded"), ("o" * 4 + "x" * 6, "unhealthy")],
)
def test_success_rate_thresholds(twin: Any, outcomes: str, status: str) -> None:
    """90 % success is healthy, below 90 % degraded, below 50 % unhealthy (the defaults)."""
    run_script(twin, "svc", outcomes)
    health = roundtrip(rs.monitor.health())
    assert status == health["names"]["svc"]["status"]
    assert status == health["status"]


def test_unhealthy_reason_names_the_numbers(twin: Any) -> None:
    """The reason says the rate, the window, the calls and the threshold; the overall reasons name the name."""
    run_script(twin, "svc", "o" * 3 + "x" * 7)
    health = roundtrip(rs.monitor.health())
    assert ["success rate 30% over the last 300 s (10 calls) is below 50%"] == health["names"]["svc"]["reasons"]
    assert ["svc is unhealthy"] == health["reasons"]
    assert (10, 10, 0.3, 7) == tuple(
        health["names"]["svc"][key] for key in ("calls", "recent_calls", "recent_success_rate", "recent_errors")
    )


def test_thresholds_object_and_overrides(twin: Any) -> None:
    """A ``HealthThresholds`` object and keyword overrides of its fields both set the thresholds."""
    run_script(twin, "svc", "o" * 7 + "xxx")
    strict = rs.monitor.HealthThresholds(unhealthy_success_rate=0.8)
    assert "unhealthy" == rs.monitor.health(strict)["status"]
    assert "degraded" == rs.monitor.health(strict, unhealthy_success_rate=0.5)["status"]
    assert "healthy" == rs.monitor.health(min_success_rate=0.6, unhealthy_success_rate=0.1)["status"]
    assert "healthy" == rs.monitor.health(min_calls=11)["status"]


def test_p95_thresholds(twin: Any, clock: rs.testing.FakeClock) -> None:
    """p95 over the window above ``max_p95`` degrades, above ``unhealthy_p95`` makes unhealthy."""
    fn = rs.monitored("slow")(twin.sleeping(0.4, "late"))
    for _ in range(10):
        twin.run(fn)
    assert "healthy" == rs.monitor.health()["status"]
    assert "degraded" == rs.monitor.health(max_p95=0.3)["status"]
    health = rs.monitor.health(max_p95=0.1, unhealthy_p95=0.3)
    assert "unhealthy" == health["status"]
    [reason] = health["names"]["slow"]["reasons"]
    assert reason.startswith("p95 latency 0.4") and reason.endswith("is above 0.3 s")


def test_recent_errors_thresholds_count_however_few_calls(twin: Any) -> None:
    """More failed calls in the window than ``max_recent_errors`` degrades, even below ``min_calls``."""
    run_script(twin, "svc", "xxx")
    assert "healthy" == rs.monitor.health(max_recent_errors=3)["status"]
    assert "degraded" == rs.monitor.health(max_recent_errors=2)["status"]
    health = rs.monitor.health(max_recent_errors=0, unhealthy_recent_errors=2)
    assert "unhealthy" == health["names"]["svc"]["status"]
    assert ["3 failed calls over the last 300 s (3 calls), more than 2"] == health["names"]["svc"]["reasons"]


def test_open_breaker_severity_is_configurable(twin: Any) -> None:
    """An open breaker of the same name degrades by default, or makes unhealthy with ``open_circuit``."""
    fn = rs.monitored("pay")(rs.circuit("pay")(twin.wrap(lambda: "paid")))
    twin.run(fn)
    rs.circuit.get("pay").open()
    assert "degraded" == rs.monitor.health()["names"]["pay"]["status"]
    health = roundtrip(rs.monitor.health(open_circuit="unhealthy"))
    assert ("unhealthy", "open") == (health["names"]["pay"]["status"], health["names"]["pay"]["circuit"])
    assert ["circuit 'pay' is open"] == health["names"]["pay"]["reasons"]


def test_half_open_breaker_degrades(twin: Any, clock: rs.testing.FakeClock) -> None:
    """A half-open breaker degrades its name, whatever ``open_circuit`` says."""
    fn = rs.monitored("pay")(rs.circuit("pay", fail_max=1, reset_timeout=5)(twin.wrap(lambda: "paid")))
    twin.run(fn)
    rs.circuit.get("pay").open()
    clock.advance(6)
    rs.circuit.get("pay").acquire()  # admits a trial: half-open
    health = rs.monitor.health(open_circuit="unhealthy")
    assert ("degraded", ["circuit 'pay' is half-open"]) == (
        health["names"]["pay"]["status"],
        health["names"]["pay"]["reasons"],
    )


def test_overall_status_is_the_worst(twin: Any) -> None:
    """Overall: the worst of the names and of open breakers no name is monitored under."""
    run_script(twin, "good", "o" * 10)
    run_script(twin, "meh", "o" * 8 + "xx")
    assert ("degraded", ["meh is degraded"]) == (rs.monitor.health()["status"], rs.monitor.health()["reasons"])
    rs.circuit("lonely")
    rs.circuit.get("lonely").open()
    health = rs.monitor.health(open_circuit="unhealthy")
    assert "unhealthy" == health["status"]
    assert ["meh is degraded", "lonely is unhealthy"] == health["reasons"]
    assert {"lonely": "open"} == health["circuits"]


def test_failures_leave_health_with_the_window(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Failures older than the window no longer count: the name is healthy again."""
    run_script(twin, "svc", "x" * 10)
    assert "unhealthy" == rs.monitor.health()["status"]
    clock.advance(400)
    health = rs.monitor.health()
    assert ("healthy", 0, 10) == (
        health["status"],
        health["names"]["svc"]["recent_calls"],
        health["names"]["svc"]["calls"],
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_calls", 0),
        ("min_success_rate", 1.5),
        ("unhealthy_success_rate", -0.1),
        ("max_p95", 0),
        ("unhealthy_p95", -1.0),
        ("max_recent_errors", -1),
        ("open_circuit", "broken"),
    ],
)
def test_bad_thresholds_are_rejected(field: str, value: Any) -> None:
    """Each threshold is validated, and the error names it."""
    with pytest.raises((ValueError, TypeError), match=field):
        rs.monitor.HealthThresholds(**{field: value})


def test_unknown_override_is_a_type_error() -> None:
    """A keyword that is no threshold is an error, not silently ignored."""
    with pytest.raises(TypeError, match="max_p99"):
        rs.monitor.health(max_p99=1.0)
