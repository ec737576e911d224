"""The OpenTelemetry exporter: instruments, attributes (semantic conventions), trace ids."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import resilience as rs
from resilience.exporters import otel

Points = dict[str, list[tuple[dict[str, Any], Any]]]


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    """A meter provider with an in-memory reader, and the exporter registered on it."""
    memory = InMemoryMetricReader()
    exporter = otel.register(MeterProvider(metric_readers=[memory]))
    yield memory
    exporter.close()


def collect(reader: InMemoryMetricReader) -> Points:
    """{instrument name: [(attributes, value or histogram point)]} after folding buffered calls."""
    rs.monitor.snapshot()
    data = reader.get_metrics_data()
    found: Points = {}
    for resource in data.resource_metrics if data is not None else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = [
                    (dict(point.attributes or {}), getattr(point, "value", point)) for point in metric.data.data_points
                ]
    return found


def traffic(clock: rs.testing.FakeClock) -> None:
    """On "users": two 0.2 s successes, one success after a retry, one timeout, one rejection."""
    script = iter([ConnectionError("blip")])

    def flaky() -> str:
        for exc in script:
            raise exc
        return "ok"

    ok = rs.monitored("users")(lambda: clock.advance(0.2))
    retried = rs.monitored("users")(rs.retry_on(ConnectionError, wait_initial=0)(flaky))
    timing_out = rs.monitored("users")(rs.timeout(1, mode="signal")(lambda: clock.sleep(2)))
    rejected = rs.monitored("users")(rs.circuit("users-cb")(lambda: None))
    ok()
    ok()
    retried()
    with pytest.raises(TimeoutError):
        timing_out()
    rs.circuit.get("users-cb").open()
    with pytest.raises(rs.CircuitOpenError):
        rejected()


def test_calls_counter_by_outcome_with_error_type(reader: InMemoryMetricReader, clock: rs.testing.FakeClock) -> None:
    """``resilience.calls``: lifetime counts per name and outcome; failures carry ``error.type``."""
    traffic(clock)
    calls = {tuple(sorted(attrs.items())): count for attrs, count in collect(reader)["resilience.calls"]}
    assert {
        (("resilience.name", "users"), ("resilience.outcome", "ok")): 3,
        (("error.type", "timeout"), ("resilience.name", "users"), ("resilience.outcome", "timeout")): 1,
        (("error.type", "circuit_open"), ("resilience.name", "users"), ("resilience.outcome", "circuit_open")): 1,
    } == calls


def test_duration_histogram_with_resend_count(reader: InMemoryMetricReader, clock: rs.testing.FakeClock) -> None:
    """``resilience.call.duration`` in seconds; a retried call carries ``http.request.resend_count``."""
    traffic(clock)
    points = collect(reader)["resilience.call.duration"]
    by_attributes = {tuple(sorted(attrs.items())): point for attrs, point in points}
    plain = by_attributes[(("resilience.name", "users"), ("resilience.outcome", "ok"))]
    assert (2, pytest.approx(0.4)) == (plain.count, plain.sum)
    retried = by_attributes[
        (("http.request.resend_count", 1), ("resilience.name", "users"), ("resilience.outcome", "ok"))
    ]
    assert 1 == retried.count
    timeout = by_attributes[
        (("error.type", "timeout"), ("resilience.name", "users"), ("resilience.outcome", "timeout"))
    ]
    assert (1, 1.0) == (timeout.count, timeout.sum)
    assert 0.005 == plain.explicit_bounds[0]


def test_retries_timeouts_and_circuit_state(reader: InMemoryMetricReader, clock: rs.testing.FakeClock) -> None:
    """Retries by reason, timeouts by kind, and a one-hot gauge of each breaker's state."""
    traffic(clock)
    found = collect(reader)
    assert [({"resilience.name": "users", "resilience.retry.reason": "ConnectionError"}, 1)] == found[
        "resilience.retries"
    ]
    assert [({"resilience.name": "users", "resilience.timeout.kind": "timeout"}, 1)] == found["resilience.timeouts"]
    states = {attrs["resilience.circuit.state"]: value for attrs, value in found["resilience.circuit.state"]}
    assert {"closed": 0, "open": 1, "half-open": 0} == states


def test_close_stops_reporting(clock: rs.testing.FakeClock) -> None:
    """After ``close()`` observations and the duration listener stop."""
    memory = InMemoryMetricReader()
    exporter = otel.register(MeterProvider(metric_readers=[memory]), durations=False)
    rs.monitored("svc")(lambda: None)()
    assert "resilience.call.duration" not in collect(memory)
    exporter.close()
    assert {} == {name: points for name, points in collect(memory).items() if points}


def test_failures_carry_the_current_span_trace_id(reader: InMemoryMetricReader) -> None:
    """With no ``rs.monitor.trace_id`` set, a failure records the trace id of the current span."""
    tracer = TracerProvider().get_tracer("test")
    fn = rs.monitored("svc")(lambda: 1 / 0)
    with tracer.start_as_current_span("request") as span:
        with pytest.raises(ZeroDivisionError):
            fn()
        expected = f"{span.get_span_context().trace_id:032x}"
    with pytest.raises(ZeroDivisionError):
        fn()
    assert [expected, None] == [event.trace_id for event in rs.monitor.recent_failures("svc")]
