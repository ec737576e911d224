"""``http.Session``: a requests.Session that never waits forever and keeps to the deadline.

How the time of one request is bounded:

- it always has a (connect, read) timeout: the one passed, else the enclosing
  ``http.policy``'s, else the Session's own (default (3, 10));
- inside a deadline (``rs.timeout``, a Policy's total timeout, ``rs.deadline.scope``) both
  are clipped to the time left, again at each redirect hop; a request whose deadline has
  passed is not sent;
- the body is read here, one socket read at a time, each bounded by min(read timeout,
  time left), so a server trickling its body cannot outlast the deadline. Past it the
  socket is closed and ``rs.DeadlineExceeded`` raised (``kind="deadline"``).

Limits: name resolution cannot be bounded (``getaddrinfo`` blocks); the status line and
headers are parsed by http.client, each socket read bounded by the (clipped) read timeout,
so a server trickling its *headers* can overrun the deadline (the first body read then
stops it); with ``stream=True`` the caller reads the body, each read bounded by the
read timeout clipped when the request was sent; without a deadline only the read timeout
bounds each read, not the whole body. An adapter you mount yourself replaces this
handling for its prefix (the default timeout still applies). ``Response.elapsed``
includes reading the body.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
import urllib3.exceptions
from requests import exceptions as rex
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from resilience import _clock
from resilience._engine import current_record
from resilience.deadline import expires_at
from resilience.errors import DeadlineExceeded
from resilience.http import _context
from resilience.http._classify import IDEMPOTENT_METHODS

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
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (TimeoutError, urllib3.exceptions.TimeoutError, rex.Timeout)):
            return True
        stack.extend((*current.args, getattr(current, "reason", None), current.__cause__, current.__context__))
    return False


def _with_idempotency_key(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The request with the current Idempotency-Key, where one is set and the method needs it."""
    key = _context.idempotency_key.get()
    if (
        key is None
        or (request.method or "").upper() in IDEMPOTENT_METHODS
        or _context.IDEMPOTENCY_HEADER in request.headers  # case-insensitive: the caller's own key wins
    ):
        return request
    request = request.copy()  # the caller's prepared request stays as it was
    request.headers[_context.IDEMPOTENCY_HEADER] = key
    return request


def _read_once(raw: Any, at: float | None, read: float, what: str) -> bytes:
    """At most one socket read of the body, its wait bounded by min(read, time left)."""
    wait = read
    if at is not None:
        left = at - _clock.monotonic()
        if left <= 0:
            raise _past(at, what)
        wait = min(read, left)
    # urllib3 sets the read timeout once per request: tighten it before every read.
    # No connection: urllib3 has already released it, the body has ended.
    sock = getattr(raw.connection, "sock", None)
    if sock is not None:
        sock.settimeout(wait)
    return raw.read1(_CHUNK, decode_content=True)  # type: ignore[no-any-return]  # one socket read, unlike read(n)


def _read_body(response: requests.Response, at: float | None, read: float, what: str) -> None:
    """Read the whole body into ``response``, as requests would, but against the deadline."""
    raw = response.raw
    chunks: list[bytes] = []
    try:
        while chunk := _read_once(raw, at, read, what):
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
    """An HTTPAdapter that clips each hop's timeouts to the deadline and reads bodies against it.

    ``Session.send`` resolves ``timeout`` (a number or a (connect, read) pair, never None).
    """

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
            response = super().send(request, stream=True, timeout=waits, verify=verify, cert=cert, proxies=proxies)
        except (rex.Timeout, rex.ConnectionError) as exc:
            if at is not None and _clock.monotonic() >= at and _timed_out(exc):
                raise _past(at, what) from exc
            raise
        if not stream:
            _read_body(response, at, read, what)
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
        response = super().send(request, **kwargs)
        record.status = response.status_code
        return response
