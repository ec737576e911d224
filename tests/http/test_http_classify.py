"""http.classify / http.TRANSIENT: the classification table, on built objects (pure units)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import urllib3.exceptions
from requests import exceptions as rex

import resilience as rs
from resilience import http
from resilience.classify import Outcome


def _request(method: str = "GET", headers: dict[str, str] | None = None) -> requests.PreparedRequest:
    return requests.Request(method, "http://127.0.0.1/x", headers=headers or {}).prepare()


def _response(status: int, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b"{}") -> Any:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response.request = _request(method)
    response._content = body
    return response


def _refused(method: str = "GET") -> rex.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")  # type: ignore[arg-type]
    wrapped = urllib3.exceptions.MaxRetryError(None, "/x", reason)  # type: ignore[arg-type]
    return rex.ConnectionError(wrapped, request=_request(method))


def _dns(method: str = "GET") -> rex.ConnectionError:
    try:
        raise socket.gaierror(-2, "Name or service not known")
    except socket.gaierror as cause:
        try:
            raise rex.ConnectionError("lookup failed", request=_request(method)) from cause
        except rex.ConnectionError as exc:
            return exc


def _reset(method: str = "GET") -> rex.ConnectionError:
    cause = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))
    return rex.ConnectionError(cause, request=_request(method))


ANY_METHOD = [
    ("connect timeout", lambda m: rex.ConnectTimeout(request=_request(m)), True, "connect_timeout"),
    ("refused", _refused, True, "connection_failed"),
    ("dns failure", _dns, True, "connection_failed"),
    ("429", lambda m: _response(429, m), False, "status_429"),
    ("503", lambda m: _response(503, m), True, "status_503"),
    ("raised 503", lambda m: rex.HTTPError(response=_response(503, m)), True, "status_503"),
]
IDEMPOTENT_ONLY = [
    ("read timeout", lambda m: rex.ReadTimeout(request=_request(m)), True, "read_timeout"),
    ("reset mid-request", _reset, True, "connection_broken"),
    ("chunked encoding", lambda m: rex.ChunkedEncodingError(request=_request(m)), True, "chunked_encoding"),
    ("408", lambda m: _response(408, m), False, "status_408"),
    ("500", lambda m: _response(500, m), True, "status_500"),
    ("502", lambda m: _response(502, m), True, "status_502"),
    ("504", lambda m: _response(504, m), True, "status_504"),
    ("raised 500", lambda m: rex.HTTPError(response=_response(500, m)), True, "status_500"),
    ("other 5xx", lambda m: _response(599, m), True, "status_599"),
]
_IDS_IDEMPOTENT = [row[0] for row in IDEMPOTENT_ONLY]
FATAL = [
    ("404", lambda m: _response(404, m), "status_404"),
    ("400", lambda m: _response(400, m), "status_400"),
    ("raised 404", lambda m: rex.HTTPError(response=_response(404, m)), "status_404"),
    ("501", lambda m: _response(501, m), "status_501"),
    ("505", lambda m: _response(505, m), "status_505"),
    ("ssl", lambda m: rex.SSLError(request=_request(m)), "ssl"),
    ("invalid url", lambda m: rex.InvalidURL("bad"), "invalid_url"),
    ("missing schema", lambda m: rex.MissingSchema("bad"), "invalid_url"),
    ("invalid schema", lambda m: rex.InvalidSchema("bad"), "invalid_url"),
    ("invalid header", lambda m: rex.InvalidHeader("bad"), "invalid_header"),
    ("too many redirects", lambda m: rex.TooManyRedirects(request=_request(m)), "too_many_redirects"),
    ("business", lambda m: http.BusinessError("insufficient funds"), "business"),
]


def _classify(make: Any, method: str) -> rs.Verdict:
    made = make(method)
    outcome = Outcome.of_exception(made) if isinstance(made, BaseException) else Outcome(made)
    return http.classify(outcome)


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH"])
@pytest.mark.parametrize(("label", "make", "counts", "reason"), ANY_METHOD, ids=[row[0] for row in ANY_METHOD])
def test_retried_for_every_method(label: str, make: Any, counts: bool, reason: str, method: str) -> None:
    """Failures that never reached the server (or that it refused) are retried whatever the method."""
    verdict = _classify(make, method)
    assert (True, True, counts, reason) == (verdict.failed, verdict.retryable, verdict.counts, verdict.reason)


@pytest.mark.parametrize("method", sorted(http.IDEMPOTENT_METHODS))
@pytest.mark.parametrize(
    ("label", "make", "counts", "reason"), IDEMPOTENT_ONLY, ids=[row[0] for row in IDEMPOTENT_ONLY]
)
def test_retried_for_idempotent_methods(label: str, make: Any, counts: bool, reason: str, method: str) -> None:
    """Failures after which the server may have acted are retried for idempotent methods."""
    verdict = _classify(make, method)
    assert (True, True, counts, reason) == (verdict.failed, verdict.retryable, verdict.counts, verdict.reason)


@pytest.mark.parametrize("method", ["POST", "PATCH", "CONNECT"])
@pytest.mark.parametrize(
    ("label", "make", "counts", "reason"), IDEMPOTENT_ONLY, ids=[row[0] for row in IDEMPOTENT_ONLY]
)
def test_not_retried_for_other_methods(label: str, make: Any, counts: bool, reason: str, method: str) -> None:
    """The same failures on a POST are not retried (the card may be charged), still counted, and say why."""
    verdict = _classify(make, method)
    assert (True, False, counts) == (verdict.failed, verdict.retryable, verdict.counts)
    assert verdict.detail is not None and method in verdict.detail


def test_idempotency_key_makes_a_post_retryable() -> None:
    """A POST carrying an Idempotency-Key (any case) is retried like a GET."""
    exc = rex.ReadTimeout(request=_request("POST", {"idempotency-key": "k1"}))
    assert http.classify(Outcome.of_exception(exc)).retryable


def test_unknown_request_is_not_idempotent() -> None:
    """Without a request to read the method from, a mid-request failure is not retried."""
    assert not http.classify(Outcome.of_exception(rex.ReadTimeout())).retryable


@pytest.mark.parametrize(("label", "make", "reason"), FATAL, ids=[row[0] for row in FATAL])
def test_fatal_never_retried_never_counted(label: str, make: Any, reason: str) -> None:
    """Client errors, permanent server answers and broken requests: never retried, never counted."""
    verdict = _classify(make, "GET")
    assert (True, False, False, reason) == (verdict.failed, verdict.retryable, verdict.counts, verdict.reason)


@pytest.mark.parametrize("error", [rex.JSONDecodeError, json.JSONDecodeError])
def test_json_decode_error_keeps_the_body(error: type[json.JSONDecodeError]) -> None:
    """A body that is not JSON is fatal, and the verdict keeps its first 500 characters."""
    body = "<html>" + "x" * 1000
    verdict = http.classify(Outcome.of_exception(error("Expecting value", body, 0)))
    assert (False, False, "invalid_json") == (verdict.retryable, verdict.counts, verdict.reason)
    assert body[:500] == verdict.detail


@pytest.mark.parametrize("status", [200, 201, 204, 301, 304])
def test_success_statuses(status: int) -> None:
    """1xx-3xx responses are successes, and TRANSIENT has no opinion on them."""
    assert rs.Verdict(failed=False, reason="ok") == http.classify(Outcome(_response(status)))
    assert None is http.TRANSIENT(Outcome(_response(status)))


def test_non_http_outcomes() -> None:
    """TRANSIENT has no opinion on other errors (so `|` can add rules); classify calls them fatal."""
    outcome = Outcome.of_exception(KeyError("x"))
    assert None is http.TRANSIENT(outcome)
    assert (True, False) == (http.classify(outcome).failed, http.classify(outcome).retryable)
    assert http.classify(Outcome(42)).failed is False
    combined = http.TRANSIENT | KeyError
    verdict = combined(outcome)
    assert verdict is not None and verdict.retryable


def test_deadline_counts_but_is_not_retried() -> None:
    """Running out of the deadline is the server's slowness (counted) and retrying cannot help."""
    verdict = http.classify(Outcome.of_exception(rs.DeadlineExceeded(1.0, 1.0, deadline=5.0)))
    assert (True, False, True, "deadline") == (verdict.failed, verdict.retryable, verdict.counts, verdict.reason)


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("0", 0.0), ("1.5", 1.5), (" 7 ", 7.0)])
def test_retry_after_seconds(header: str, expected: float) -> None:
    """Retry-After as delta-seconds lands in the verdict."""
    verdict = http.classify(Outcome(_response(503, headers={"Retry-After": header})))
    assert expected == verdict.retry_after


