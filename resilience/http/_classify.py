"""Which requests errors and HTTP statuses are worth retrying, which count against a
breaker, and how long the server asked us to wait.

The tables below are public, mutable data, read at every classification: add a status
or a method and every policy built on :data:`TRANSIENT` follows. The rules:

============================  ==============  ===========  ============
outcome                       retried for     breaker      reason
============================  ==============  ===========  ============
ConnectTimeout                every method    counts       connect_timeout
refused / DNS failure         every method    counts       connection_failed
429                           every method    not counted  status_429
503                           every method    counts       status_503
ReadTimeout, other Timeout    idempotent      counts       read_timeout / timeout
reset / aborted mid-request   idempotent      counts       connection_broken
ChunkedEncodingError          idempotent      counts       chunked_encoding
408                           idempotent      not counted  status_408
500, 502, 504, other 5xx      idempotent      counts       status_5xx
501, 505                      never           not counted  status_501 / status_505
other 4xx                     never           not counted  status_4xx
SSLError, InvalidURL, ...     never           not counted  ssl / invalid_url / ...
JSONDecodeError               never           not counted  invalid_json (detail: body)
BusinessError                 never           not counted  business
rs.DeadlineExceeded           idempotent (*)  counts       deadline
============================  ==============  ===========  ============

(*) Only when the Session raised it (it knows the request) for a per-attempt deadline:
the retry layer never retries past the enclosing deadline.

"Idempotent" means the request's method is in :data:`IDEMPOTENT_METHODS`, or the request
carries an ``Idempotency-Key`` header. The method and headers come from the exception's or
the response's own ``request``; when there is none the request is taken as not idempotent.
"""

from __future__ import annotations

import json
import logging
import math
import socket
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3.exceptions
from requests import exceptions as rex

from resilience import _clock
from resilience.classify import SUCCESS, Classifier, Outcome, Verdict
from resilience.errors import DeadlineExceeded, ResilienceError
from resilience.http._context import IDEMPOTENCY_HEADER

logger = logging.getLogger("resilience")

BusinessHook = Callable[[Any], object]


class BusinessError(ResilienceError):
    """A 2xx answer whose body says the request failed (flagged by a ``business=`` hook).

    Fatal: never retried, never counted against a breaker. ``body`` is what the hook saw
    (the parsed JSON of a response, or the returned value); ``response`` the response, if any.
    """

    def __init__(self, message: str, *, body: Any = None, response: requests.Response | None = None) -> None:
        self.body = body
        self.response = response
        super().__init__(message)


IDEMPOTENT_METHODS: set[str] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}
"""Methods whose requests are safe to send twice (RFC 9110 section 9.2.2)."""

RETRY_ANY_METHOD_STATUSES: set[int] = {429, 503}
"""Statuses retried whatever the method: the server refused the request without acting on it."""

RETRY_IDEMPOTENT_STATUSES: set[int] = {408, 500, 502, 504}
"""Statuses retried for idempotent requests only (the server may have acted). Other 5xx too."""

FATAL_STATUSES: set[int] = {501, 505}
"""Server-side statuses that will not change on retry: never retried, never counted."""

FATAL_ERRORS: list[type[BaseException]] = [
    rex.SSLError,
    rex.InvalidURL,
    rex.MissingSchema,
    rex.InvalidSchema,
    rex.InvalidHeader,
    rex.URLRequired,
    rex.TooManyRedirects,
    rex.InvalidJSONError,  # requests' JSONDecodeError too
    json.JSONDecodeError,
    rex.ContentDecodingError,
    BusinessError,
]
"""Errors that retrying cannot fix and that say nothing about the server's health."""

RETRY_ANY_METHOD_ERRORS: list[type[BaseException]] = [rex.ConnectTimeout]
"""Errors raised before the request reached the server (a refused connection or a failed
name lookup is recognised inside ``requests.ConnectionError`` as well)."""

RETRY_IDEMPOTENT_ERRORS: list[type[BaseException]] = [rex.Timeout, rex.ChunkedEncodingError, rex.ConnectionError]
"""Errors after which the server may have acted on the request."""

COUNTED_ERRORS: list[type[BaseException]] = [rex.Timeout, rex.ConnectionError, rex.ChunkedEncodingError]
"""Errors that count against a breaker (server-side trouble), unless listed in FATAL_ERRORS."""

