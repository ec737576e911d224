"""http.fetch_all against the real loopback server: results, summaries, pools, per-host breakers, Ctrl-C."""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import wait_until

import resilience as rs
from resilience import http
from resilience._demo_server import DemoServer
from resilience.http._batch import _host, _Pool

BENCHMARKS = Path(__file__).resolve().parent.parent.parent / "benchmarks"


def by_index(batch: http.BatchResult) -> dict[int, http.ItemResult]:
    return {result.index: result for result in batch.results}


def free_port() -> int:
    """A loopback port nobody listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000  # valid JSON, nested far beyond the parser's recursion limit


class _DeepJsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(DEEP_JSON)))
        self.end_headers()
        self.wfile.write(DEEP_JSON)


@pytest.fixture
def deep_json_url() -> Iterator[str]:
    """A loopback server answering every GET with 200 and DEEP_JSON."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DeepJsonHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/deep"
    server.shutdown()
    server.server_close()


# --- results, one per item, in input order ---------------------------------------------------


def test_results_come_in_input_order_with_their_fields(http_server: DemoServer) -> None:
    """Each kind of outcome becomes an ItemResult at its input position with the documented fields."""
    key = uuid.uuid4().hex
    items: list[Any] = [
        http_server.url("/ok"),
        http_server.url("/text"),
        http_server.url("/status/404"),
        http_server.url(f"/seq/{key}?codes=503,200"),
        "not a url",
        {"url": http_server.url("/echo"), "method": "post", "json": {"n": 1}, "headers": {"X-Trace": "t1"}},
    ]
    with rs.testing.no_wait():  # the default policy's backoff, made instant
        batch = http.fetch_all(items)

    assert list(range(len(items))) == [result.index for result in batch.results]
    ok, text, missing, recovered, malformed, echo = batch.results

    assert (True, 200, {"ok": True, "method": "GET", "path": "/ok"}) == (ok.ok, ok.status, ok.data)
    assert (None, None, None, 1) == (ok.error_type, ok.error, ok.text, ok.attempts)
    assert ("GET", http_server.url("/ok")) == (ok.method, ok.url)

    assert text.ok
    assert isinstance(text.data, str)
    assert "<html>" in text.data

    assert (False, 404, "HTTPError", 1, None) == (
        missing.ok,
        missing.status,
        missing.error_type,
        missing.attempts,
        missing.data,
    )
    assert missing.error is not None
    assert "404" in missing.error
    assert '{"status": 404}' == missing.text

    assert (True, 200, 2, {"status": 200, "attempt": 2}) == (
        recovered.ok,
        recovered.status,
        recovered.attempts,
        recovered.data,
    )
    assert (False, None, "not a url", 1) == (malformed.ok, malformed.status, malformed.url, malformed.attempts)
    assert malformed.error_type in {"InvalidURL", "MissingSchema"}  # requests' verdict on the string
    assert ("POST", True, '{"n": 1}', "t1") == (
        echo.method,
        echo.ok,
        echo.data["body"],
        echo.data["headers"]["X-Trace"],
    )


# Each in a test of its own: three counted failures apiece, and the host's breaker opens at five.


def test_a_503_is_retried_to_the_last_attempt(http_server: DemoServer) -> None:
    """A returned 503 is retried by the default policy; after 3 attempts the 503 is the item's result."""
    with rs.testing.no_wait():
        (result,) = http.fetch_all([http_server.url("/status/503")])
    assert (False, 503, "HTTPError", 3, '{"status": 503}') == (
        result.ok,
        result.status,
        result.error_type,
        result.attempts,
        result.text,
    )
    assert 3 == http_server.hits["/status/503"]


def test_a_reset_connection_is_retried_then_reported(http_server: DemoServer) -> None:
    """A GET whose connection is reset is retried; the last ConnectionError is the item's result."""
    with rs.testing.no_wait():
        (result,) = http.fetch_all([http_server.url("/reset")])
    assert (False, None, "ConnectionError", 3, None) == (
        result.ok,
        result.status,
        result.error_type,
        result.attempts,
        result.data,
    )
    assert result.error is not None
    assert "reset" in result.error.lower()


