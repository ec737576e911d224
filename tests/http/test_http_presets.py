"""http.policy, http.best_effort and http.idempotent against the real loopback server."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from tests_http_support import hits_with_key

import resilience as rs
from resilience import http
from resilience._demo_server import DemoServer


@pytest.fixture
def session() -> Iterator[http.Session]:
    with http.Session() as s:
        yield s


@pytest.fixture
def no_wait() -> Iterator[rs.testing.FakeClock]:
    with rs.testing.no_wait() as clock:
        yield clock


def _get(session: http.Session, url: str, method: str = "GET") -> Any:
    def body() -> requests.Response:
        return session.request(method, url)

    return body


def _raising(session: http.Session, url: str, method: str = "GET") -> Any:
    def body() -> requests.Response:
        response = session.request(method, url)
        response.raise_for_status()
        return response

    return body


def _outcome(twin: Any, fn: Any) -> Any:
    try:
        return twin.run(fn)
    except Exception as exc:
        return exc


def test_returned_503_is_retried(twin: Any, http_server: DemoServer, session: http.Session, no_wait: Any) -> None:
    """A returned 503 is retried and the second answer returned."""
    fn = http.policy("p503")(twin.wrap(_get(session, http_server.url(f"/seq/r503{twin}?codes=503,200"))))
    assert 200 == twin.run(fn).status_code
    assert 2 == http_server.hits[f"/seq/r503{twin}"]


def test_returned_404_is_returned_at_once(twin: Any, http_server: DemoServer, session: http.Session) -> None:
    """A returned 404 comes back at once: no retry, and the breaker does not count it."""
    fn = http.policy("p404", fail_max=2)(twin.wrap(_get(session, http_server.url("/status/404"))))
    for _ in range(3):
        assert 404 == twin.run(fn).status_code
    assert 3 == http_server.hits["/status/404"]
    assert "closed" == rs.circuit.get("p404").state


def test_raised_404_is_neither_retried_nor_counted(twin: Any, http_server: DemoServer, session: http.Session) -> None:
    """raise_for_status() on a 404: one request per call, the breaker stays closed."""
    fn = http.policy("p404r", fail_max=2)(twin.wrap(_raising(session, http_server.url("/status/404"))))
    for _ in range(3):
        assert isinstance(_outcome(twin, fn), requests.HTTPError)
    assert 3 == http_server.hits["/status/404"]
    assert "closed" == rs.circuit.get("p404r").state


@pytest.mark.parametrize(("method", "hits"), [("GET", 3), ("PUT", 3), ("POST", 1), ("PATCH", 1)])
def test_500_retried_for_idempotent_methods_only(
    twin: Any, http_server: DemoServer, session: http.Session, no_wait: Any, method: str, hits: int
) -> None:
    """A 500 is retried for GET/PUT, not for POST/PATCH (the server may have acted)."""
    fn = http.policy("p500", fail_max=50)(twin.wrap(_raising(session, http_server.url("/status/500"), method)))
    assert isinstance(_outcome(twin, fn), requests.HTTPError)
    assert hits == http_server.hits["/status/500"]


def test_post_read_timeout_is_not_retried(twin: Any, http_server: DemoServer, session: http.Session) -> None:
    """A POST that read-times-out is not retried: it may have been processed."""
    fn = http.policy("ppost", timeout=(1.0, 0.2))(twin.wrap(_get(session, http_server.url("/delay/1"), "POST")))
    assert isinstance(_outcome(twin, fn), requests.ReadTimeout)
    assert 1 == http_server.hits["/delay/1"]


def test_get_read_timeout_is_retried(twin: Any, http_server: DemoServer, session: http.Session, no_wait: Any) -> None:
    """The same read timeout on a GET is retried."""
    fn = http.policy("pget", timeout=(1.0, 0.1), attempts=2)(twin.wrap(_get(session, http_server.url("/delay/0.5"))))
    assert isinstance(_outcome(twin, fn), requests.ReadTimeout)
    assert 2 == http_server.hits["/delay/0.5"]


@pytest.mark.parametrize(("method", "hits"), [("GET", 3), ("POST", 1)])
def test_reset_mid_request(
    twin: Any, http_server: DemoServer, session: http.Session, no_wait: Any, method: str, hits: int
) -> None:
    """A connection reset after the request was sent is retried for GET only."""
    fn = http.policy("preset")(twin.wrap(_get(session, http_server.url("/reset"), method)))
    assert isinstance(_outcome(twin, fn), requests.ConnectionError)
    assert hits == http_server.hits["/reset"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_refused_connection_is_retried_even_for_post(twin: Any, session: http.Session, no_wait: Any) -> None:
    """A refused connection never reached the server: retried whatever the method."""
    attempts = []

    def body() -> requests.Response:
        attempts.append(1)
        return session.post(f"http://127.0.0.1:{_closed_port()}/charge")

    fn = http.policy("prefused")(twin.wrap(body))
    assert isinstance(_outcome(twin, fn), requests.ConnectionError)
    assert 3 == len(attempts)


def test_idempotent_post_is_retried_with_the_same_key(
    twin: Any, http_server: DemoServer, session: http.Session, no_wait: Any
) -> None:
    """With idempotent=True a POST's 500 is retried, every attempt with the same key, the next call a new one."""
    path = f"/seq/idem{twin}"
    fn = http.policy("pidem", idempotent=True)(
        twin.wrap(_get(session, http_server.url(path + "?codes=500,500,200"), "POST"))
    )
    assert 200 == twin.run(fn).status_code
    keys = hits_with_key(http_server, path)
    assert 3 == len(keys) and 1 == len(set(keys)) and keys[0]
    assert 200 == twin.run(fn).status_code
    assert keys[0] != hits_with_key(http_server, path)[-1]


