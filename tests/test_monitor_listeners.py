"""Monitor listeners: your own sinks for calls, failures and alerts."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from helpers import call

import resilience as rs
from resilience import _monitor_stats


class Sink(rs.monitor.Listener):
    """Keeps what it hears."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[float]]] = []
        self.events: list[rs.monitor.CallEvent] = []
        self.alerts: list[rs.monitor.Alert] = []

    def on_calls(self, name: str, durations: Sequence[float]) -> None:
        self.batches.append((name, list(durations)))

    def on_call(self, event: rs.monitor.CallEvent) -> None:
        self.events.append(event)

    def on_alert(self, alert: rs.monitor.Alert) -> None:
        self.alerts.append(alert)

    def successes(self) -> list[float]:
        return [d for _, batch in self.batches for d in batch]


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A listener on the default registry for the duration of one test."""
    listener = Sink()
    rs.monitor.add_listener(listener)
    yield listener
    rs.monitor.remove_listener(listener)


def test_successes_arrive_in_batches_when_read(twin: Any, clock: rs.testing.FakeClock, sink: Sink) -> None:
    """Plain successes reach ``on_calls`` in batches, at the latest when the numbers are read."""
    fn = rs.monitored("svc")(twin.sleeping(0.25, "ok"))
    for _ in range(5):
        twin.run(fn)
    rs.monitor.snapshot("svc")
    assert [0.25] * 5 == sink.successes()
    assert {"svc"} == {name for name, _ in sink.batches}
    assert [] == sink.events


def test_successes_arrive_within_the_fold_interval(clock: rs.testing.FakeClock, sink: Sink) -> None:
    """While calls keep coming, buffered successes are delivered about every FOLD_INTERVAL."""
    fn = rs.monitored("svc")(lambda: clock.advance(0.001))
    fn()
    delivered = len(sink.successes())
    for _ in range(10):
        fn()
    assert delivered == len(sink.successes())
    clock.advance(_monitor_stats.FOLD_INTERVAL)
    fn()
    assert 12 == len(sink.successes())


def test_other_calls_arrive_one_by_one(twin: Any, clock: rs.testing.FakeClock, sink: Sink) -> None:
    """Failures, fallbacks and retried successes reach ``on_call`` as they end, with their details."""
    script = iter([ConnectionError("blip")])

    def flaky() -> str:
        for exc in script:
            raise exc
        return "ok"

    call(twin, rs.monitored("svc")(twin.wrap(lambda: 1 / 0)))
    twin.run(rs.monitored("svc")(rs.fallback("cached")(twin.wrap(lambda: 1 / 0))))
    twin.run(rs.monitored("svc")(rs.retry_on(ConnectionError, wait_initial=0)(twin.wrap(flaky))))
    assert [("ZeroDivisionError", 1), ("fallback", 1), ("ok", 2)] == [(e.outcome, e.attempts) for e in sink.events]
    assert [True, True, False] == [event.failed for event in sink.events]
    assert ("ConnectionError",) == sink.events[2].retry_reasons


def test_alerts_reach_listeners(twin: Any, clock: rs.testing.FakeClock, sink: Sink) -> None:
    """Every alert and recovery notice also goes to listeners' ``on_alert``."""
    fn = rs.monitored("svc", on_alert=lambda alert: None, alert_min_calls=1)(twin.wrap(lambda: 1 / 0))
    call(twin, fn)
    assert [("svc", False)] == [(alert.name, alert.recovered) for alert in sink.alerts]


def test_a_raising_listener_never_changes_the_outcome(twin: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The call returns its value or raises its own error whatever a listener raises; it is logged."""

    class Broken(rs.monitor.Listener):
        def on_calls(self, name: str, durations: Sequence[float]) -> None:
            raise RuntimeError("sink down")

        def on_call(self, event: rs.monitor.CallEvent) -> None:
            raise RuntimeError("sink down")

    broken = Broken()
    rs.monitor.add_listener(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="resilience"):
            assert "ok" == twin.run(rs.monitored("svc")(twin.wrap(lambda: "ok")))
            with pytest.raises(ZeroDivisionError):
                twin.run(rs.monitored("svc")(twin.wrap(lambda: 1 / 0)))
            assert 2 == rs.monitor.snapshot("svc")["calls"]
    finally:
        rs.monitor.remove_listener(broken)
    raised = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert 2 == len(raised)


def test_any_object_with_a_listener_method_will_do(twin: Any) -> None:
    """Duck typing: an object with only ``on_call`` is accepted; one with none of the methods is not."""
    seen: list[str] = []

    class OnlyFailures:
        def on_call(self, event: rs.monitor.CallEvent) -> None:
            seen.append(event.outcome)

    listener = OnlyFailures()
    rs.monitor.add_listener(listener)
    rs.monitor.add_listener(listener)  # twice is once
    try:
        call(twin, rs.monitored("svc")(twin.wrap(lambda: 1 / 0)))
        twin.run(rs.monitored("svc")(twin.wrap(lambda: 1)))
        rs.monitor.snapshot()
    finally:
        rs.monitor.remove_listener(listener)
    assert ["ZeroDivisionError"] == seen
    with pytest.raises(TypeError, match="on_calls, on_call, on_alert"):
        rs.monitor.add_listener(object())
    with pytest.raises(TypeError, match="listener"):
        rs.monitor.add_listener(Sink)


def test_listeners_belong_to_their_registry(twin: Any) -> None:
    """A listener on a private Registry hears that registry's calls only; removed, it hears nothing."""
    registry = rs.monitor.Registry()
    private = Sink()
    rs.monitor.add_listener(private, registry=registry)
    call(twin, rs.monitored("svc")(twin.wrap(lambda: 1 / 0)))
    call(twin, rs.monitored("svc", registry=registry)(twin.wrap(lambda: 1 / 0)))
    assert 1 == len(private.events)
    rs.monitor.remove_listener(private, registry=registry)
    call(twin, rs.monitored("svc", registry=registry)(twin.wrap(lambda: 1 / 0)))
    assert 1 == len(private.events)


def test_buffered_successes_reach_listeners_at_exit() -> None:
    """Successes still buffered when the process exits are handed to listeners by an exit hook."""
    script = textwrap.dedent(
        """
        import atexit
        import resilience as rs
        seen = []
        atexit.register(lambda: print(len(seen)))  # registered first: runs after resilience's hook
        class Sink(rs.monitor.Listener):
            def on_calls(self, name, durations):
                seen.extend(durations)
        rs.monitor.add_listener(Sink())
        ok = rs.monitored("svc")(lambda: 1)
        for _ in range(100):
            ok()
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (0, "100") == (done.returncode, done.stdout.strip()), done.stderr
