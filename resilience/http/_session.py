"""``http.Session``: a requests.Session that never waits forever and keeps to the deadline.

How the time of one request is bounded:

- it always has a (connect, read) timeout: the one passed, else the enclosing
  ``http.policy``'s, else the Session's own (default (3, 10));
- inside a deadline (``rs.timeout``, a Policy's total timeout, ``rs.deadline.scope``) both
  are clipped to the time left, again at each redirect hop; a request whose deadline has
  passed is not sent;
- the Session's connections clip every socket read and write made under a deadline to the
  time left, so a server trickling its headers or body, or reading an upload slowly,
  cannot outlast the deadline. Past it the socket is closed and ``rs.DeadlineExceeded``
  raised (``kind="deadline"``).

Limits: name resolution cannot be bounded (``getaddrinfo`` blocks), nor can a TLS
handshake beyond its (clipped) connect timeout per socket wait, nor TLS inside a TLS
proxy tunnel; with ``stream=True`` the caller's body reads inside the deadline stop at
it with requests' own error (not ``DeadlineExceeded``), and reads after it are bounded
each by the read timeout as clipped when the request was sent; without a deadline only
the timeouts bound each socket wait, not the whole request. An adapter you mount
yourself replaces this handling for its prefix (the default timeout still applies).
``Response.elapsed`` includes reading the body.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
import urllib3.exceptions
import urllib3.poolmanager
from requests import exceptions as rex
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from resilience import _clock
from resilience._engine import active_deadline, current_record
from resilience.deadline import expires_at
from resilience.errors import DeadlineExceeded
from resilience.http import _context
from resilience.http._classify import IDEMPOTENT_METHODS, exception_chain

__all__ = ["Session"]

_CHUNK = 65_536
# Our retry layers decide what to retry; urllib3 must never resend on its own.
_NO_RETRIES = Retry(total=0, read=False, redirect=False, raise_on_status=False)

# How requests' own body reading (Response.iter_content) translates urllib3's errors,
# except a read timeout, which becomes ReadTimeout rather than ConnectionError.
_BODY_ERRORS: tuple[tuple[type[BaseException], type[rex.RequestException]], ...] = (
    (urllib3.exceptions.ReadTimeoutError, rex.ReadTimeout),
    (urllib3.exceptions.ProtocolError, rex.ChunkedEncodingError),
    (urllib3.exceptions.DecodeError, rex.ContentDecodingError),
    (urllib3.exceptions.SSLError, rex.SSLError),
)


def _check_pool(parameter: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{parameter} must be an int >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{parameter} must be an int >= 1, got {value!r}")


def _without_secrets(url: str | None) -> str | None:
    """The URL for logs and metrics: no user:password, no query string (API keys live there)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _past(at: float, what: str) -> DeadlineExceeded:
    return DeadlineExceeded(None, max(0.0, _clock.monotonic() - at), deadline=at, kind="deadline", what=what)


def _timed_out(exc: BaseException) -> bool:
    """Whether a (requests or urllib3) error stands for a socket timeout, however wrapped."""
    timeouts = (TimeoutError, urllib3.exceptions.TimeoutError, rex.Timeout)
    return any(isinstance(inner, timeouts) for inner in exception_chain(exc))