def test_idempotent_decorator(twin: Any, http_server: DemoServer, session: http.Session, no_wait: Any) -> None:
    """@http.idempotent outside @rs.retry_on(http.TRANSIENT) gives POST retries one stable key."""
    path = f"/seq/deco{twin}"
    fn = http.idempotent(
        rs.retry_on(http.TRANSIENT)(twin.wrap(_raising(session, http_server.url(path + "?codes=502,200"), "POST")))
    )
    assert 200 == twin.run(fn).status_code
    keys = hits_with_key(http_server, path)
    assert 2 == len(keys) and keys[0] == keys[1] and keys[0]


def test_caller_key_is_kept(http_server: DemoServer, session: http.Session) -> None:
    """A request that brings its own Idempotency-Key keeps it."""
    fn = http.idempotent(lambda: session.post(http_server.url("/echo"), headers={"idempotency-key": "mine"}))
    headers = {k.lower(): v for k, v in fn().json()["headers"].items()}
    assert "mine" == headers["idempotency-key"]


def test_retry_after_is_honoured(twin: Any, http_server: DemoServer, session: http.Session) -> None:
    """429 with Retry-After: 1 waits about one second, then succeeds."""
    url = http_server.url(f"/seq/ra{twin}?codes=429,200&retry_after=1")
    fn = http.policy("pra", wait_initial=0.0)(twin.wrap(_get(session, url)))
    start = time.monotonic()
    assert 200 == twin.run(fn).status_code
    assert 0.9 <= time.monotonic() - start < 3.0
    assert "closed" == rs.circuit.get("pra").state


def test_retry_after_above_the_cap_gives_up_at_once(twin: Any, http_server: DemoServer, session: http.Session) -> None:
    """A Retry-After above max_retry_after ends the retries at once, with a note saying what was asked."""
    url = http_server.url("/status/503?retry_after=120")
    fn = http.policy("pcap", max_retry_after=60.0)(twin.wrap(_raising(session, url)))
    start = time.monotonic()
    error = _outcome(twin, fn)
    assert time.monotonic() - start < 1.0
    assert isinstance(error, requests.HTTPError)
    assert 1 == http_server.hits["/status/503"]
    assert any("120" in note for note in error.__notes__)


def test_burst_of_503_opens_the_breaker(twin: Any, http_server: DemoServer, session: http.Session) -> None:
    """A burst of 503s opens the breaker; once open, no request reaches the server."""
    fn = http.policy("pburst", attempts=1, fail_max=3)(twin.wrap(_raising(session, http_server.url("/status/503"))))
    for _ in range(3):
        assert isinstance(_outcome(twin, fn), requests.HTTPError)
    for _ in range(5):
        assert isinstance(_outcome(twin, fn), rs.CircuitOpenError)
    assert 3 == http_server.hits["/status/503"]


