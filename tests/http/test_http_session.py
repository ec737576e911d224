"""``http.Session`` against the real loopback server: default timeouts, deadlines, bodies,
keep-alive, Idempotency-Key, the call record, and no urllib3 retries."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import math
import pickle
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from helpers import wait_until
from urllib3.exceptions import ProtocolError, ReadTimeoutError

import resilience as rs
from resilience import http
from resilience._demo_server import DemoServer
from resilience._engine import CallRecord, current_record
from resilience.http import _context
from resilience.http._session import Session, _read_body, _timed_out

pytestmark = pytest.mark.integration

DEADLINE = 0.5
SLACK = 0.3  # how late past the deadline a request may end on a busy machine


@pytest.fixture
def make_session() -> Iterator[Callable[..., Session]]:
    """Sessions closed at the end of the test (their pooled sockets too)."""
    sessions: list[Session] = []

    def make(*args: Any, **kwargs: Any) -> Session:
        sessions.append(Session(*args, **kwargs))
        return sessions[-1]

    yield make
    for session in sessions:
        session.close()


@contextlib.contextmanager
def context_set(var: ContextVar[Any], value: Any) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def get_under_deadline(how: str, session: Session, url: str, seconds: float = DEADLINE) -> requests.Response:
    """``session.get(url)`` inside a deadline set by a scope, an http.policy, a cooperative
    rs.timeout, or an async cooperative rs.timeout around ``asyncio.to_thread`` (which copies
    the context)."""
    if how == "scope":
        with rs.deadline.scope(seconds):
            return session.get(url)
    if how == "policy":
        return http.policy("under-deadline", deadline=seconds, attempts=1).call(session.get, url)
    if how == "cooperative":

        @rs.timeout(seconds, mode="cooperative")
        def call() -> requests.Response:
            return session.get(url)

        return call()

    @rs.timeout(seconds, mode="cooperative")
    async def acall() -> requests.Response:
        return await asyncio.to_thread(session.get, url)

    return asyncio.run(acall())


def post_under_deadline(session: Session, url: str, **kwargs: Any) -> requests.Response:
    """``session.post(url, **kwargs)`` inside a deadline scope of DEADLINE seconds."""
    with rs.deadline.scope(DEADLINE):
        return session.post(url, **kwargs)


def cut_at_the_deadline(request: Callable[[], object]) -> rs.DeadlineExceeded:
    """Run ``request()``, expecting DeadlineExceeded within DEADLINE + SLACK seconds; return the error."""
    start = time.monotonic()
    with pytest.raises(rs.DeadlineExceeded) as caught:
        request()
    assert time.monotonic() - start < DEADLINE + SLACK
    return caught.value


def handler_threads() -> set[threading.Thread]:
    """The demo server's live request-handler threads (ThreadingHTTPServer names them so)."""
    return {t for t in threading.enumerate() if t.name.endswith("(process_request_thread)")}


# --- a scripted raw-socket server, for misbehaviours the demo server has no route for ------

Script = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """A loopback server running ``script(conn, stop)`` on each connection in a daemon thread;
    ``stop`` is set, and every socket shut down, at ``close()``."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.stop = threading.Event()
        self.connections = 0
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.listener = socket.socket()
        # A small receive window (inherited by accepted sockets) makes a slow reader slow at once.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.settimeout(0.05)  # the accept loop looks at `stop` this often
        self.spawn(self.accept)

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}{path}"

    def spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self.sockets.append(conn)
            self.spawn(self.serve, conn)

    def serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                self.sockets.append(conn)
            self.script(conn, self.stop)
        conn.close()

    def close(self) -> None:
        self.stop.set()
        for conn in self.sockets:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes a script blocked in recv
        for thread in self.threads:
            thread.join(2.0)
        self.listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    """Starts RawServers, stopped at the end of the test."""
    servers: list[RawServer] = []

    def start(script: Script, tls: ssl.SSLContext | None = None) -> RawServer:
        servers.append(RawServer(script, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def read_head(conn: socket.socket) -> bytes:
    """The request line and headers (b"" once the client has gone)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        head += chunk
    return head


def answer_then_close(conn: socket.socket, stop: threading.Event) -> None:
    """Headers saying Connection: close, then the body a moment later, then the end."""
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n")
    stop.wait(0.05)
    conn.sendall(b"ok")


