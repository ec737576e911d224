"""Each row of the classification table, end to end: a real loopback server, http.Session,
and http.policy's retries (attempts=3) and breaker (how many failures did it count?)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import resilience as rs
from resilience import http
from resilience._demo_server import DemoServer


@pytest.fixture
def session() -> Iterator[http.Session]:
    with http.Session(timeout=(0.3, 0.3)) as s:
        yield s


@pytest.fixture(autouse=True)
def _instant_waits() -> Iterator[None]:
    with rs.testing.no_wait():
        yield


def _run(policy: rs.Policy, session: http.Session, method: str, url: str, *, raising: bool) -> tuple[Any, int]:
    """Call through ``policy``; (the outcome, the number of attempts made)."""
    attempts = []

    def call() -> Any:
        attempts.append(1)
        response = session.request(method, url)
        if raising:
            response.raise_for_status()
        return response

    try:
        outcome: Any = policy.call(call)
    except Exception as exc:
        outcome = exc
    return outcome, len(attempts)


def _failures(name: str) -> int:
    """How many failures the breaker ``name`` counted."""
    return int(rs.circuit.get(name).stats()["fail_counter"])


RETRY_ANY = [503, 429]
RETRY_IDEMPOTENT = [408, 500, 502, 504, 507]
FATAL = [400, 401, 403, 404, 409, 422, 501, 505]


def _expected_attempts(status: int, method: str) -> int:
    if status in RETRY_ANY or (status in RETRY_IDEMPOTENT and method in ("GET", "PUT", "DELETE")):
        return 3
    return 1


@pytest.mark.parametrize("raising", [False, True], ids=["returned", "raised"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "POST", "PATCH"])
@pytest.mark.parametrize("status", RETRY_ANY + RETRY_IDEMPOTENT + FATAL)
def test_status_rows(http_server: DemoServer, session: http.Session, status: int, method: str, raising: bool) -> None:
    """Each status, returned or raised: retried per the table; counted only when server-side (not 429/501/505)."""
    name = f"row-{status}-{method}-{raising}"
    outcome, attempts = _run(
        http.policy(name, fail_max=10), session, method, http_server.url(f"/status/{status}"), raising=raising
    )
    if raising:
        assert isinstance(outcome, requests.HTTPError) and status == outcome.response.status_code
    else:
        assert status == outcome.status_code
    assert _expected_attempts(status, method) == attempts
    counted = status >= 500 and status not in (501, 505)
    assert (attempts if counted else 0) == _failures(name)


@pytest.mark.parametrize(("method", "attempts"), [("GET", 3), ("POST", 3)])
def test_connect_timeout_row(session: http.Session, method: str, attempts: int) -> None:
    """ConnectTimeout (a server whose accept queue is full): retried for every method, counted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue: further SYNs are dropped, connects time out
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)
        policy = http.policy(f"connect-timeout-{method}", timeout=(0.3, 0.3), fail_max=10)
        outcome, made = _run(policy, session, method, f"http://127.0.0.1:{port}/x", raising=True)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert isinstance(outcome, requests.ConnectTimeout)
    assert attempts == made
    assert "connect_timeout" == http.classify(rs.Outcome.of_exception(outcome)).reason
    assert attempts == _failures(f"connect-timeout-{method}")


@pytest.mark.parametrize(
    ("path", "error", "reason"),
    [
        ("/loop", requests.TooManyRedirects, "too_many_redirects"),
        ("/cut", requests.exceptions.ChunkedEncodingError, "chunked_encoding"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_error_rows(
    http_server: DemoServer, session: http.Session, path: str, error: type[Exception], reason: str, method: str
) -> None:
    """TooManyRedirects is fatal and uncounted; a body cut short is retried for GET only and counted."""
    name = f"err-{path}-{method}"
    outcome, attempts = _run(http.policy(name, fail_max=10), session, method, http_server.url(path), raising=True)
    assert isinstance(outcome, error)
    verdict = http.classify(rs.Outcome.of_exception(outcome))
    assert reason == verdict.reason
    retried = reason == "chunked_encoding" and method == "GET"
    assert (3 if retried else 1) == attempts
    assert (reason == "chunked_encoding") == verdict.counts
    assert (attempts if verdict.counts else 0) == _failures(name)


def test_ssl_error_row(http_server: DemoServer, session: http.Session) -> None:
    """An SSLError (HTTPS spoken to a plain HTTP server) is fatal and not counted."""
    url = http_server.url("/ok").replace("http://", "https://")
    outcome, attempts = _run(http.policy("err-ssl", fail_max=1), session, "GET", url, raising=True)
    assert isinstance(outcome, requests.exceptions.SSLError)
    assert (1, 0) == (attempts, _failures("err-ssl"))


@pytest.mark.parametrize("url", ["not-a-url", "http://", "ftp://127.0.0.1/x", "http://exa mple.com/"])
def test_invalid_url_rows(session: http.Session, url: str) -> None:
    """Malformed URLs (MissingSchema, InvalidURL, InvalidSchema) are fatal, never sent twice, never counted."""
    outcome, attempts = _run(http.policy("err-url", fail_max=1), session, "GET", url, raising=True)
    assert isinstance(outcome, requests.RequestException)
    assert (1, False, "invalid_url") == (
        attempts,
        http.classify(rs.Outcome.of_exception(outcome)).counts,
        http.classify(rs.Outcome.of_exception(outcome)).reason,
    )
    assert "closed" == rs.circuit.get("err-url").state


def test_json_decode_row(http_server: DemoServer, session: http.Session) -> None:
    """An HTML body where JSON was expected: fatal, not counted, the body kept for the logs."""
    attempts = []

    def call() -> Any:
        attempts.append(1)
        return session.get(http_server.url("/text")).json()

    with pytest.raises(requests.exceptions.JSONDecodeError) as caught:
        http.policy("err-json", fail_max=1).call(call)
    verdict = http.classify(rs.Outcome.of_exception(caught.value))
    assert (1, "invalid_json", False) == (len(attempts), verdict.reason, verdict.counts)
    assert verdict.detail is not None and verdict.detail.startswith("<html>")
    assert 0 == _failures("err-json")