_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (rex.ConnectTimeout, "connect_timeout"),
    (rex.ReadTimeout, "read_timeout"),
    (rex.Timeout, "timeout"),
    (rex.SSLError, "ssl"),
    (rex.ChunkedEncodingError, "chunked_encoding"),
    (rex.ContentDecodingError, "content_decoding"),
    (rex.InvalidJSONError, "invalid_json"),
    (json.JSONDecodeError, "invalid_json"),
    (rex.TooManyRedirects, "too_many_redirects"),
    (rex.InvalidHeader, "invalid_header"),
    (rex.InvalidURL, "invalid_url"),
    (rex.MissingSchema, "invalid_url"),
    (rex.InvalidSchema, "invalid_url"),
    (rex.URLRequired, "invalid_url"),
    (BusinessError, "business"),
)

# What a connection that never reached the server looks like inside requests' wrappers.
_NEVER_CONNECTED = (urllib3.exceptions.NewConnectionError, ConnectionRefusedError, socket.gaierror)
_BODY_EXCERPT = 500


def parse_retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header value asks for: delta-seconds or an HTTP-date.

    Returns None when absent or unreadable; a date in the past gives 0. Dates are read
    against the resilience wall clock, so fake clocks and freezegun drive them.

    >>> parse_retry_after("120")
    120.0
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # asctime dates carry no zone; every HTTP-date is GMT
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - _clock.wall()
        return max(seconds, 0.0)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _is_idempotent(request: Any) -> bool:
    if request is None:
        return False
    method = str(getattr(request, "method", "") or "").upper()
    if method in IDEMPOTENT_METHODS:
        return True
    headers = getattr(request, "headers", None)
    if isinstance(headers, Mapping):
        wanted = IDEMPOTENCY_HEADER.lower()
        return any(str(key).lower() == wanted for key in headers)
    return False


def _not_idempotent_detail(request: Any) -> str:
    method = str(getattr(request, "method", "") or "").upper() or "a request of unknown method"
    return f"not retried: {method} is not idempotent and carries no {IDEMPOTENCY_HEADER} header"


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (args, ``reason``, cause, context), each once:
    requests wraps urllib3's errors, which wrap the socket's."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend((*current.args, getattr(current, "reason", None), current.__cause__, current.__context__))


def _never_connected(exc: BaseException) -> bool:
    """True when a ConnectionError wraps a refused connection or a failed name lookup."""
    return any(isinstance(inner, _NEVER_CONNECTED) for inner in exception_chain(exc))


def _reason(exc: BaseException) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    if isinstance(exc, rex.ConnectionError):
        return "connection_failed" if _never_connected(exc) else "connection_broken"
    return type(exc).__name__


def _json_detail(exc: BaseException) -> str | None:
    doc = getattr(exc, "doc", None)
    return doc[:_BODY_EXCERPT] if isinstance(doc, str) else None


def _response_verdict(response: requests.Response) -> Verdict | None:
    status = response.status_code
    if status < 400:
        return None
    reason = f"status_{status}"
    counts = status >= 500 and status not in FATAL_STATUSES
    if status not in RETRY_ANY_METHOD_STATUSES:
        if status not in RETRY_IDEMPOTENT_STATUSES and not counts:
            return Verdict(True, False, False, True, reason)  # other 4xx, 501, 505: retrying cannot help
        if not _is_idempotent(response.request):
            return Verdict(True, False, counts, not counts, reason, None, _not_idempotent_detail(response.request))
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return Verdict(True, True, counts, not counts, reason, retry_after)


