"""``rs.monitored(name, on_alert=...)``: alerts, their content, cooldown and recovery, on a fake clock."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from helpers import call

import resilience as rs
from resilience._engine import Args, Kwargs, Layer, current_record


class Http(Layer):
    """A stand-in for the HTTP layer: puts a status and a URL on the call record."""

    def __init__(self, status: int, url: str) -> None:
        self.status, self.url = status, url

    def run_sync(self, fn: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
        record = current_record.get()
        assert record is not None
        record.status, record.url = self.status, self.url
        return fn(*args, **kwargs)

    async def run_async(self, fn: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
        return self.run_sync(lambda: None, (), {}) or await fn(*args, **kwargs)


class Service:
    """A monitored dependency whose next calls succeed or fail as the test says; its alerts go to ``alerts``."""

    def __init__(self, twin: Any, clock: rs.testing.FakeClock, **options: Any) -> None:
        self.twin = twin
        self.clock = clock
        self.failing = False
        self.alerts: list[rs.monitor.Alert] = []
        options = {"alert_min_calls": 4, "alert_window": 60.0, "alert_cooldown": 300.0, **options}

        def body() -> str:
            if self.failing:
                raise ConnectionError("reset by peer")
            return "ok"

        inner = Http(503, "http://users.internal/v1/users/7")(twin.wrap(body))
        self.fn = rs.monitored("users", on_alert=self.alerts.append, **options)(inner)

    def calls(self, outcomes: str, *, every: float = 1.0) -> None:
        """One call per letter, "o" succeeding and "x" failing, ``every`` fake seconds apart."""
        for letter in outcomes:
            self.failing = letter == "x"
            call(self.twin, self.fn)
            self.clock.advance(every)


def test_alert_fires_when_the_failure_rate_reaches_the_threshold(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Two failures in four calls reach 50 %: one Alert, with the rate, counts, threshold and window."""
    service = Service(twin, clock)
    service.calls("oox")
    assert [] == service.alerts  # 1 of 3 failed, and fewer than alert_min_calls
    service.calls("x")
    [alert] = service.alerts
    assert ("users", False, 0.5, 4, 2, 0.5, 60.0) == (
        alert.name,
        alert.recovered,
        alert.failure_rate,
        alert.calls,
        alert.failures,
        alert.threshold,
        alert.window,
    )
    assert 1_700_000_003.0 == alert.at
    assert "users: failure rate 50% over the last 60 s (2 of 4 calls failed, 0 timeouts) reached 50%" == alert.message


def test_alert_carries_the_last_five_failures(twin: Any, clock: rs.testing.FakeClock) -> None:
    """``Alert.recent``: time, name, url, duration, status, error and trace id of the last five failures."""
    service = Service(twin, clock, alert_min_calls=7, alert_failure_rate=0.9)
    for index in range(7):
        with rs.monitor.trace_id.scope(f"trace-{index}"):
            service.calls("x")
    [alert] = service.alerts
    assert [f"trace-{index}" for index in range(2, 7)] == [event.trace_id for event in alert.recent]
    first = alert.recent[0]
    assert (
        1_700_000_002.0,
        "users",
        "http://users.internal/v1/users/7",
        0.0,
        503,
        "reset by peer",
        "ConnectionError",
        "connection",
    ) == (first.at, first.name, first.url, first.duration, first.status, first.error, first.error_type, first.outcome)
    data = json.loads(json.dumps(alert.as_dict()))
    assert 5 == len(data["recent"])
    assert "trace-6" == data["recent"][-1]["trace_id"]