def _with_idempotency_key(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The request with the current Idempotency-Key, where one is set and the method needs it."""
    keys = _context.idempotency_key.get()
    if (
        keys is None
        or (request.method or "").upper() in IDEMPOTENT_METHODS
        or _context.IDEMPOTENCY_HEADER in request.headers  # case-insensitive: the caller's own key wins
    ):
        return request
    request = request.copy()  # the caller's prepared request stays as it was
    request.headers[_context.IDEMPOTENCY_HEADER] = keys.next_key()
    return request


class _ClippedSocket:
    """A connected socket whose every read and write made under a deadline waits at most the
    time left (the deadline is looked up in the caller's context at each call); without one
    it is the plain socket, with the timeout urllib3 last set."""

    __slots__ = ("_base", "_clipped", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._base = sock.gettimeout()
        self._clipped = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def _clip(self) -> None:
        at = active_deadline()
        if at is None:
            if self._clipped:
                self._sock.settimeout(self._base)
                self._clipped = False
            return
        left = at - _clock.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")  # as the socket's own timeout: urllib3 and requests wrap it alike
        self._sock.settimeout(left if self._base is None else min(self._base, left))
        self._clipped = True

    def settimeout(self, value: float | None) -> None:
        self._base = value
        self._clipped = False
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._base

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._clip()
        return self._sock.recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._clip()
        return self._sock.recv_into(buffer, nbytes, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self._clip()
        return self._sock.send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        # One clipped send at a time: an SSL socket's sendall gives each of its sends the full timeout.
        view = memoryview(data).cast("B")
        while view:
            view = view[self.send(view[:_CHUNK], flags) :]

    def makefile(self, *args: Any, **kwargs: Any) -> Any:
        # socket.socket's own makefile over this wrapper: its SocketIO reads through recv_into above,
        # and _io_refs below keeps the real socket open until the file closes, as for a plain socket.
        return socket.socket.makefile(self, *args, **kwargs)  # type: ignore[call-overload]

    @property
    def _io_refs(self) -> int:
        return getattr(self._sock, "_io_refs")  # type: ignore[no-any-return]  # noqa: B009

    @_io_refs.setter
    def _io_refs(self, value: int) -> None:
        setattr(self._sock, "_io_refs", value)  # noqa: B010


def _clipped(sock: Any) -> Any:
    # TLS inside a TLS proxy tunnel is an SSLTransport, not a socket: it keeps its plain timeouts.
    return _ClippedSocket(sock) if isinstance(sock, socket.socket) else sock


class _ClippedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = _clipped(self.sock)


class _ClippedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()  # the TLS handshake is done on the real socket
        self.sock = _clipped(self.sock)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _ClippedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _ClippedHTTPSConnection


_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _HTTPPool, "https": _HTTPSPool}


def _read_once(raw: Any, at: float | None, what: str) -> bytes:
    """At most one socket read of the body (clipped to the deadline), unless the deadline has passed."""
    if at is not None and _clock.monotonic() >= at:
        raise _past(at, what)
    return raw.read1(_CHUNK, decode_content=True)  # type: ignore[no-any-return]  # one socket read, unlike read(n)


def _read_body(response: requests.Response, at: float | None, what: str) -> None:
    """Read the whole body into ``response``, as requests would, but against the deadline."""
    raw = response.raw
    chunks: list[bytes] = []
    try:
        while chunk := _read_once(raw, at, what):
            chunks.append(chunk)
    except BaseException as exc:
        response.close()  # a half-read connection never goes back to the pool; a trickling server sees us leave
        if isinstance(exc, DeadlineExceeded):
            raise
        if at is not None and _clock.monotonic() >= at and _timed_out(exc):
            raise _past(at, what) from exc
        for source, target in _BODY_ERRORS:
            if isinstance(exc, source):
                raise target(exc, request=response.request, response=response) from exc
        raise
    response._content = b"".join(chunks)
    response._content_consumed = True
    raw.release_conn()  # urllib3 did it when the body ended; explicit and idempotent


class _DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter that clips each hop's timeouts to the deadline and reads bodies against it,
    over connections whose socket reads and writes are clipped to it.

    ``Session.send`` resolves ``timeout`` (a number or a (connect, read) pair, never None).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:  # a SOCKS proxy has its own
            manager.pool_classes_by_scheme = _POOLS
        return manager

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        connect, read = _context.timeout_pair(timeout)
        what = f"{request.method} {_without_secrets(request.url)}"
        at = expires_at()
        waits: Any = (connect, read)  # requests also takes a urllib3 Timeout, though its types do not say so
        if at is not None:
            left = at - _clock.monotonic()
            if left <= 0:
                raise _past(at, what)
            # total: urllib3 takes the time spent connecting off the wait for the status line
            waits = urllib3.Timeout(connect=min(connect, left), read=min(read, left), total=left)
        try:
            try:
                response = super().send(request, stream=True, timeout=waits, verify=verify, cert=cert, proxies=proxies)
            except (rex.Timeout, rex.ConnectionError) as exc:
                if at is not None and _clock.monotonic() >= at and _timed_out(exc):
                    raise _past(at, what) from exc
                raise
            if not stream:
                _read_body(response, at, what)
        except DeadlineExceeded as exc:
            exc.request = request  # type: ignore[attr-defined]  # the classifier reads the method, as on requests' errors
            raise
        return response


class Session(requests.Session):
    """A requests.Session that never waits forever and keeps to the current deadline.

    ``timeout`` is the default (connect, read) timeout in float seconds, or one number for
    both (default (3.0, 10.0)); a request's own ``timeout=`` wins, then the enclosing
    ``http.policy``'s; ``timeout=None`` means that default, never "wait forever". Inside
    ``rs.timeout`` (any mode), a Policy's total timeout or ``rs.deadline.scope`` every
    wait, the body included, is clipped to the time left; past it, ``rs.DeadlineExceeded``
    is raised with the socket closed. urllib3 never retries (the retry layers decide).
    ``pool_connections`` (hosts kept) and ``pool_maxsize`` (connections kept per host)
    size the keep-alive pool, default 10 each.

    Under ``http.idempotent`` a request whose method is not idempotent gets the call's
    ``Idempotency-Key`` header (unless it carries one); inside ``@rs.monitored`` the
    response's status and the URL go to the monitor.

    >>> session = Session(timeout=(2.0, 5.0), pool_maxsize=20)
    >>> session.timeout
    (2.0, 5.0)
    """

    # What pickling keeps (requests' own mechanism, declared as a plain class attribute there).
    __attrs__ = [*requests.Session.__attrs__, "timeout", "pool_connections", "pool_maxsize"]  # noqa: RUF012

    def __init__(
        self,
        timeout: float | tuple[float, float] = (3.0, 10.0),
        *,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
    ) -> None:
        _check_pool("pool_connections", pool_connections)
        _check_pool("pool_maxsize", pool_maxsize)
        self.timeout = timeout
        super().__init__()
        self.pool_connections = pool_connections
        self.pool_maxsize = pool_maxsize
        for prefix in ("http://", "https://"):
            adapter = _DeadlineAdapter(
                pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=_NO_RETRIES
            )
            self.mount(prefix, adapter)

    @property
    def timeout(self) -> tuple[float, float]:
        """The default (connect, read) timeout, in float seconds."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | tuple[float, float]) -> None:
        self._timeout = _context.timeout_pair(value)

    def __repr__(self) -> str:
        connect, read = self._timeout
        return (
            f"Session(timeout=({connect:g}, {read:g}), pool_connections={self.pool_connections}, "
            f"pool_maxsize={self.pool_maxsize})"
        )

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send ``request`` (each redirect hop comes through here too), see the class docstring."""
        # Resolved here rather than in request() so that send() and every redirect hop get it.
        explicit = kwargs.get("timeout")
        kwargs["timeout"] = (
            _context.timeout_pair(explicit) if explicit is not None else _context.policy_timeout.get() or self._timeout
        )
        request = _with_idempotency_key(request)
        record = current_record.get()
        if record is None:
            return super().send(request, **kwargs)
        record.url = _without_secrets(request.url)
        record.status = None  # an earlier attempt's status must not stand for this one
        response = super().send(request, **kwargs)
        record.status = response.status_code
        return response