def _exception_verdict(exc: BaseException) -> Verdict | None:
    if isinstance(exc, rex.HTTPError) and exc.response is not None:
        return _response_verdict(exc.response)
    if isinstance(exc, DeadlineExceeded):
        # Counted: the server was too slow. Retried like a read timeout when the Session
        # says which request ran out of time (the retry layer never retries past the
        # enclosing deadline, so only a per-attempt deadline is retried).
        request = getattr(exc, "request", None)
        return Verdict(True, _is_idempotent(request), True, False, "deadline")
    if not isinstance(exc, (rex.RequestException, json.JSONDecodeError, BusinessError)):
        return None  # not an HTTP failure: no opinion (combine with `|` to add your own)
    reason = _reason(exc)
    if isinstance(exc, tuple(FATAL_ERRORS)):
        return Verdict(True, False, False, True, reason, None, _json_detail(exc))
    counts = isinstance(exc, tuple(COUNTED_ERRORS))
    request = getattr(exc, "request", None)
    if isinstance(exc, tuple(RETRY_ANY_METHOD_ERRORS)) or reason == "connection_failed":
        return Verdict(True, True, counts, False, reason)
    if isinstance(exc, tuple(RETRY_IDEMPOTENT_ERRORS)):
        if _is_idempotent(request):
            return Verdict(True, True, counts, False, reason)
        return Verdict(True, False, counts, not counts, reason, None, _not_idempotent_detail(request))
    return Verdict(True, False, counts, not counts, reason)  # other requests errors: the client's own doing


def check_business(hook: object) -> None:
    """Reject a ``business=`` hook that is not callable, naming the parameter."""
    if hook is not None and not callable(hook):
        raise TypeError(f"business must be a callable taking the response body, got {hook!r}")


def business_failure(value: Any, hook: BusinessHook) -> BusinessError | None:
    """The error a ``business=`` hook sees in a returned value (or a 2xx response's JSON body)."""
    response = value if isinstance(value, requests.Response) else None
    if response is not None:
        if not 200 <= response.status_code < 300:
            return None
        try:
            body = response.json()
        except ValueError:
            return None  # not JSON: nothing for the hook to read
    else:
        body = value
    try:
        message = hook(body)
    except Exception:  # a hook must never change the call's outcome
        logger.exception("business hook %r raised; ignored", hook)
        return None
    if not message:
        return None
    return BusinessError(str(message), body=body, response=response)


def _verdict(outcome: Outcome, business: BusinessHook | None) -> Verdict | None:
    exc = outcome.exception
    if exc is not None:
        return _exception_verdict(exc)
    value = outcome.value
    if isinstance(value, requests.Response):
        verdict = _response_verdict(value)
        if verdict is not None:
            return verdict
    if business is not None and (error := business_failure(value, business)) is not None:
        return Verdict(True, False, False, True, "business", None, str(error)[:_BODY_EXCERPT])
    return None


def transient(*, business: BusinessHook | None = None) -> Classifier:
    """The HTTP classifier, with an optional ``business`` hook.

    ``business(body)`` sees the parsed JSON of a 2xx response (or a returned non-response
    value) and returns a truthy message when the body reports a failure, e.g.
    ``lambda body: body.get("msg") if body.get("code") else None``: that outcome is fatal.
    The classifier has no opinion (None) on successes and on non-HTTP outcomes, so
    ``transient() | MyError`` adds rules.
    """
    check_business(business)
    label = (
        "http.TRANSIENT"
        if business is None
        else f"http.transient(business={getattr(business, '__name__', business)!r})"
    )
    return Classifier(lambda outcome: _verdict(outcome, business), label)


TRANSIENT = transient()
"""The HTTP classifier: ``rs.retry_on(http.TRANSIENT)``, ``rs.circuit(..., on=http.TRANSIENT)``."""


def classify(outcome: Outcome, *, business: BusinessHook | None = None) -> Verdict:
    """The verdict on one HTTP outcome (a raised exception or a returned response).

    Successes (and returned values that are not error responses) get ``rs.Verdict(failed=False)``.
    An exception that is not an HTTP failure gets a failed verdict that is neither
    retryable nor counted, named after its type; :data:`TRANSIENT` itself has no opinion
    on it (so a breaker on ``TRANSIENT`` treats it as a success, as resilience4j does).

    >>> import requests, resilience as rs
    >>> from resilience import http
    >>> response = requests.Response()
    >>> response.status_code = 404
    >>> http.classify(rs.Outcome(response)).retryable
    False
    """
    check_business(business)
    if not isinstance(outcome, Outcome):
        raise TypeError(
            f"classify() takes an rs.Outcome (Outcome(value) or Outcome.of_exception(exc)), got {outcome!r}"
        )
    verdict = _verdict(outcome, business)
    if verdict is not None:
        return verdict
    if outcome.exception is not None:  # not an HTTP failure: not retried, and TRANSIENT does not count it
        return Verdict(True, False, False, False, type(outcome.exception).__name__)
    return SUCCESS