def test_item_result_is_frozen_and_to_dict_has_every_field(http_server: DemoServer) -> None:
    """ItemResult is immutable and to_dict() gives its eleven fields by name."""
    result = http.fetch_all([http_server.url("/ok")]).results[0]
    with pytest.raises(AttributeError):
        result.ok = False  # type: ignore[misc]
    expected = ["index", "method", "url", "ok", "status", "data", "error_type", "error", "text", "attempts", "elapsed"]
    assert expected == list(result.to_dict())


def test_any_iterable_is_taken_once(http_server: DemoServer) -> None:
    """A generator of items is materialised once and every item is fetched."""
    batch = http.fetch_all(http_server.url(f"/ok?n={n}") for n in range(5))
    assert 5 == len(batch)
    assert all(result.ok for result in batch)
    assert 5 == http_server.hits["/ok"]


def test_as_completed_yields_in_completion_order(http_server: DemoServer) -> None:
    """as_completed() lists a fast item that finished first before an earlier slow one."""
    batch = http.fetch_all([http_server.url("/delay/0.3"), http_server.url("/ok")], concurrency=2)
    assert [1, 0] == [result.index for result in batch.as_completed()]
    assert [0, 1] == [result.index for result in batch]


def test_a_best_effort_policy_that_drops_an_item_gives_a_failed_result(http_server: DemoServer) -> None:
    """An item a best-effort policy dropped is failed, error_type Dropped, keeping the status and body behind it."""
    batch = http.fetch_all([http_server.url("/status/404"), http_server.url("/ok")], policy=http.best_effort("beacon"))
    dropped = batch.results[0]
    assert ("Dropped", 404, '{"status": 404}') == (dropped.error_type, dropped.status, dropped.text)
    assert dropped.error is not None
    assert dropped.error.endswith("after HTTP 404")
    assert batch.results[1].ok


def test_a_dropped_timeout_says_it_was_a_timeout(http_server: DemoServer) -> None:
    """A best-effort drop of a request that timed out names the ReadTimeout in its error, status None."""
    batch = http.fetch_all([http_server.url("/hang")], policy=http.best_effort("beacon", timeout=(0.5, 0.2)))
    (dropped,) = batch.results
    assert ("Dropped", None, 1) == (dropped.error_type, dropped.status, dropped.attempts)
    assert dropped.error is not None
    assert "after ReadTimeout: " in dropped.error


def test_a_retry_rejected_by_a_breaker_keeps_the_status_that_opened_it(http_server: DemoServer) -> None:
    """The first attempt's 503 opens the breaker, which rejects the retry: the result still reads 503 and its body."""
    with rs.testing.no_wait():
        (result,) = http.fetch_all([http_server.url("/status/503")], policy=http.policy("fragile", fail_max=1))
    assert ("CircuitOpenError", 503, '{"status": 503}', 1) == (
        result.error_type,
        result.status,
        result.text,
        result.attempts,
    )


def test_a_json_body_nested_too_deep_is_a_failed_result_not_a_hang(deep_json_url: str) -> None:
    """A 200 whose JSON nests beyond the recursion limit becomes a failed result; the batch returns at once."""
    started = time.monotonic()
    batch = http.fetch_all([deep_json_url, deep_json_url], concurrency=1)
    assert time.monotonic() - started < 5.0
    assert [(False, 200, "RecursionError")] * 2 == [(r.ok, r.status, r.error_type) for r in batch]


def test_whatever_the_work_raises_becomes_the_items_result() -> None:
    """The worker pool turns an exception from the work function (or from its error handler) into that item's result."""

    def work(index: int) -> http.ItemResult:
        if index == 1:
            raise RecursionError("too deep")
        if index == 2:
            raise SystemExit(3)
        return http.ItemResult(index, "GET", "u", ok=True)

    def fail(index: int, exc: BaseException) -> http.ItemResult:
        if isinstance(exc, SystemExit):
            raise ValueError("the handler fails too")
        return http.ItemResult(index, "GET", "u", ok=False, error_type=type(exc).__name__)

    pool = _Pool(4, work, fail)
    pool.start(2)
    results = sorted(pool.results(), key=lambda result: result.index)
    pool.join()
    assert [(0, None), (1, "RecursionError"), (2, "SystemExit"), (3, None)] == [
        (result.index, result.error_type) for result in results
    ]


