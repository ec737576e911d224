"""``resilience.exporters.server.serve``: /metrics and /health over real HTTP on 127.0.0.1."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import contextlib
import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import resilience as rs
from resilience.exporters import server


def get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


@pytest.fixture
def running() -> Iterator[server.MetricsServer]:
    """A server on a free loopback port for one test."""
    with server.serve(0) as started:
        yield started


def test_metrics_in_the_prometheus_text_format(running: server.MetricsServer) -> None:
    """``/metrics`` answers the exposition format, parsed back by prometheus_client."""
    parser = pytest.importorskip("prometheus_client.parser")
    rs.monitored("svc")(lambda: None)()
    status, content_type, body = get(running.url + "/metrics")
    assert 200 == status
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in parser.text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert 1 == samples[("resilience_calls_total", (("name", "svc"), ("outcome", "ok")))]


def test_health_is_json_and_200_while_not_unhealthy(running: server.MetricsServer) -> None:
    """``/health`` is ``rs.monitor.health()`` as JSON; a degraded service still answers 200."""
    fn = rs.monitored("svc")(lambda fail: 1 / 0 if fail else 1)
    for index in range(10):
        with contextlib.suppress(ZeroDivisionError):
            fn(index == 0)
    status, content_type, body = get(running.url + "/health")
    assert (200, "application/json") == (status, content_type)
    assert "healthy" == json.loads(body)["status"]
    for _ in range(2):
        with contextlib.suppress(ZeroDivisionError):
            fn(True)
    status, _, body = get(running.url + "/health")
    assert (200, "degraded") == (status, json.loads(body)["status"])


def test_unhealthy_answers_503(running: server.MetricsServer) -> None:
    """When health is unhealthy, ``/health`` answers 503 so a load balancer stops sending traffic."""
    fn = rs.monitored("svc")(lambda: 1 / 0)
    for _ in range(10):
        with pytest.raises(ZeroDivisionError):
            fn()
    status, _, body = get(running.url + "/health")
    assert (503, "unhealthy") == (status, json.loads(body)["status"])


def test_thresholds_are_passed_to_health() -> None:
    """``serve(thresholds=...)`` is what ``/health`` judges by."""
    fn = rs.monitored("svc")(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        fn()
    with server.serve(0, thresholds=rs.monitor.HealthThresholds(min_calls=1)) as running:
        status, _, body = get(running.url + "/health")
    assert (503, "unhealthy") == (status, json.loads(body)["status"])


def test_other_paths_are_404(running: server.MetricsServer) -> None:
    """Anything but /metrics and /health is a 404 saying where to look."""
    status, _, body = get(running.url + "/")
    assert (404, b"try /metrics or /health\n") == (status, body)


def test_listens_on_loopback_and_closes() -> None:
    """By default it binds 127.0.0.1; after ``close()`` the port refuses connections."""
    running = server.serve(0)
    assert running.url.startswith("http://127.0.0.1:")
    assert 200 == get(running.url + "/health")[0]
    running.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(running.url + "/health", timeout=2)


@pytest.mark.parametrize("port", [-1, 70_000, "9100", True])
def test_bad_port_is_rejected(port: Any) -> None:
    """The port must be an int from 0 to 65535."""
    with pytest.raises(ValueError, match="port"):
        server.serve(port)


def test_a_raising_page_answers_500_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A collector that raises gives the scraper a 500 (not a dropped connection) and one log record."""
    prometheus_client = pytest.importorskip("prometheus_client")

    class Broken:
        def collect(self) -> list[Any]:
            raise RuntimeError("boom")

        def describe(self) -> list[Any]:
            return []

    registry = prometheus_client.CollectorRegistry()
    registry.register(Broken())
    with caplog.at_level(logging.ERROR, logger="resilience"), server.serve(0, registry=registry) as running:
        status, _, _ = get(running.url + "/metrics")
    assert (500, ["boom"]) == (status, [str(r.exc_info[1]) for r in caplog.records if r.exc_info])


def test_head_answers_like_get_without_a_body(running: server.MetricsServer) -> None:
    """HEAD /health: the same status and headers as GET, and no body."""
    request = urllib.request.Request(running.url + "/health", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        head = (response.status, response.headers["Content-Type"], response.read())
    status, content_type, body = get(running.url + "/health")
    assert (status, content_type, b"") == head
    assert int(response.headers["Content-Length"]) == len(body)


def ipv6_loopback() -> bool:
    """Whether this host can listen on ::1."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_serves_on_ipv6_with_a_bracketed_url() -> None:
    """``serve(0, "::1")`` listens on IPv6 and its url brackets the address."""
    with server.serve(0, "::1") as running:
        status, _, _ = get(running.url + "/health")
        assert (f"http://[::1]:{running.port}", 200) == (running.url, status)
