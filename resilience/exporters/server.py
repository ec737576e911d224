"""A tiny HTTP server for ``/metrics`` and ``/health``, for services without a web framework.

>>> from resilience.exporters import server
>>> with server.serve(0) as running:  # port 0: any free port
...     running.url.startswith("http://127.0.0.1:")
True

- ``GET /metrics``: the Prometheus text format (needs the ``prometheus`` extra; 501
  without it). In prometheus_client's multi-process mode this process pushes its latest
  numbers first and the answer aggregates every worker's files.
- ``GET /health``: ``rs.monitor.health()`` as JSON; status 200 when healthy or
  degraded, 503 when unhealthy (so a load balancer stops sending traffic).

``HEAD`` answers as ``GET`` without the body. A page that raises answers 500 and is
logged on logger "resilience".

It listens on loopback unless given ``host="0.0.0.0"`` (or another address, IPv6 ones
such as ``"::1"`` or ``"::"`` included), in daemon threads, and stops with ``close()`` or
at the end of a ``with`` block.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from resilience import monitor

__all__ = ["MetricsServer", "serve"]

logger = logging.getLogger("resilience")


def _family(host: str, port: int) -> socket.AddressFamily:
    """The address family ``host`` resolves to (IPv4 first when it has both)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    families = [info[0] for info in found]
    return socket.AF_INET if socket.AF_INET in families else families[0]


class MetricsServer:
    """A running ``/metrics`` and ``/health`` server; build it with :func:`serve`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        source: monitor.Registry,
        registry: Any,
        thresholds: monitor.HealthThresholds | None,
    ) -> None:
        self.source = source
        self.registry = registry
        self.thresholds = thresholds
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(body=True)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def _answer(self, *, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/metrics":
                        status, content_type, content = outer.metrics()
                    elif path == "/health":
                        status, content_type, content = outer.health()
                    else:
                        status, content_type, content = 404, "text/plain; charset=utf-8", b"try /metrics or /health\n"
                except Exception:
                    logger.exception("resilience metrics server: %s raised", path)
                    status, content_type, content = 500, "text/plain; charset=utf-8", b"internal error (logged)\n"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if body:
                    self.wfile.write(content)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: a scrape every few seconds is no news."""

        class Server(ThreadingHTTPServer):
            address_family = _family(host, port)

        self._httpd = Server((host, port), Handler)
        self._httpd.daemon_threads = True
        address = self._httpd.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="resilience-metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server (``http://[::1]:port`` for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def metrics(self) -> tuple[int, str, bytes]:
        """(status, content type, body) of ``/metrics``."""
        try:
            from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

            from resilience.exporters import prometheus
        except ImportError:
            return 501, "text/plain; charset=utf-8", b"install resilience[prometheus] for /metrics\n"
        if prometheus.multiprocess_mode():
            prometheus.register(source=self.source)
            prometheus.flush()
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            if self.registry is None:  # a private registry, made once: resilience's series only
                self.registry = CollectorRegistry()
            registry = self.registry
            prometheus.register(registry, source=self.source)
        return 200, CONTENT_TYPE_LATEST, generate_latest(registry)

    def health(self) -> tuple[int, str, bytes]:
        """(status, content type, body) of ``/health``."""
        report = self.source.health(self.thresholds)
        status = 503 if report["status"] == "unhealthy" else 200
        return status, "application/json", json.dumps(report, indent=1).encode()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}>"


def serve(
    port: int,
    host: str = "127.0.0.1",
    *,
    source: monitor.Registry | None = None,
    registry: Any = None,
    thresholds: monitor.HealthThresholds | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` and ``/health`` on ``host:port`` (port 0: a free one) from
    daemon threads; returns the running :class:`MetricsServer`.

    ``source``: the monitor registry (default: ``rs.monitor.default``); ``registry``: a
    prometheus_client registry to expose (default: a private one holding only
    resilience's collector); ``thresholds``: what ``/health`` judges by.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in [0, 65535], got {port!r}")
    return MetricsServer(host, port, source=source or monitor.default, registry=registry, thresholds=thresholds)