# --- summary and JSON lines ---------------------------------------------------------------------


def test_summary_counts_and_timings(http_server: DemoServer) -> None:
    """summary() counts ok/failed/by_error_type and reports success rate, latencies and wall time."""
    items = [http_server.url("/ok")] * 3 + [http_server.url("/status/404")]
    started = time.monotonic()
    batch = http.fetch_all(items, concurrency=2)
    wall = time.monotonic() - started
    summary = batch.summary()
    assert (4, 3, 1, 0.75, {"HTTPError": 1}, False) == (
        summary["total"],
        summary["ok"],
        summary["failed"],
        summary["success_rate"],
        summary["by_error_type"],
        summary["interrupted"],
    )
    assert 0 < summary["mean_elapsed"] <= summary["p95_elapsed"] <= summary["elapsed"] <= wall
    assert max(result.elapsed for result in batch) == summary["p95_elapsed"]


def test_empty_batch_summary() -> None:
    """An empty batch has nothing failed: success_rate 1.0, zero latencies, no threads needed."""
    summary = http.fetch_all([]).summary()
    assert (0, 0, 0, 1.0, 0.0, 0.0, {}) == (
        summary["total"],
        summary["ok"],
        summary["failed"],
        summary["success_rate"],
        summary["mean_elapsed"],
        summary["p95_elapsed"],
        summary["by_error_type"],
    )


def test_to_jsonl_writes_standard_json_whatever_the_data(tmp_path: Path) -> None:
    """Data JSON cannot hold (non-string keys, NaN, an object) is written as its str(); a file there is replaced."""
    batch = http.BatchResult(
        [
            http.ItemResult(0, "GET", "http://a/", ok=True, data={(1, 2): "cached"}),
            http.ItemResult(1, "GET", "http://b/", ok=True, data={"x": math.nan}),
            http.ItemResult(2, "GET", "http://c/", ok=True, data=object()),
            http.ItemResult(3, "GET", "http://d/", ok=True, data={"fine": [1, "\u00e9"]}),
        ]
    )
    path = tmp_path / "out.jsonl"
    path.write_text("an older, longer file\n" * 10)
    assert 4 == batch.to_jsonl(path)

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    records = [json.loads(line, parse_constant=no_constants) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [0, 1, 2, 3] == [record["index"] for record in records]
    assert ["{(1, 2): 'cached'}", "{'x': nan}"] == [records[0]["data"], records[1]["data"]]
    assert records[2]["data"].startswith("<object object at ")
    assert {"fine": [1, "\u00e9"]} == records[3]["data"]


def test_to_jsonl_round_trip(http_server: DemoServer, tmp_path: Path) -> None:
    """to_jsonl writes one to_dict() object per line in input order and returns the line count."""
    batch = http.fetch_all([http_server.url("/ok"), http_server.url("/status/404"), http_server.url("/text")])
    path = tmp_path / "out.jsonl"
    assert 3 == batch.to_jsonl(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [result.to_dict() for result in batch] == [json.loads(line) for line in lines]


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "error", "match"),
    [
        ([5], TypeError, r"items\[1\] must be a URL string or a mapping"),
        (["http://x/", {"method": "GET"}], ValueError, r"items\[2\] has no 'url'"),
        ([{"url": "http://x/", "verb": "GET"}], ValueError, r"items\[1\] has unknown keys \['verb'\]"),
        ([{"url": b"http://x/"}], TypeError, r"items\[1\]\['url'\]"),
        ([{"url": "http://x/", "method": 3}], TypeError, r"items\[1\]\['method'\]"),
        ([{"url": "http://x/", "method": "get "}], ValueError, r"items\[1\]\['method'\] must be an HTTP method"),
        ([{"url": "http://x/", "method": ""}], ValueError, r"items\[1\]\['method'\]"),
        ([{"url": "http://x/", "headers": [("X-A", "1")]}], TypeError, r"items\[1\]\['headers'\] must be a mapping"),
        ([{"url": "http://x/", "headers": "X-A: 1"}], TypeError, r"items\[1\]\['headers'\]"),
        ([{"url": "http://x/", "params": 5}], TypeError, r"items\[1\]\['params'\] must be a mapping"),
        ([{"url": "http://x/", "params": ["a=1"]}], TypeError, r"items\[1\]\['params'\]"),
        ([{"url": "http://x/", "json": {}, "data": "x"}], ValueError, r"items\[1\] has both 'json' and 'data'"),
        ("http://x/", TypeError, "single str"),
        ({"url": "http://x/"}, TypeError, "single dict"),
        (42, TypeError, "iterable"),
    ],
)
def test_bad_items_are_rejected_before_anything_is_sent(
    http_server: DemoServer, items: Any, error: type[Exception], match: str
) -> None:
    """A malformed item raises naming its index (after one good item), and no request of the batch is sent."""
    with pytest.raises(error, match=match):
        http.fetch_all([http_server.url("/ok"), *items] if isinstance(items, list) else items)
    assert 0 == sum(http_server.hits.values())


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"concurrency": 2.0}, TypeError, "concurrency"),
        ({"concurrency": True}, TypeError, "concurrency"),
        ({"policy": "users-api"}, TypeError, "policy"),
        ({"session": object()}, TypeError, "session"),
        ({"progress": 1}, TypeError, "progress"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any], error: type[Exception], match: str) -> None:
    """Wrong concurrency, policy, session or progress raise naming the parameter."""
    with pytest.raises(error, match=match):
        http.fetch_all(["http://127.0.0.1:9/"], **options)