@pytest.mark.parametrize("path", ["/hang", "/trickle?interval=0.1&bytes=100"])
def test_deadline_cuts_hangs_and_trickles(twin: Any, http_server: DemoServer, session: http.Session, path: str) -> None:
    """A hanging endpoint and a trickling body are both cut at the policy's deadline (within 0.3 s)."""
    fn = http.policy("pdeadline", deadline=0.5)(twin.wrap(_get(session, http_server.url(path))))
    start = time.monotonic()
    error = _outcome(twin, fn)
    elapsed = time.monotonic() - start
    assert isinstance(error, rs.DeadlineExceeded), error
    assert elapsed < 0.5 + 0.3


def test_business_error_is_fatal(twin: Any, http_server: DemoServer, session: http.Session) -> None:
    """A business= hook turns a 2xx error body into BusinessError: not retried, not counted."""
    fn = http.policy("pbiz", fail_max=1, business=lambda body: body.get("msg") if body.get("code") else None)(
        twin.wrap(_get(session, http_server.url("/business?code=4001")))
    )
    for _ in range(2):
        error = _outcome(twin, fn)
        assert isinstance(error, http.BusinessError)
        assert "insufficient funds" == str(error)
    assert 2 == http_server.hits["/business"]
    assert "closed" == rs.circuit.get("pbiz").state


def test_monitor_sees_statuses(twin: Any, http_server: DemoServer, session: http.Session, no_wait: Any) -> None:
    """The Session tells the monitor the status and the URL of each call."""
    fn = http.policy("pmon")(twin.wrap(_get(session, http_server.url("/status/404"))))
    twin.run(fn)
    assert {"4xx": 1} == rs.monitor.snapshot("pmon")["statuses"]


