"""``@monitored``'s logs: one structured record per failure on "resilience", nothing on success."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from helpers import call, log_fields

import resilience as rs
from resilience._engine import Args, Kwargs, Layer, current_record

FIELDS = ("call_name", "outcome", "duration", "attempts", "attempt", "timeout_kind", "status", "url", "trace_id")


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the monitor logged (not the retry or fallback layers, not asyncio)."""
    return [r for r in caplog.records if r.name == "resilience" and r.funcName == "_log"]


class Http(Layer):
    """A stand-in for the HTTP layer: puts a status and a URL on the call record."""

    def run_sync(self, fn: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
        record = current_record.get()
        assert record is not None
        record.status, record.url = 502, "http://payments.internal/charge"
        return fn(*args, **kwargs)

    async def run_async(self, fn: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
        self.run_sync(lambda: None, (), {})
        return await fn(*args, **kwargs)


def test_failure_record_carries_every_field(
    twin: Any, clock: rs.testing.FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A give-up logs one ERROR with name, outcome, duration, attempts, timeout kind, status, url, trace id."""
    caplog.set_level(logging.DEBUG)

    def body() -> None:
        raise ConnectionResetError("reset by peer")

    retry = rs.retry_on(ConnectionError, attempts=2, wait_initial=0.5, jitter=False)
    fn = rs.monitored("payments")(retry(Http()(twin.wrap(body))))
    with rs.monitor.trace_id.scope("4bf92f35"):
        call(twin, fn)
    [record] = ours(caplog)
    assert logging.ERROR == record.levelno
    fields = log_fields(record, *FIELDS)
    assert ("payments", "connection", 0.5, 2, 2, None, 502, "http://payments.internal/charge", "4bf92f35") == fields
    assert "payments failed after 0.5 s and 2 attempt(s): ConnectionResetError: reset by peer" == record.getMessage()


def test_timeout_on_one_attempt_is_a_warning(
    twin: Any, clock: rs.testing.FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A timeout is an expected event: WARNING, with its kind."""
    caplog.set_level(logging.DEBUG)
    call(twin, rs.monitored("svc")(rs.timeout(1, mode="signal")(twin.sleeping(2))))
    [record] = ours(caplog)
    assert (logging.WARNING, "timeout", "timeout", 1) == log_fields(
        record, "levelno", "outcome", "timeout_kind", "attempts"
    )


def test_timeout_after_retries_is_a_give_up(
    twin: Any, clock: rs.testing.FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """When retries ran out on timeouts, the monitor's record is an ERROR: the call gave up."""
    caplog.set_level(logging.DEBUG)
    inner = rs.retry_on(TimeoutError, attempts=2, wait_initial=0)(rs.timeout(1, mode="signal")(twin.sleeping(2)))
    call(twin, rs.monitored("svc")(inner))
    [record] = ours(caplog)
    assert (logging.ERROR, "timeout", 2) == log_fields(record, "levelno", "outcome", "attempts")


def test_retries_log_warnings_and_a_retried_success_logs_no_failure(
    twin: Any, clock: rs.testing.FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A retry is a WARNING (from the retry layer); a call that then succeeds adds no failure record."""
    caplog.set_level(logging.DEBUG)
    script = iter([ConnectionError("blip")])

    def body() -> str:
        for exc in script:
            raise exc
        return "ok"

    assert "ok" == twin.run(rs.monitored("svc")(rs.retry_on(ConnectionError, wait_initial=0)(twin.wrap(body))))
    assert [] == ours(caplog)
    assert [logging.WARNING] == [r.levelno for r in caplog.records if r.name == "resilience"]


def test_open_circuit_is_a_warning(twin: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A rejection by an open breaker is an expected event: WARNING."""
    caplog.set_level(logging.DEBUG)
    fn = rs.monitored("svc")(rs.circuit("svc")(twin.wrap(lambda: 1)))
    rs.circuit.get("svc").open()
    caplog.clear()
    call(twin, fn)
    [record] = ours(caplog)
    assert (logging.WARNING, "circuit_open") == log_fields(record, "levelno", "outcome")


def test_fallback_and_cancellation_are_not_logged_by_the_monitor(twin: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The fallback layer logs its own answer; a cancellation is the caller's choice: no monitor record."""
    caplog.set_level(logging.DEBUG)
    twin.run(rs.monitored("svc")(rs.fallback(0)(twin.wrap(lambda: 1 / 0))))
    assert [] == ours(caplog)
    assert 1 == len([r for r in caplog.records if r.name == "resilience"])


def test_nothing_is_logged_or_formatted_on_success(
    twin: Any, clock: rs.testing.FakeClock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Successes, with HTTP statuses and retries or not, log nothing at DEBUG and never ask the logger."""
    caplog.set_level(logging.DEBUG)
    asked: list[int] = []
    logger = logging.getLogger("resilience")
    real = logger.isEnabledFor

    def spy(level: int) -> bool:
        asked.append(level)
        return real(level)

    monkeypatch.setattr(logger, "isEnabledFor", spy)
    plain = rs.monitored("svc")(rs.retry_on(ConnectionError)(rs.circuit("svc")(twin.wrap(lambda: 1))))
    with_status = rs.monitored("svc")(Http()(twin.wrap(lambda: 2)))
    for _ in range(5):
        assert (1, 2) == (twin.run(plain), twin.run(with_status))
    assert [] == [r for r in caplog.records if r.name.startswith("resilience")]
    assert [] == asked


def test_disabled_logger_formats_nothing(twin: Any, caplog: pytest.LogCaptureFixture) -> None:
    """With the "resilience" logger above ERROR, a failure builds no log record at all."""
    logging.getLogger("resilience").setLevel(logging.CRITICAL)
    try:
        call(twin, rs.monitored("svc")(twin.wrap(lambda: 1 / 0)))
    finally:
        logging.getLogger("resilience").setLevel(logging.NOTSET)
    assert [] == ours(caplog)
    assert 1 == rs.monitor.snapshot("svc")["failed"]


class JsonFormatter(logging.Formatter):
    """A JSON formatter of the usual kind: the message plus the record's extra attributes."""

    standard = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)))

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in vars(record).items() if k not in self.standard and k != "message"}
        return json.dumps({"level": record.levelname, "message": record.getMessage(), **extra}, default=str)


def test_json_formatters_pick_the_fields_up(twin: Any) -> None:
    """A generic JSON formatter finds the structured fields, none colliding with LogRecord's own."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("resilience")
    logger.addHandler(handler)
    try:
        with rs.monitor.trace_id.scope("t-1"):
            call(twin, rs.monitored("svc")(twin.wrap(lambda: 1 / 0)))
    finally:
        logger.removeHandler(handler)
    [line] = lines
    data = json.loads(line)
    assert ("ERROR", "svc", "ZeroDivisionError", "t-1") == (
        data["level"],
        data["call_name"],
        data["outcome"],
        data["trace_id"],
    )
    assert set(FIELDS) <= set(data)