def test_well_formed_options_are_sent(http_server: DemoServer) -> None:
    """params as pairs, a token method in any case and a None body are accepted and sent as asked."""
    items = [
        {"url": http_server.url("/echo"), "params": [("a", "1"), ("a", "2")], "method": "patch", "data": None},
        {"url": http_server.url("/ok"), "params": "q=1", "headers": None},
    ]
    batch = http.fetch_all(items)
    assert [True, True] == [result.ok for result in batch]
    assert "PATCH" == batch.results[0].data["method"]


# --- one Session, a bounded pool ----------------------------------------------------------------


def test_200_slow_urls_through_20_workers_reuse_20_connections(http_server: DemoServer) -> None:
    """200 x 50 ms with concurrency 20 finish within 1.5x the ideal 0.5 s over at most 20 (+3) connections.

    The best of up to three runs counts, so one scheduling hiccup on a busy CI machine does
    not fail it; benchmarks/batch.py prints the same figure against a plain thread pool.
    """
    timings = []
    for _ in range(3):
        http_server.reset_counts()
        started = time.monotonic()
        batch = http.fetch_all([http_server.url("/delay/0.05")] * 200, concurrency=20)
        timings.append(time.monotonic() - started)
        assert 200 == batch.summary()["ok"]
        assert http_server.connections <= 20 + 3
        if timings[-1] < 0.75:
            break
    assert min(timings) < 0.75, timings


def test_a_callers_session_is_reused_and_left_open(http_server: DemoServer) -> None:
    """A session passed in is used for every item, kept open, and its connection serves the next batch."""
    with http.Session() as session:
        first = http.fetch_all([http_server.url("/ok")] * 3, session=session, concurrency=1)
        second = http.fetch_all([http_server.url("/ok")] * 3, session=session, concurrency=1)
        assert session.get(http_server.url("/ok")).ok  # still usable
    assert (3, 3) == (first.summary()["ok"], second.summary()["ok"])
    assert 1 == http_server.connections