def test_retry_after_http_date(clock: rs.testing.FakeClock) -> None:
    """Retry-After as an HTTP-date is read against the resilience wall clock."""
    when = datetime.fromtimestamp(clock.time() + 120, tz=UTC)
    verdict = http.classify(Outcome(_response(429, headers={"Retry-After": format_datetime(when, usegmt=True)})))
    assert verdict.retry_after is not None and 119 <= verdict.retry_after <= 120


@pytest.mark.parametrize("header", ["soon", "-1", "nan", "inf", "", "Mon, 99 Foo 2020"])
def test_unreadable_retry_after_is_ignored(header: str) -> None:
    """An unreadable Retry-After is ignored, never an error."""
    assert None is http.parse_retry_after(header)


def test_retry_after_in_the_past_is_zero(clock: rs.testing.FakeClock) -> None:
    """A date already passed asks for no wait."""
    when = datetime.fromtimestamp(clock.time() - 3600, tz=UTC)
    assert 0.0 == http.parse_retry_after(format_datetime(when, usegmt=True))


def test_retry_after_only_on_retryable_verdicts() -> None:
    """A POST's 500 is not retried, so its Retry-After is not reported either."""
    verdict = http.classify(Outcome(_response(500, "POST", headers={"Retry-After": "5"})))
    assert None is verdict.retry_after


