"""A loopback HTTP server that misbehaves on request, for the demo and the tests.

Endpoints (any method; ``?retry_after=`` adds a Retry-After header wherever a status is chosen):

- ``/ok``: 200 with JSON ``{"ok": true, "method": ..., "path": ...}``
- ``/status/<code>``: that status, JSON body ``{"status": code}``
- ``/seq/<key>?codes=503,503,200``: the n-th request to ``key`` gets the n-th code (the last repeats)
- ``/delay/<seconds>``: 200 after sleeping that long
- ``/hang``: never answers (until the server stops)
- ``/trickle?interval=0.5&bytes=20``: announces ``bytes`` bytes, then sends one per ``interval``
- ``/reset``: reads the request, then resets the connection without answering
- ``/close``: reads the request, then closes the connection without answering
- ``/text``: 200 with an HTML body (not JSON)
- ``/loop``: a redirect to itself, for ever
- ``/cut``: announces a 100-byte body, sends 10 bytes and closes
- ``/echo``: 200 with JSON ``{"method", "headers", "body"}`` of the request
- ``/business?code=4001``: 200 with JSON ``{"code": 4001, "msg": "insufficient funds"}``
- ``/burst``: 503 during the first ``burst`` seconds of every ``cycle`` seconds since start, else 200
- ``/flaky?rate=0.3``: 503 with probability ``rate``, else 200 after 5-40 ms

``server.hits`` counts requests per path (without the query), ``server.connections``
counts accepted connections, ``server.requests`` keeps ``(method, path, headers)``.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, owner: DemoServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.owner.lock:
            self.owner.connections += 1
        return conn, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be observed
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the demo prints its own story

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET  # noqa: N815 -- http.server names them

    def _handle(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        segments = [s for s in parts.path.split("/") if s]
        head = segments[0] if segments else ""
        with owner.lock:
            owner.hits[parts.path] += 1
            owner.requests.append((self.command, parts.path, dict(self.headers)))
        extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
        if head == "status" and len(segments) > 1:
            self._reply(int(segments[1]), {"status": int(segments[1])}, extra)
        elif head == "seq" and len(segments) > 1:
            codes = [int(code) for code in query.get("codes", "200").split(",")]
            with owner.lock:
                n = owner.sequences[segments[1]]
                owner.sequences[segments[1]] += 1
            code = codes[min(n, len(codes) - 1)]
            self._reply(code, {"status": code, "attempt": n + 1}, extra if code >= 400 else {})
        elif head == "delay" and len(segments) > 1:
            owner.stopping.wait(float(segments[1]))
            self._reply(200, {"ok": True, "delay": float(segments[1])})
        elif head == "hang":
            owner.stopping.wait(120)
            self.close_connection = True
        elif head == "trickle":
            self._trickle(float(query.get("interval", 0.5)), int(query.get("bytes", 20)))
        elif head in ("reset", "close"):
            if head == "reset":  # SO_LINGER 0: close() sends RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            self.close_connection = True
        elif head == "loop":  # redirects to itself for ever
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif head == "cut":  # announces 100 bytes, sends 10, closes: a body cut short
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"partial"')
            self.close_connection = True
        elif head == "text":
            self._reply(200, "<html><body>Service temporarily unavailable</body></html>", content_type="text/html")
        elif head == "echo":
            self._reply(
                200, {"method": self.command, "headers": dict(self.headers), "body": body.decode(errors="replace")}
            )
        elif head == "business":
            self._reply(200, {"code": int(query.get("code", 4001)), "msg": "insufficient funds"})
        elif head == "burst":
            cycle, burst = float(query.get("cycle", 8)), float(query.get("burst", 3))
            in_burst = (time.monotonic() - owner.started) % cycle < burst
            self._reply(503 if in_burst else 200, {"burst": in_burst}, {"Retry-After": "1"} if in_burst else {})
        elif head == "flaky":
            if random.random() < float(query.get("rate", 0.3)):
                self._reply(503, {"status": 503})
            else:
                owner.stopping.wait(random.uniform(0.005, 0.04))
                self._reply(200, {"ok": True})
        else:
            self._reply(200, {"ok": True, "method": self.command, "path": parts.path})

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None, content_type: str = "") -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _trickle(self, interval: float, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.flush()
        try:
            for _ in range(size):
                if self.server.owner.stopping.wait(interval):
                    break
                self.wfile.write(b".")
                self.wfile.flush()
        except OSError:
            pass  # the client gave up and closed: that is what trickling is for
        self.close_connection = True


class DemoServer:
    """A misbehaving HTTP server on 127.0.0.1 (a free port), run in a background thread.

    >>> with DemoServer() as server:
    ...     url = server.url("/status/503?retry_after=1")
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.sequences: Counter[str] = Counter()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.connections = 0
        self.stopping = threading.Event()
        self.started = time.monotonic()
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="resilience-demo-server", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this server."""
        return self.base + path

    def start(self) -> DemoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases /hang, /delay and /trickle handlers
        self._server.shutdown()
        self._server.server_close()

    def reset_counts(self) -> None:
        with self.lock:
            self.hits.clear()
            self.sequences.clear()
            self.requests.clear()
            self.connections = 0

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