def test_a_plain_requests_session_still_bounds_every_item(http_server: DemoServer) -> None:
    """With a plain requests.Session each request gets the policy's timeout, clipped to the caller's deadline."""
    with requests.Session() as session:
        started = time.monotonic()
        timed = http.fetch_all(
            [http_server.url("/hang"), http_server.url("/ok")],
            session=session,
            policy=http.policy("plain", timeout=(0.5, 0.2), attempts=1),
        )
        assert time.monotonic() - started < 1.5
        started = time.monotonic()
        with rs.deadline.scope(0.3):
            cut = http.fetch_all([http_server.url("/hang")], session=session)
        assert time.monotonic() - started < 1.5
    assert [("ReadTimeout", 1), (None, 1)] == [(result.error_type, result.attempts) for result in timed]
    assert cut.results[0].error_type in {"ReadTimeout", "DeadlineExceeded"}


# --- policies -----------------------------------------------------------------------------------


def test_a_dead_host_opens_only_its_own_breaker(http_server: DemoServer) -> None:
    """With the default per-host policies, a refused host's breaker opens while 127.0.0.1 answers."""
    dead = f"http://localhost:{free_port()}/x"
    items = [dead] * 4 + [http_server.url("/ok")] * 4
    with rs.testing.no_wait():
        batch = http.fetch_all(items, concurrency=1)
    dead_types = [result.error_type for result in batch.results[:4]]
    assert "CircuitOpenError" in dead_types
    assert {"ConnectionError", "CircuitOpenError"} >= set(dead_types)
    assert [True] * 4 == [result.ok for result in batch.results[4:]]


def test_per_host_policies_never_carry_credentials(http_server: DemoServer) -> None:
    """A URL's user:password stays out of the per-host policy, breaker and monitor names."""
    port = http_server.url("/").split(":")[2].split("/")[0]
    batch = http.fetch_all([f"http://alice:s3cret@127.0.0.1:{port}/ok", f"http://BOB:pw@127.0.0.1:{port}/ok"])
    assert [True, True] == [result.ok for result in batch]
    assert [f"fetch:127.0.0.1:{port}"] == list(rs.monitor.snapshot())
    assert 2 == rs.monitor.snapshot(f"fetch:127.0.0.1:{port}")["calls"]


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://alice:s3cret@Example.COM:8080/x", "example.com:8080"),
        ("https://example.com/x", "example.com"),
        ("http://u:p@[::1]:8080/x", "[::1]:8080"),
        ("http://[::1/x", "invalid"),
        ("not a url", "invalid"),
    ],
)
def test_per_host_key_is_hostname_and_port(url: str, host: str) -> None:
    """The per-host key is the lowercased hostname and explicit port, IPv6 bracketed, 'invalid' without a host."""
    assert host == _host(url)


def test_a_given_policy_runs_every_item(http_server: DemoServer) -> None:
    """policy= replaces the per-host policies: every item is one call monitored under its name."""
    shared = http.policy("shared", attempts=1)
    batch = http.fetch_all([http_server.url("/ok"), http_server.url("/status/503")], policy=shared)
    assert (1, 1) == (batch.results[0].attempts, batch.results[1].attempts)
    assert 2 == rs.monitor.snapshot("shared")["calls"]


def test_a_callers_deadline_bounds_every_item(http_server: DemoServer) -> None:
    """Items run in the caller's context: a deadline scope around fetch_all cuts slow items."""
    started = time.monotonic()
    with rs.deadline.scope(0.3):
        batch = http.fetch_all([http_server.url("/delay/2"), http_server.url("/ok")], concurrency=2)
    assert time.monotonic() - started < 1.5
    assert ("DeadlineExceeded", True) == (batch.results[0].error_type, batch.results[1].ok)


def test_items_do_not_share_the_callers_idempotency_key(http_server: DemoServer) -> None:
    """fetch_all inside http.idempotent sends no caller's Idempotency-Key: items are distinct operations."""

    @http.idempotent
    def run() -> http.BatchResult:
        return http.fetch_all([{"url": http_server.url("/echo"), "method": "POST", "json": n} for n in range(3)])

    assert 3 == run().summary()["ok"]
    headers = [headers for _, path, headers in http_server.requests if path == "/echo"]
    assert 3 == len(headers)
    assert all(http.IDEMPOTENCY_HEADER not in sent for sent in headers)