def test_timeouts_are_counted_in_the_alert(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Timeouts count as failures, and the alert says how many of them there were."""
    alerts: list[rs.monitor.Alert] = []
    fn = rs.monitored("slow", on_alert=alerts.append, alert_min_calls=2)(rs.timeout(1, mode="signal")(twin.sleeping(2)))
    ok = rs.monitored("slow")(twin.wrap(lambda: "fast"))
    twin.run(ok)
    call(twin, fn)
    call(twin, fn)
    [alert] = alerts
    assert (2, 1, 1, 0.5) == (alert.calls, alert.failures, alert.timeouts, alert.timeout_rate)


def test_no_alert_below_min_calls(twin: Any, clock: rs.testing.FakeClock) -> None:
    """However many of them fail, fewer than ``alert_min_calls`` calls in the window raise no alert."""
    service = Service(twin, clock, alert_min_calls=20)
    service.calls("x" * 19)
    assert [] == service.alerts
    service.calls("x")
    assert 1 == len(service.alerts)


def test_recovery_notice_when_the_rate_falls_back(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Once fired, the first call that brings the rate below the threshold sends one recovery notice."""
    service = Service(twin, clock)
    service.calls("xxxx")
    service.calls("ooo")
    assert [False] == [alert.recovered for alert in service.alerts]
    service.calls("o")  # 4 of 8 failed: still 50 %
    service.calls("o")  # 4 of 9: below
    assert [False, True] == [alert.recovered for alert in service.alerts]
    recovery = service.alerts[1]
    assert (9, 4) == (recovery.calls, recovery.failures)
    assert pytest.approx(4 / 9) == recovery.failure_rate
    assert recovery.message.startswith("users recovered: failure rate 44% over the last 60 s (9 calls)")
    service.calls("oooo")
    assert 2 == len(service.alerts)


def test_recovery_when_failures_age_out_of_the_window(twin: Any, clock: rs.testing.FakeClock) -> None:
    """With no traffic, the window empties: reading the numbers sends the recovery notice."""
    service = Service(twin, clock)
    service.calls("xxxx")
    clock.advance(200)
    rs.monitor.health()
    assert [False, True] == [alert.recovered for alert in service.alerts]
    assert (0, 0.0) == (service.alerts[1].calls, service.alerts[1].failure_rate)


def test_at_most_one_alert_per_cooldown(twin: Any, clock: rs.testing.FakeClock) -> None:
    """After an alert and its recovery, failing again within the cooldown sends nothing; after it, a new alert."""
    service = Service(twin, clock, alert_cooldown=300.0)
    service.calls("xxxx")  # alert at t=3
    service.calls("o" * 10)  # recovery
    clock.advance(100)
    service.calls("xxxx" * 3)  # fails again within 300 s of the alert: quiet
    assert [False, True] == [alert.recovered for alert in service.alerts]
    clock.advance(300 - (clock.monotonic() - 1_003.0))  # the cooldown is over
    service.calls("xxxx")
    assert [False, True, False] == [alert.recovered for alert in service.alerts]
    assert 1_700_000_303.0 + 3 == service.alerts[2].at


def test_same_callback_declared_twice_alerts_once(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Two functions monitored under one name with the same callback and thresholds share one rule."""
    alerts: list[rs.monitor.Alert] = []
    first = rs.monitored("svc", on_alert=alerts.append, alert_min_calls=2)(twin.wrap(lambda: 1 / 0))
    second = rs.monitored("svc", on_alert=alerts.append, alert_min_calls=2)(twin.wrap(lambda: 1 / 0))
    call(twin, first)
    call(twin, second)
    assert 1 == len(alerts)


def test_a_raising_callback_never_changes_the_outcome(
    twin: Any, clock: rs.testing.FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The call still raises its own error (and later returns its value) when ``on_alert`` raises; it is logged."""

    def broken(alert: rs.monitor.Alert) -> None:
        raise RuntimeError("pager down")

    fn = rs.monitored("svc", on_alert=broken, alert_min_calls=1)(twin.wrap(lambda fail: 1 / 0 if fail else "fine"))
    with pytest.raises(ZeroDivisionError):
        twin.run(fn, True)
    assert ["fine", "fine"] == [twin.run(fn, False), twin.run(fn, False)]  # the second one recovers
    messages = [r.getMessage() for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert 2 == len(messages)
    assert all("raised; ignored" in message for message in messages)


def test_trace_id_follows_tasks(clock: rs.testing.FakeClock) -> None:
    """Each asyncio task's failures carry the trace id set in that task."""
    fn = rs.monitored("svc")(lambda: 1 / 0)

    async def request(trace: str) -> None:
        rs.monitor.trace_id.set(trace)
        await asyncio.sleep(0)
        with pytest.raises(ZeroDivisionError):
            fn()

    async def main() -> None:
        await asyncio.gather(request("a"), request("b"))

    asyncio.run(main())
    assert ["a", "b"] == sorted(event.trace_id or "" for event in rs.monitor.recent_failures("svc"))
    assert None is rs.monitor.trace_id.get()


def test_trace_id_set_and_reset() -> None:
    """``trace_id.set`` returns a token that ``reset`` undoes; ``.var`` is the ContextVar underneath."""
    token = rs.monitor.trace_id.set("abc")
    assert ("abc", "abc") == (rs.monitor.trace_id.get(), rs.monitor.trace_id.var.get())
    rs.monitor.trace_id.reset(token)
    assert None is rs.monitor.trace_id.get()


def test_trace_id_provider_is_asked_when_unset(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider (the OTel exporter installs one) answers when no trace id is set; one that raises is ignored."""
    monkeypatch.setattr(rs.monitor.trace_id, "provider", lambda: "from-span")
    assert "from-span" == rs.monitor.trace_id.get()
    with rs.monitor.trace_id.scope("explicit"):
        assert "explicit" == rs.monitor.trace_id.get()
    monkeypatch.setattr(rs.monitor.trace_id, "provider", lambda: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert None is rs.monitor.trace_id.get()
    assert ["trace id provider"] == [r.getMessage()[:17] for r in caplog.records]


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"on_alert": "print"}, TypeError, "on_alert"),
        ({"on_alert": print, "alert_failure_rate": 0}, ValueError, "alert_failure_rate"),
        ({"on_alert": print, "alert_failure_rate": 1.5}, ValueError, "alert_failure_rate"),
        ({"on_alert": print, "alert_failure_rate": "half"}, TypeError, "alert_failure_rate"),
        ({"on_alert": print, "alert_window": 0}, ValueError, "alert_window"),
        ({"on_alert": print, "alert_min_calls": 0}, ValueError, "alert_min_calls"),
        ({"on_alert": print, "alert_cooldown": -1}, ValueError, "alert_cooldown"),
    ],
)
def test_bad_alert_options_fail_at_decoration(options: dict[str, Any], error: type[Exception], match: str) -> None:
    """Alert parameters are checked when ``monitored()`` is called, naming the parameter."""
    with pytest.raises(error, match=match):
        rs.monitored("svc", **options)


def test_async_callback_is_rejected() -> None:
    """``on_alert`` runs inside the failing call's bookkeeping: a coroutine function would never be awaited."""

    async def notify(alert: rs.monitor.Alert) -> None:
        pass

    with pytest.raises(TypeError, match="on_alert"):
        rs.monitored("svc", on_alert=notify)


def test_unnamed_monitor_alerts_under_the_function_name(clock: rs.testing.FakeClock) -> None:
    """Without a name, alerts come under the function's ``module.qualname``."""
    alerts: list[rs.monitor.Alert] = []

    @rs.monitored(on_alert=alerts.append, alert_min_calls=1)
    def flaky() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        flaky()
    [alert] = alerts
    assert alert.name.endswith("test_unnamed_monitor_alerts_under_the_function_name.<locals>.flaky")


def test_rules_survive_reset_and_go_with_their_functions(clock: rs.testing.FakeClock) -> None:
    """``rs.testing.reset()`` keeps a live function's alerting (state cleared); a collected function's rule goes."""
    alerts: list[rs.monitor.Alert] = []
    fn = rs.monitored("svc-rules-lifetime", on_alert=alerts.append, alert_min_calls=1)(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        fn()
    rs.testing.reset()
    with pytest.raises(ZeroDivisionError):
        fn()
    assert [False, False] == [alert.recovered for alert in alerts]
    del fn
    gc.collect()
    stats = rs.monitor.default.stats("svc-rules-lifetime")
    assert 0 == len(stats.rules)
    other = rs.monitored("svc-rules-lifetime")(lambda: "ok")
    other()
    assert (2, False) == (len(alerts), stats.firing)


def test_alert_window_shorter_than_a_registry_bucket_is_rejected() -> None:
    """A 10 s alert window on 30 s buckets would count calls up to 40 s old: refused, naming alert_window."""
    with pytest.raises(ValueError, match="alert_window must be at least the registry's time bucket of 30 s"):
        rs.monitored("svc", on_alert=print, alert_window=10)


def test_short_alert_window_on_a_registry_with_short_buckets(clock: rs.testing.FakeClock) -> None:
    """With 1 s buckets a 10 s alert window forgets failures 30 s old: the rate recovers."""
    alerts: list[rs.monitor.Alert] = []
    registry = rs.monitor.Registry(window=60, buckets=60)
    fn = rs.monitored("w", registry=registry, on_alert=alerts.append, alert_window=10, alert_min_calls=4)(
        lambda fail: (_ for _ in ()).throw(ConnectionError()) if fail else None
    )
    for _ in range(20):
        with contextlib.suppress(ConnectionError):
            fn(True)
    clock.advance(29.9)
    for _ in range(10):
        fn(False)
    assert [(False, 4, 4), (True, 1, 0)] == [(a.recovered, a.calls, a.failures) for a in alerts]