def test_tables_are_extensible() -> None:
    """The tables are public data read at each classification: adding a method changes the rules."""
    outcome = Outcome.of_exception(rex.ReadTimeout(request=_request("PROPFIND")))
    assert not http.classify(outcome).retryable
    http.IDEMPOTENT_METHODS.add("PROPFIND")
    try:
        assert http.classify(outcome).retryable
    finally:
        http.IDEMPOTENT_METHODS.discard("PROPFIND")


def test_business_hook_flags_a_2xx_body() -> None:
    """A business hook turns a 2xx body into a fatal, uncounted verdict that keeps the message."""
    classifier = http.transient(business=lambda body: body.get("msg") if body.get("code") else None)
    flagged = classifier(Outcome(_response(200, body=b'{"code": 4001, "msg": "insufficient funds"}')))
    assert flagged is not None
    assert (True, False, False, "business", "insufficient funds") == (
        flagged.failed,
        flagged.retryable,
        flagged.counts,
        flagged.reason,
        flagged.detail,
    )
    assert None is classifier(Outcome(_response(200, body=b'{"code": 0}')))
    assert None is classifier(Outcome(_response(200, body=b"not json")))
    assert http.classify(Outcome({"code": 1, "msg": "no"}), business=lambda b: b["msg"]).reason == "business"


def test_a_raising_business_hook_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A business hook that raises is logged and has no opinion."""

    def broken(body: Any) -> str:
        raise RuntimeError("bug in hook")

    assert None is http.transient(business=broken)(Outcome(_response(200)))
    assert "business hook" in caplog.text


def test_bad_arguments() -> None:
    """classify() needs an Outcome; business= must be callable."""
    with pytest.raises(TypeError, match="Outcome"):
        http.classify(_response(200))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="business"):
        http.transient(business="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="business"):
        http.classify(Outcome(_response(200)), business=5)  # type: ignore[arg-type]


def test_transient_is_accepted_by_retry_and_circuit() -> None:
    """TRANSIENT plugs into rs.retry_on and rs.circuit(on=...)."""
    rs.retry_on(http.TRANSIENT)
    rs.circuit("classify-accepted", on=http.TRANSIENT)
    assert "http.TRANSIENT" in repr(http.TRANSIENT)


def test_retry_after_asctime_date(clock: rs.testing.FakeClock) -> None:
    """Retry-After in asctime form (no zone) is read as GMT, as RFC 9110 requires."""
    when = datetime.fromtimestamp(clock.time() + 60, tz=UTC)
    seconds = http.parse_retry_after(when.strftime("%a %b %d %H:%M:%S %Y"))
    assert seconds is not None and 59 <= seconds <= 60


def test_deadline_of_an_idempotent_request_is_retryable() -> None:
    """A DeadlineExceeded the Session raised for a GET is retryable; for a POST it is not."""
    exc = rs.DeadlineExceeded(None, 0.1, deadline=5.0, kind="deadline")
    exc.request = _request("GET")  # type: ignore[attr-defined]
    assert http.classify(Outcome.of_exception(exc)).retryable
    exc.request = _request("POST")  # type: ignore[attr-defined]
    assert not http.classify(Outcome.of_exception(exc)).retryable