@pytest.mark.parametrize("path", ["/hang", "/status/500", "/reset"])
def test_best_effort_drops_failures(
    twin: Any, http_server: DemoServer, session: http.Session, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """best_effort: any failure returns None, logs one WARNING and counts as "dropped"."""
    fn = http.best_effort("beacon", timeout=(0.2, 0.2))(twin.wrap(_get(session, http_server.url(path), "POST")))
    with caplog.at_level(logging.WARNING, logger="resilience"):
        start = time.monotonic()
        assert None is twin.run(fn)
        assert time.monotonic() - start < 1.0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 == len(warnings) and "dropped" in warnings[0].getMessage()
    assert {"dropped": 1} == rs.monitor.snapshot("beacon")["outcomes"]
    assert 1 == http_server.hits[path.split("?")[0]]


def test_best_effort_passes_successes(twin: Any, http_server: DemoServer, session: http.Session) -> None:
    """best_effort returns what a healthy endpoint answers."""
    fn = http.best_effort("beacon-ok")(twin.wrap(_get(session, http_server.url("/ok"), "POST")))
    assert 200 == twin.run(fn).status_code


def test_best_effort_drops_when_the_breaker_is_open(http_server: DemoServer, session: http.Session) -> None:
    """Once its breaker opens, a best-effort call is dropped without touching the server."""
    fn = http.best_effort("beacon-dead", fail_max=2)(_get(session, http_server.url("/status/503")))
    for _ in range(5):
        assert None is fn()
    assert 2 == http_server.hits["/status/503"]


def test_policy_shape() -> None:
    """policy() builds the canonical order with the HTTP settings inside the deadline, outside the retries."""
    described = http.policy("shape", idempotent=True).describe()
    assert described.index("timeout(30 s total") < described.index("http(") < described.index("retry_on(")
    assert described.index("retry_on(") < described.index("circuit(") if "circuit(" in described else True
    assert isinstance(http.policy("shape"), rs.Policy)


def test_same_name_twice_shares_the_breaker() -> None:
    """Two equal declarations under one name are fine and share one breaker."""
    http.policy("twice")
    http.policy("twice")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": 3}, TypeError, "name"),
        ({"timeout": (1.0,)}, ValueError, "timeout"),
        ({"timeout": (1.0, -2.0)}, ValueError, "timeout"),
        ({"timeout": "fast"}, TypeError, "timeout"),
        ({"deadline": 0}, ValueError, "deadline"),
        ({"attempts": 0}, ValueError, "attempts"),
        ({"idempotent": "yes"}, TypeError, "idempotent"),
        ({"business": 3}, TypeError, "business"),
        ({"retries": 3}, TypeError, "retries"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    """Bad configuration fails when the policy is built, naming the parameter."""
    arguments = {"name": "bad", **kwargs}
    with pytest.raises(error, match=match):
        http.policy(**arguments)


def test_best_effort_bad_configuration() -> None:
    """best_effort checks its parameters too."""
    with pytest.raises(ValueError, match="timeout"):
        http.best_effort("x", timeout=0)
    with pytest.raises(TypeError, match="retry_on"):
        http.best_effort("x", retry_on=3)


def test_a_returned_failure_counts_as_failed(
    twin: Any, http_server: DemoServer, session: http.Session, no_wait: Any
) -> None:
    """A 503 that outlived its retries is returned as is, but the monitor counts a failure, not "ok"."""
    fn = http.policy("pfailed", fail_max=50)(twin.wrap(_get(session, http_server.url("/status/503"))))
    assert 503 == twin.run(fn).status_code
    snapshot = rs.monitor.snapshot("pfailed")
    assert ({"HTTPError": 1}, {"5xx": 1}) == (snapshot["outcomes"], snapshot["statuses"])


def test_replace_keeps_the_deadline_cooperative() -> None:
    """dataclasses.replace(policy, timeout=5.0) keeps a cooperative deadline (no thread per call)."""
    import dataclasses

    replaced = dataclasses.replace(http.policy("prep"), timeout=5.0)
    assert "timeout(5 s total, mode='cooperative')" in replaced.describe()


def test_business_hook_runs_once_per_call(http_server: DemoServer, session: http.Session) -> None:
    """The business hook reads each answer once, not once per layer."""
    seen: list[Any] = []

    def hook(body: Any) -> None:
        seen.append(body)

    fn = http.policy("ponce", business=hook)(_get(session, http_server.url("/ok")))
    fn()
    assert 1 == len(seen)


def test_nested_idempotent_calls_get_their_own_keys(
    twin: Any, http_server: DemoServer, session: http.Session, no_wait: Any
) -> None:
    """An order POST and two charges inside it never share a key; a retried charge repeats its own."""
    pay = http.policy("pay", idempotent=True)
    orders = http.policy("orders", idempotent=True)

    def charge(cents: int) -> Any:
        return session.post(http_server.url(f"/seq/charge-{cents}{twin}?codes=500,200"), json={"cents": cents})

    def order() -> list[int]:
        session.post(http_server.url("/echo"), json={"order": 1})
        return [pay.call(charge, 100).status_code, pay.call(charge, 250).status_code]

    if twin.is_async:

        async def run_order() -> list[int]:
            return order()

        assert [200, 200] == twin.run(orders(run_order))
    else:
        assert [200, 200] == orders.call(order)
    first, second = (hits_with_key(http_server, f"/seq/charge-{c}{twin}") for c in (100, 250))
    order_key = hits_with_key(http_server, "/echo")[0]
    assert 2 == len(first) == len(second)
    assert first[0] == first[1] and second[0] == second[1]
    assert 3 == len({order_key, first[0], second[0]})


def test_numbered_keys_repeat_on_each_attempt(
    twin: Any, http_server: DemoServer, session: http.Session, no_wait: Any
) -> None:
    """Two POSTs in one idempotent policy call get two keys, and a retry sends the same two again."""
    path = f"/seq/two{twin}"

    def body() -> Any:
        session.post(http_server.url("/echo"))
        response = session.post(http_server.url(path + "?codes=503,200"))
        response.raise_for_status()
        return response

    fn = http.policy("ptwo", idempotent=True)(twin.wrap(body))
    assert 200 == twin.run(fn).status_code
    echo_keys, seq_keys = hits_with_key(http_server, "/echo"), hits_with_key(http_server, path)
    assert echo_keys[0] == echo_keys[1] and seq_keys[0] == seq_keys[1] and echo_keys[0] != seq_keys[0]


def test_a_cooperative_attempt_deadline_is_retried_for_get(
    twin: Any, http_server: DemoServer, session: http.Session
) -> None:
    """A per-attempt deadline the Session enforces is retried for a GET (the total deadline is not)."""
    attempt = rs.timeout(0.2, mode="cooperative")
    fn = http.policy("pattempt", attempts=2, wait_initial=0.0, attempt_timeout=attempt)(
        twin.wrap(_get(session, http_server.url("/hang")))
    )
    assert isinstance(_outcome(twin, fn), rs.DeadlineExceeded)
    assert 2 == http_server.hits["/hang"]