# --- Ctrl-C and progress ------------------------------------------------------------------------


def test_ctrl_c_returns_at_once_keeping_finished_results(http_server: DemoServer) -> None:
    """SIGINT while waiting: finished items keep their results, the rest are Interrupted, nothing is lost."""
    items = [http_server.url("/ok")] * 2 + [http_server.url("/delay/1")] * 2 + [http_server.url("/ok")] * 6

    def interrupt() -> None:  # once both slow items are in flight, the two fast ones have finished
        wait_until(lambda: http_server.hits["/delay/1"] == 2)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    batch = http.fetch_all(items, concurrency=2)
    assert time.monotonic() - started < 0.9  # did not wait for the requests in flight
    assert batch.interrupted
    assert [True, True] == [result.ok for result in batch.results[:2]]
    assert ["Interrupted"] * 8 == [result.error_type for result in batch.results[2:]]
    assert [1, 1, 0] == [result.attempts for result in batch.results[2:5]]  # the two in flight had been sent
    assert ({"Interrupted": 8}, True, 10) == (
        batch.summary()["by_error_type"],
        batch.summary()["interrupted"],
        len(list(batch.as_completed())),
    )
    assert 2 == http_server.hits["/ok"]  # no item was handed out after Ctrl-C


def test_progress_bar_on_stderr(http_server: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    """progress=True draws \\r-updated done/total, ok, failed and rate on stderr, ending with a newline."""
    http.fetch_all([http_server.url("/ok"), http_server.url("/status/404")], progress=True)
    out, err = capsys.readouterr()
    assert "" == out
    assert err.startswith("\r")
    assert err.endswith("\n")
    assert "fetch 2/2  ok 1  failed 1" in err.rsplit("\r", 1)[-1]
    assert "/s" in err


def test_no_progress_output_by_default(http_server: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Without progress=True nothing is printed."""
    http.fetch_all([http_server.url("/ok"), http_server.url("/status/404")])
    assert ("", "") == capsys.readouterr()


# --- the benchmark script runs (no timing asserted) ---------------------------------------------


def test_batch_benchmark_smoke() -> None:
    """``benchmarks/batch.py --quick --json`` runs fetch_all and the baseline and reports both rows."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "batch.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert ["http.fetch_all", "ThreadPoolExecutor + requests.Session"] == [row["name"] for row in result["rows"]]
    assert all(row["ok"] == result["meta"]["urls"] for row in result["rows"])
    assert isinstance(result["target"]["pass"], bool)


def test_on_result_streams_each_result_as_it_completes(http_server: DemoServer) -> None:
    """on_result sees every result once, in completion order, in the calling thread, before fetch_all returns."""
    import threading

    seen: list[tuple[int, bool]] = []
    caller = threading.get_ident()
    urls = [http_server.url("/delay/0.2"), http_server.url("/ok"), http_server.url("/status/404")]
    batch = http.fetch_all(
        urls, concurrency=3, on_result=lambda item: seen.append((item.index, threading.get_ident() == caller))
    )
    assert [(1, True), (2, True), (0, True)] == seen or [(2, True), (1, True), (0, True)] == seen
    assert [item.index for item in batch.as_completed()] == [index for index, _ in seen]


def test_a_raising_on_result_never_stops_the_batch(http_server: DemoServer, caplog: pytest.LogCaptureFixture) -> None:
    """A callback that raises is logged; every item still gets its result."""

    def broken(item: Any) -> None:
        raise RuntimeError("bug in callback")

    batch = http.fetch_all([http_server.url("/ok")] * 3, on_result=broken)
    assert 3 == batch.summary()["ok"]
    assert "on_result" in caplog.text


def test_on_result_must_be_callable() -> None:
    """A non-callable on_result is rejected before anything is sent, naming the parameter."""
    with pytest.raises(TypeError, match="on_result"):
        http.fetch_all(["http://127.0.0.1:1/"], on_result=3)  # type: ignore[arg-type]