def answer_ok(conn: socket.socket, stop: threading.Event) -> None:
    """Answers each request on the connection (bodiless requests only) with a 2-byte body."""
    while read_head(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def trickle_headers(conn: socket.socket, stop: threading.Event) -> None:
    """The status line at once, then one header line per 0.05 s, never an end."""
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.wait(0.05):
        conn.sendall(b"X-Slow: a\r\n")


def trickle_gzip_header(conn: socket.socket, stop: threading.Event) -> None:
    """A gzip body whose header's file name never ends, one byte per 0.05 s: the decoder
    has nothing to give, so a single decoding read would keep reading."""
    read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 100000\r\n\r\n")
    conn.sendall(b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\x03")  # FLG.FNAME: a name follows
    while not stop.wait(0.05):
        conn.sendall(b"a")


def read_slowly(conn: socket.socket, stop: threading.Event) -> None:
    """Reads the request 16 KiB per 0.05 s: every write makes progress, the upload takes minutes."""
    while conn.recv(16_384) and not stop.wait(0.05):
        pass


UPLOAD = 16 * 2**20


def upload_body(kind: str) -> bytes | Iterable[bytes] | io.BytesIO:
    """16 MiB as one bytes object, a generator (chunked encoding) or a file."""
    if kind == "bytes":
        return b"x" * UPLOAD
    if kind == "file":
        return io.BytesIO(b"x" * UPLOAD)
    return (b"x" * 65_536 for _ in range(UPLOAD // 65_536))


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    """A server-side TLS context with the self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    return context


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [((2, 5), (2.0, 5.0)), (4, (4.0, 4.0)), ([1.5, 3], (1.5, 3.0)), ((0.25, 0.5), (0.25, 0.5))],
)
def test_timeout_normalised_to_a_pair(value: Any, expected: tuple[float, float]) -> None:
    """One number stands for both timeouts; pairs come back as float (connect, read)."""
    session = Session(value)
    assert expected == session.timeout
    session.close()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (math.inf, ValueError),
        (math.nan, ValueError),
        ("3", TypeError),
        (True, TypeError),
        (None, TypeError),
        ((1,), ValueError),
        ((1, 2, 3), ValueError),
        ((1, 0), ValueError),
        ((None, 5), TypeError),
        ((1, math.inf), ValueError),
    ],
)
def test_bad_timeout_rejected_naming_the_parameter(value: Any, error: type[Exception]) -> None:
    """A timeout that is not a positive finite number or a pair of them raises, naming timeout."""
    with pytest.raises(error, match="timeout"):
        Session(value)


def test_bad_timeout_assigned_later_rejected() -> None:
    """Assigning session.timeout validates it too."""
    session = Session()
    with pytest.raises(ValueError, match="timeout"):
        session.timeout = -2
    assert (3.0, 10.0) == session.timeout
    session.close()


@pytest.mark.parametrize(
    ("parameter", "value", "error"),
    [
        ("pool_connections", 0, ValueError),
        ("pool_maxsize", -3, ValueError),
        ("pool_maxsize", True, TypeError),
        ("pool_connections", 2.0, TypeError),
        ("pool_maxsize", "10", TypeError),
    ],
)
def test_bad_pool_size_rejected_naming_the_parameter(parameter: str, value: Any, error: type[Exception]) -> None:
    """Pool sizes are ints >= 1 (bool rejected); the message names the parameter."""
    with pytest.raises(error, match=parameter):
        Session(**{parameter: value})


def test_repr_and_pickle_keep_the_configuration() -> None:
    """The repr shows timeout and pool sizes; a pickled Session keeps them."""
    session = Session((2, 7.5), pool_connections=3, pool_maxsize=4)
    copy = pickle.loads(pickle.dumps(session))
    assert "Session(timeout=(2, 7.5), pool_connections=3, pool_maxsize=4)" == repr(session)
    assert repr(session) == repr(copy)
    session.close()
    copy.close()


def test_public_name() -> None:
    """The Session is exported as http.Session."""
    assert Session is http.Session


# --- timeouts -----------------------------------------------------------------------------


def test_default_timeout_applied_when_none_passed(
    http_server: DemoServer, make_session: Callable[..., Session]
) -> None:
    """Without a timeout argument the Session's own read timeout ends a slow answer."""
    session = make_session(timeout=(1, 0.2))
    start = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        session.get(http_server.url("/delay/1"))
    assert time.monotonic() - start < 0.7


def test_timeout_none_still_bounded(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """timeout=None means the default, never "wait forever"."""
    session = make_session(timeout=(1, 0.2))
    start = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        session.get(http_server.url("/delay/1"), timeout=None)
    assert time.monotonic() - start < 0.7


@pytest.mark.parametrize("positional", [False, True])
def test_explicit_timeout_wins(http_server: DemoServer, make_session: Callable[..., Session], positional: bool) -> None:
    """A request's own timeout, by keyword or in requests' positional order, beats the default."""
    session = make_session(timeout=(1, 0.1))
    url = http_server.url("/delay/0.3")
    if positional:  # method, url, params, data, headers, cookies, files, auth, timeout
        response = session.request("GET", url, None, None, None, None, None, None, 2.0)
    else:
        response = session.get(url, timeout=(1, 2))
    assert 200 == response.status_code


def test_policy_timeout_used_when_none_passed(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """The enclosing http.policy's timeout (its context variable) beats the Session's default."""
    session = make_session(timeout=(1, 5))
    start = time.monotonic()
    with context_set(_context.policy_timeout, (1.0, 0.2)), pytest.raises(requests.ReadTimeout):
        session.get(http_server.url("/delay/1"))
    assert time.monotonic() - start < 0.7


def test_explicit_timeout_beats_policy_timeout(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """A request's own timeout beats the policy's."""
    session = make_session()
    with context_set(_context.policy_timeout, (1.0, 0.1)):
        assert 200 == session.get(http_server.url("/delay/0.3"), timeout=2).status_code


def test_bad_request_timeout_rejected_before_sending(
    http_server: DemoServer, make_session: Callable[..., Session]
) -> None:
    """A bad per-request timeout raises, naming timeout, and nothing is sent."""
    session = make_session()
    with pytest.raises(ValueError, match="timeout"):
        session.get(http_server.url("/ok"), timeout=-1)
    assert 0 == http_server.hits["/ok"]


def test_read_timeout_shorter_than_deadline_stays_read_timeout(
    http_server: DemoServer, make_session: Callable[..., Session]
) -> None:
    """Inside a long deadline, the plain read timeout still raises requests' ReadTimeout."""
    session = make_session(timeout=(1, 0.2))
    with rs.deadline.scope(5), pytest.raises(requests.ReadTimeout):
        session.get(http_server.url("/delay/1"))


def test_body_read_timeout_is_read_timeout_with_request(
    http_server: DemoServer, make_session: Callable[..., Session]
) -> None:
    """A body stalling longer than the read timeout raises ReadTimeout carrying request and response."""
    session = make_session(timeout=(1, 0.2))
    with pytest.raises(requests.ReadTimeout) as caught:
        session.get(http_server.url("/trickle?interval=0.5&bytes=5"))
    assert caught.value.request is not None
    assert "GET" == caught.value.request.method
    assert caught.value.response is not None
    assert 200 == caught.value.response.status_code


def test_slow_body_without_deadline_read_fully(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """Without a deadline, a body whose bytes come within the read timeout is read to the end."""
    session = make_session(timeout=(1, 0.5))
    assert b"......" == session.get(http_server.url("/trickle?interval=0.02&bytes=6")).content


# --- the deadline -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["scope", "cooperative", "async"])
def test_hang_ends_at_the_deadline(http_server: DemoServer, make_session: Callable[..., Session], how: str) -> None:
    """A server that never answers ends the request with DeadlineExceeded at the deadline,
    though the read timeout is longer."""
    session = make_session()
    error = cut_at_the_deadline(lambda: get_under_deadline(how, session, http_server.url("/hang")))
    assert "deadline" == error.kind
    assert isinstance(error.__cause__, requests.ReadTimeout)
    assert f"GET {http_server.url('/hang')}" in str(error)


@pytest.mark.parametrize("how", ["scope", "cooperative", "async"])
def test_trickling_body_cut_at_the_deadline(
    http_server: DemoServer, make_session: Callable[..., Session], how: str
) -> None:
    """A body sent one byte per 0.2 s (each read well within the read timeout) is cut at the deadline."""
    session = make_session()
    error = cut_at_the_deadline(
        lambda: get_under_deadline(how, session, http_server.url("/trickle?interval=0.2&bytes=50"))
    )
    assert "deadline" == error.kind


def test_trickle_cut_closes_the_socket(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """Past the deadline the socket is closed: the server's trickle stops, and the next request
    opens a new connection instead of reusing the half-read one."""
    session = make_session()
    before = handler_threads()
    with pytest.raises(rs.DeadlineExceeded):
        get_under_deadline("scope", session, http_server.url("/trickle?interval=0.2&bytes=50"))
    trickling = handler_threads() - before
    wait_until(lambda: not any(thread.is_alive() for thread in trickling), 3.0)  # else it would trickle 10 s
    assert 200 == session.get(http_server.url("/ok")).status_code
    assert 2 == http_server.connections


def test_past_deadline_sends_nothing(
    http_server: DemoServer, make_session: Callable[..., Session], clock: rs.testing.FakeClock
) -> None:
    """A request made after its deadline raises DeadlineExceeded without reaching the server."""
    session = make_session()
    with rs.deadline.scope(1.0) as deadline:
        clock.advance(1.5)
        with pytest.raises(rs.DeadlineExceeded) as caught:
            session.post(http_server.url("/ok"), json={"a": 1})
    assert deadline == caught.value.deadline
    assert "deadline" == caught.value.kind
    assert 0.5 == pytest.approx(caught.value.elapsed)
    assert 0 == http_server.hits["/ok"]
    assert 0 == http_server.connections


@pytest.mark.parametrize("how", ["scope", "cooperative", "async"])
def test_request_within_deadline_succeeds(
    http_server: DemoServer, make_session: Callable[..., Session], how: str
) -> None:
    """A quick request inside a deadline reads its body and returns normally."""
    session = make_session()
    response = get_under_deadline(how, session, http_server.url("/ok"))
    assert {"ok": True, "method": "GET", "path": "/ok"} == response.json()


@pytest.mark.parametrize("how", ["scope", "policy", "cooperative", "async"])
def test_trickling_headers_cut_at_the_deadline(
    raw_server: Callable[..., RawServer], make_session: Callable[..., Session], how: str
) -> None:
    """Headers sent one line per 0.05 s (each read well within the read timeout) are cut at the deadline."""
    server = raw_server(trickle_headers)
    session = make_session()
    error = cut_at_the_deadline(lambda: get_under_deadline(how, session, server.url()))
    assert "deadline" == error.kind


def test_undecodable_gzip_trickle_cut_at_the_deadline(
    raw_server: Callable[..., RawServer], make_session: Callable[..., Session]
) -> None:
    """A trickled gzip body that never decodes to a byte is cut at the deadline all the same."""
    server = raw_server(trickle_gzip_header)
    session = make_session()
    cut_at_the_deadline(lambda: get_under_deadline("scope", session, server.url()))


@pytest.mark.parametrize("kind", ["bytes", "generator", "file"])
def test_upload_to_slow_reader_cut_at_the_deadline(
    raw_server: Callable[..., RawServer], make_session: Callable[..., Session], kind: str
) -> None:
    """An upload the server reads slowly (every write makes progress) is cut at the deadline."""
    server = raw_server(read_slowly)
    session = make_session()
    body = upload_body(kind)
    error = cut_at_the_deadline(lambda: post_under_deadline(session, server.url("/upload"), data=body))
    assert "deadline" == error.kind


def test_streamed_body_read_inside_the_deadline_cut_at_it(
    http_server: DemoServer, make_session: Callable[..., Session]
) -> None:
    """With stream=True, the caller's body reads inside the deadline end at it (with requests' own error)."""
    session = make_session()
    start = time.monotonic()
    with rs.deadline.scope(DEADLINE):
        response = session.get(http_server.url("/trickle?interval=0.2&bytes=50"), stream=True)
        with pytest.raises(requests.ConnectionError):
            _ = response.content
    assert time.monotonic() - start < DEADLINE + SLACK


# --- bodies and connections ---------------------------------------------------------------


def test_large_body_read_fully(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """A body of many socket reads arrives whole and .json() works."""
    session = make_session()
    payload = "x" * 300_000
    response = session.post(http_server.url("/echo"), data=payload)
    assert payload == response.json()["body"]


def test_head_has_empty_body(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """A HEAD response has an empty body and leaves the connection reusable."""
    session = make_session()
    assert b"" == session.head(http_server.url("/ok")).content
    assert 200 == session.get(http_server.url("/ok")).status_code
    assert 1 == http_server.connections


def test_stream_true_left_to_the_caller(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """With stream=True the body is not read up front; the caller reads it as with requests."""
    session = make_session()
    with session.get(http_server.url("/ok"), stream=True) as response:
        body = b"".join(response.iter_content(4))
    assert {"ok": True, "method": "GET", "path": "/ok"} == json.loads(body)


def test_keep_alive_one_connection(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """20 sequential GETs reuse one pooled connection."""
    session = make_session()
    for _ in range(20):
        assert 200 == session.get(http_server.url("/ok")).status_code
    assert 20 == http_server.hits["/ok"]
    assert 1 == http_server.connections


def test_urllib3_never_retries(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """A connection reset surfaces at once: the server sees one request."""
    session = make_session()
    with pytest.raises(requests.ConnectionError):
        session.get(http_server.url("/reset"))
    assert 1 == http_server.hits["/reset"]


def test_connection_close_body_read_to_the_end(
    raw_server: Callable[..., RawServer], make_session: Callable[..., Session]
) -> None:
    """A body after "Connection: close" headers is read whole, inside a deadline or not
    (http.client lets go of the connection at the headers; the socket stays open for the body)."""
    server = raw_server(answer_then_close)
    session = make_session()
    assert b"ok" == session.get(server.url()).content
    with rs.deadline.scope(5):
        assert b"ok" == session.get(server.url()).content
    assert 2 == server.connections


def test_keep_alive_inside_deadlines(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """Requests inside deadlines, and after them, reuse one pooled connection."""
    session = make_session()
    for _ in range(5):
        with rs.deadline.scope(5):
            assert 200 == session.get(http_server.url("/ok")).status_code
        assert 200 == session.get(http_server.url("/ok")).status_code
    assert 1 == http_server.connections


# --- HTTPS (a self-signed certificate) ------------------------------------------------------


def test_https_keep_alive_one_connection(
    raw_server: Callable[..., RawServer],
    make_session: Callable[..., Session],
    tls: ssl.SSLContext,
    tls_files: tuple[Path, Path],
) -> None:
    """Over TLS, requests inside a deadline and outside it reuse one connection."""
    server = raw_server(answer_ok, tls)
    session = make_session()
    cert = str(tls_files[0])  # per request: REQUESTS_CA_BUNDLE in the environment beats session.verify
    for _ in range(3):
        assert b"ok" == session.get(server.url(), verify=cert).content
        with rs.deadline.scope(5):
            assert b"ok" == session.get(server.url(), verify=cert).content
    assert 1 == server.connections


@pytest.mark.parametrize(("script", "upload"), [(trickle_headers, False), (read_slowly, True)])
def test_https_slow_server_cut_at_the_deadline(
    raw_server: Callable[..., RawServer],
    make_session: Callable[..., Session],
    tls: ssl.SSLContext,
    tls_files: tuple[Path, Path],
    script: Script,
    upload: bool,
) -> None:
    """Over TLS, trickled headers and a slowly read upload are cut at the deadline too."""
    server = raw_server(script, tls)
    session = make_session()
    body = upload_body("generator") if upload else None
    cut_at_the_deadline(lambda: post_under_deadline(session, server.url(), data=body, verify=str(tls_files[0])))


# --- Idempotency-Key ----------------------------------------------------------------------


def test_idempotency_key_added_to_post(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """Under a current idempotency key, a POST carries it as the Idempotency-Key header."""
    session = make_session()
    with context_set(_context.idempotency_key, _context.IdempotencyKeys("key-1", numbered=False)):
        echoed = session.post(http_server.url("/echo"), json={}).json()["headers"]
    assert "key-1" == echoed.get("Idempotency-Key")


def test_idempotency_key_not_added_to_get(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """An idempotent method needs no key and gets none."""
    session = make_session()
    with context_set(_context.idempotency_key, _context.IdempotencyKeys("key-1", numbered=False)):
        echoed = session.get(http_server.url("/echo")).json()["headers"]
    assert [] == [name for name in echoed if name.lower() == "idempotency-key"]


def test_idempotency_key_follows_the_methods_table(
    http_server: DemoServer, make_session: Callable[..., Session]
) -> None:
    """The method check reads http.IDEMPOTENT_METHODS at call time."""
    session = make_session()
    http.IDEMPOTENT_METHODS.add("POST")
    try:
        with context_set(_context.idempotency_key, _context.IdempotencyKeys("key-1", numbered=False)):
            echoed = session.post(http_server.url("/echo")).json()["headers"]
    finally:
        http.IDEMPOTENT_METHODS.discard("POST")
    assert "Idempotency-Key" not in echoed


def test_callers_idempotency_key_kept_and_headers_untouched(
    http_server: DemoServer, make_session: Callable[..., Session]
) -> None:
    """A caller's own key (any case) is kept, and the caller's headers dict is never changed."""
    session = make_session()
    own = {"idempotency-key": "mine"}
    other = {"X-Trace": "t"}
    with context_set(_context.idempotency_key, _context.IdempotencyKeys("key-1", numbered=False)):
        kept = session.post(http_server.url("/echo"), headers=own).json()["headers"]
        added = session.post(http_server.url("/echo"), headers=other).json()["headers"]
    assert ["mine"] == [value for name, value in kept.items() if name.lower() == "idempotency-key"]
    assert "key-1" == added.get("Idempotency-Key")
    assert {"idempotency-key": "mine"} == own
    assert {"X-Trace": "t"} == other


# --- the call record ----------------------------------------------------------------------


def test_record_gets_status_and_url(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """The current call record learns the response's status and the URL."""
    session = make_session()
    record = CallRecord()
    url = http_server.url("/status/503")
    with context_set(current_record, record):
        session.get(url)
    assert 503 == record.status
    assert url == record.url


def test_record_gets_url_without_response(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """A request that fails without a response still leaves its URL in the record."""
    session = make_session()
    record = CallRecord()
    url = http_server.url("/reset")
    with context_set(current_record, record), pytest.raises(requests.ConnectionError):
        session.get(url)
    assert url == record.url
    assert record.status is None


def test_record_status_cleared_by_a_later_failure(
    http_server: DemoServer, make_session: Callable[..., Session]
) -> None:
    """A request that fails without a response leaves no earlier request's status in the record."""
    session = make_session()
    record = CallRecord()
    with context_set(current_record, record):
        assert 503 == session.get(http_server.url("/status/503")).status_code
        with pytest.raises(requests.ConnectionError):
            session.get(http_server.url("/reset"))
    assert record.status is None


def test_monitor_counts_statuses(http_server: DemoServer, make_session: Callable[..., Session]) -> None:
    """Inside @rs.monitored the response status reaches the monitor's status classes."""
    session = make_session()

    @rs.monitored("users-api")
    def get_user() -> requests.Response:
        return session.get(http_server.url("/status/404"))

    get_user()
    assert {"4xx": 1} == rs.monitor.snapshot("users-api")["statuses"]


# --- reading a body: the translation of urllib3's errors, on real urllib3 responses ----------


def local_response(body: bytes, headers: dict[str, str]) -> requests.Response:
    """A response whose body comes from memory through a real urllib3 HTTPResponse."""
    response = requests.Response()
    response.raw = urllib3.HTTPResponse(
        body=io.BytesIO(body), headers=headers, status=200, preload_content=False, decode_content=False
    )
    response.status_code = 200
    response.request = requests.Request("GET", "http://example.invalid/x").prepare()
    return response


def test_gzip_body_decoded() -> None:
    """A gzip-encoded body is decoded while it is read."""
    response = local_response(gzip.compress(b'{"n": 1}' * 2_000), {"content-encoding": "gzip"})
    _read_body(response, None, "GET x")
    assert b'{"n": 1}' * 2_000 == response.content


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        (b"abc", {"content-length": "10"}, requests.exceptions.ChunkedEncodingError),
        (b"not gzip", {"content-encoding": "gzip"}, requests.exceptions.ContentDecodingError),
    ],
)
def test_body_errors_surface_as_requests_errors(body: bytes, headers: dict[str, str], error: type[Exception]) -> None:
    """A body cut short or undecodable raises requests' own error, carrying the request."""
    response = local_response(body, headers)
    with pytest.raises(error) as caught:
        _read_body(response, None, "GET x")
    assert response.request is caught.value.request
    assert response.raw.closed


def test_deadline_found_passed_between_reads(clock: rs.testing.FakeClock) -> None:
    """A deadline that passed between two reads stops the body there and closes the response."""
    response = local_response(b"{}", {"content-length": "2"})
    with pytest.raises(rs.DeadlineExceeded) as caught:
        _read_body(response, clock.monotonic() - 0.25, "GET http://example.invalid/x")
    assert 0.25 == pytest.approx(caught.value.elapsed)
    assert "GET http://example.invalid/x ran 0.25 s past its deadline" == str(caught.value)
    assert response.raw.closed


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (requests.ReadTimeout("slow"), True),
        (requests.ConnectionError(ProtocolError("Connection aborted.", TimeoutError())), True),
        (
            requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())),
            False,
        ),
        (ReadTimeoutError(None, None, "Read timed out."), True),
        (requests.exceptions.ChunkedEncodingError("broken"), False),
    ],
)
def test_timeouts_recognised_however_wrapped(error: BaseException, expected: bool) -> None:
    """A socket timeout counts as one inside requests' and urllib3's wrappers (e.g. a stalled upload)."""
    assert expected == _timed_out(error)
