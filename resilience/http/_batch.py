"""``http.fetch_all``: many requests through one Session and a bounded pool of daemon threads.

Every item runs through a policy (by default one ``http.policy`` per host), its outcome
becomes an :class:`ItemResult`, and nothing is lost: one bad item, a dead host or Ctrl-C
still leaves exactly one result per input.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import requests

from resilience import _clock, deadline
from resilience._engine import current_record
from resilience._policy import Policy
from resilience.http import _context, _presets
from resilience.http._session import Session

__all__ = ["BatchResult", "ItemResult", "fetch_all"]

TEXT_LIMIT = 500  # characters of a failed response's body kept in ItemResult.text
PROGRESS_INTERVAL = 0.1  # seconds between two redraws of the progress bar
POLL_INTERVAL = 0.1  # the caller wakes this often, so Ctrl-C lands even where lock waits are not interruptible
SPEC_KEYS = frozenset({"url", "method", "params", "json", "headers", "data"})
INTERRUPTED = "Interrupted"
LOST = "Lost"  # no worker left to finish the item: a bug, reported instead of waited for
DEFAULT_TIMEOUT = (3.0, 10.0)  # http.Session's default (connect, read), also given to a caller's plain Session
METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
logger = logging.getLogger("resilience")


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome of one item of :func:`fetch_all`.

    - ``index``: the item's position in the input; ``method``, ``url``: what was asked.
    - ``ok``: a 2xx response arrived, or the policy's fallback answered (``data`` is then
      the fallback's value and ``status`` None).
    - ``status``: the HTTP status of the last response, or None when none arrived (a
      retry a breaker rejected after a 503 still reads 503).
    - ``data``: the parsed JSON body (when the response says it is JSON), else its text;
      None on failure.
    - ``error_type``: the exception's type name ("ConnectionError", "CircuitOpenError"...),
      "HTTPError" for a final non-2xx response, "Dropped" for a call a best-effort policy
      dropped (``error`` says after what), "Interrupted" for an item Ctrl-C left
      unfinished; None when ok. ``error``: the message, None when ok.
    - ``text``: the first 500 characters of the last response's body on failure, else None.
    - ``attempts``: requests actually sent (0 when a breaker rejected the call at once).
    - ``elapsed``: seconds the whole logical call took, retries and their waits included
      (on the resilience clock: under ``rs.testing.no_wait()`` only the waits count).
    """

    index: int
    method: str
    url: str
    ok: bool
    status: int | None = None
    data: Any = None
    error_type: str | None = None
    error: str | None = None
    text: str | None = None
    attempts: int = 0
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (``data`` as it is: JSON-ready when it came from a body)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class BatchResult:
    """What :func:`fetch_all` returns: one :class:`ItemResult` per input, in input order.

    ``interrupted`` is True when Ctrl-C stopped the batch (unfinished items then have
    ``error_type="Interrupted"``); ``elapsed`` is the wall time of the batch in seconds.
    Iterating and ``len()`` go over ``results``.

    >>> from resilience import http
    >>> batch = http.fetch_all([])
    >>> batch.summary()["total"], len(batch)
    (0, 0)
    """

    results: list[ItemResult]
    interrupted: bool = False
    elapsed: float = 0.0
    completion_order: tuple[int, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[ItemResult]:
        return iter(self.results)

    def __repr__(self) -> str:
        ok = sum(result.ok for result in self.results)
        return (
            f"BatchResult(total={len(self.results)}, ok={ok}, failed={len(self.results) - ok}, "
            f"interrupted={self.interrupted}, elapsed={self.elapsed:.3f})"
        )

    def as_completed(self) -> Iterator[ItemResult]:
        """The results in the order they finished (items left unfinished by Ctrl-C last)."""
        return (self.results[index] for index in self.completion_order)

    def summary(self) -> dict[str, Any]:
        """Counts and timings: ``total``, ``ok``, ``failed`` (interrupted items included),
        ``success_rate`` (ok / total, 0..1; 1.0 for an empty batch, where nothing failed,
        as in ``rs.monitor.snapshot()``), ``mean_elapsed`` and ``p95_elapsed`` (seconds, over
        the items that ran to an outcome; 0.0 when none did), ``by_error_type``
        ({error_type: count}), ``elapsed`` (wall seconds of the batch), ``interrupted``.
        """
        total = len(self.results)
        ok = sum(result.ok for result in self.results)
        by_error_type: dict[str, int] = {}
        for result in self.results:
            if result.error_type is not None:
                by_error_type[result.error_type] = by_error_type.get(result.error_type, 0) + 1
        durations = sorted(result.elapsed for result in self.results if result.error_type != INTERRUPTED)
        return {
            "total": total,
            "ok": ok,
            "failed": total - ok,
            "success_rate": ok / total if total else 1.0,
            "mean_elapsed": math.fsum(durations) / len(durations) if durations else 0.0,
            "p95_elapsed": durations[math.ceil(0.95 * len(durations)) - 1] if durations else 0.0,  # nearest rank
            "by_error_type": by_error_type,
            "elapsed": self.elapsed,
            "interrupted": self.interrupted,
        }

    def to_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write one JSON object per result (``to_dict()``, input order) to ``path``; returns the lines written.

        Standard JSON only: a ``data`` it cannot hold (a fallback's object, non-string
        keys, NaN) is written as its ``str()``. Every line is encoded before the file is
        opened, so a value that cannot be encoded never leaves a half-written file.
        """
        payload = "".join(_json_line(result.to_dict()) for result in self.results)
        encoded = payload.encode("utf-8", errors="backslashreplace")  # a lone surrogate from a fallback's str
        with open(path, "wb") as out:
            out.write(encoded)
        return len(self.results)


def _json_line(record: dict[str, Any]) -> str:
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=False, default=str) + "\n"
    except (TypeError, ValueError, RecursionError):  # only ``data`` can hold such values
        return json.dumps({**record, "data": _text(record["data"])}, ensure_ascii=False, allow_nan=False) + "\n"


def _text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 -- a value whose str() fails still gets a line
        return repr(type(value))


@dataclass(frozen=True, slots=True)
class _Spec:
    method: str
    url: str
    options: dict[str, Any]  # params / json / headers / data for session.request


def fetch_all(
    items: Iterable[str | Mapping[str, Any]],
    *,
    policy: Policy | None = None,
    session: requests.Session | None = None,
    concurrency: int = 10,
    progress: bool = False,
    on_result: Callable[[ItemResult], object] | None = None,
) -> BatchResult:
    """Fetch every item through one Session and ``concurrency`` worker threads; never raises for an item.

    ``items``: URLs, or mappings with ``url`` and optionally ``method`` (an HTTP token,
    uppercased; default "GET"), ``params`` (a mapping, a sequence of pairs or a str),
    ``headers`` (a mapping), and ``json`` or ``data`` (not both). Malformed items raise
    TypeError/ValueError naming their index before anything is sent; a malformed URL
    string just becomes a failed result.

    ``policy``: an ``rs.Policy`` run around every item; by default one
    ``http.policy(f"fetch:{host}")`` per host (host = the URL's lowercased hostname and
    explicit port, IPv6 in brackets; never its user:password), so a dead host opens only
    its own breaker: once it is open, that host's remaining items fail fast with
    CircuitOpenError while the other hosts go on. Breakers are shared by name across
    calls, as everywhere in resilience: a later batch to a host whose breaker opened fails
    fast until it half-opens (``reset_timeout``, 30 s), instead of hammering it again.
    ``session``: a ``requests.Session`` to use (not closed; give it ``pool_maxsize >=
    concurrency``); by default an ``http.Session`` sized for ``concurrency``, closed at
    the end. Only an ``http.Session`` bounds a whole response (a trickling body) by the
    deadline; any other session is given an explicit ``timeout=`` on every request (the
    policy's (connect, read) timeout, else (3, 10) s, clipped to the deadline's time
    left), which bounds each socket wait, so no item can hang. ``progress``: a one-line
    progress bar on stderr. ``on_result(item)``: called in the calling thread with each
    result as it completes (the streaming form of ``as_completed()``: write results out,
    stop early with Ctrl-C); a callback that raises is logged and never stops the batch.

    Each item runs in a copy of the caller's context, so a ``rs.deadline.scope`` around
    the call bounds the whole batch (items left when it passes fail with
    DeadlineExceeded) and other context variables (trace ids) reach every item; the
    caller's call record and Idempotency-Key are not passed on (items are calls of their own).

    Ctrl-C while waiting stops handing out items and returns at once with
    ``interrupted=True``: finished items keep their results, the others read
    ``error_type="Interrupted"``; requests in flight finish in the background.

    >>> from resilience import http
    >>> batch = http.fetch_all(  # doctest: +SKIP
    ...     ["https://example.com/a", {"url": "https://example.com/b", "method": "POST", "json": {"n": 1}}],
    ...     concurrency=20,
    ... )
    >>> batch.summary()["success_rate"], batch.to_jsonl("out.jsonl")  # doctest: +SKIP
    (1.0, 2)
    """
    specs = _specs(items)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise TypeError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if policy is not None and not isinstance(policy, Policy):
        raise TypeError(f"policy must be an rs.Policy (e.g. http.policy(...)) or None, got {policy!r}")
    if session is not None and not isinstance(session, requests.Session):
        raise TypeError(f"session must be a requests.Session (e.g. http.Session()) or None, got {session!r}")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    if on_result is not None and not callable(on_result):
        raise TypeError(f"on_result must be a callable taking an ItemResult, got {on_result!r}")

    own_session = session is None
    # At most `concurrency` hosts are in flight at once: that many pools never evicts a busy one.
    size = max(10, concurrency)
    active = Session(pool_connections=size, pool_maxsize=size) if session is None else session
    policy_for: Callable[[str], Policy] = _PerHost() if policy is None else _Fixed(policy)
    context = _item_context()
    sent = [0] * len(specs)  # requests sent per item, also for the items Ctrl-C leaves in flight

    def work(index: int) -> ItemResult:
        return context.copy().run(_fetch_one, index, specs[index], policy_for, active, sent)

    def failed(index: int, exc: BaseException) -> ItemResult:
        spec = specs[index]
        kind, error = type(exc).__name__, _message(exc)
        return ItemResult(index, spec.method, spec.url, ok=False, error_type=kind, error=error, attempts=sent[index])

    started = _clock.monotonic()
    bar = _Progress(len(specs), started) if progress else None
    pool = _Pool(len(specs), work, failed)
    interrupted = False
    try:
        pool.start(concurrency)
        for result in pool.results():
            if bar is not None:
                bar.update(result.ok)
            if on_result is not None:
                _tell(on_result, result)
        pool.join()  # every worker is leaving: the Session can be closed now, not behind their back
    except KeyboardInterrupt:
        interrupted = True
    finally:
        finished = pool.stop()
        if own_session:
            pool.when_idle(active.close)  # requests still in flight after Ctrl-C keep their session
    elapsed = _clock.monotonic() - started
    by_index = {result.index: result for result in finished}
    unfinished = [index for index in range(len(specs)) if index not in by_index]
    for index in unfinished:
        spec = specs[index]
        why = (INTERRUPTED, "the batch was interrupted first") if interrupted else (LOST, "no worker finished it")
        by_index[index] = ItemResult(
            index, spec.method, spec.url, ok=False, error_type=why[0], error=why[1], attempts=sent[index]
        )
    results = [by_index[index] for index in range(len(specs))]
    order = tuple([result.index for result in finished] + unfinished)
    if bar is not None:
        bar.finish(finished, interrupted)
    return BatchResult(results, interrupted=interrupted, elapsed=elapsed, completion_order=order)


def _tell(on_result: Callable[[ItemResult], object], result: ItemResult) -> None:
    try:
        on_result(result)
    except Exception:  # a hook must never change the batch's outcome
        logger.exception("fetch_all on_result callback %r raised; ignored", on_result)


def _specs(items: Iterable[str | Mapping[str, Any]]) -> list[_Spec]:
    if isinstance(items, (str, bytes, Mapping)):
        raise TypeError(f"items must be an iterable of URLs or request mappings, not a single {type(items).__name__}")
    try:
        materialised = list(items)
    except TypeError:
        raise TypeError(f"items must be an iterable of URLs or request mappings, got {items!r}") from None
    specs = []
    for index, item in enumerate(materialised):
        if isinstance(item, str):
            specs.append(_Spec("GET", item, {}))
            continue
        if not isinstance(item, Mapping):
            raise TypeError(f"items[{index}] must be a URL string or a mapping with 'url', got {item!r}")
        unknown = set(item) - SPEC_KEYS
        if unknown:
            raise ValueError(
                f"items[{index}] has unknown keys {sorted(map(str, unknown))}; allowed: {sorted(SPEC_KEYS)}"
            )
        if "url" not in item:
            raise ValueError(f"items[{index}] has no 'url': {item!r}")
        url, method = item["url"], item.get("method", "GET")
        if not isinstance(url, str):
            raise TypeError(f"items[{index}]['url'] must be a str, got {url!r}")
        if not isinstance(method, str):
            raise TypeError(f"items[{index}]['method'] must be an HTTP method name, got {method!r}")
        if not METHOD.fullmatch(method):
            raise ValueError(f"items[{index}]['method'] must be an HTTP method name such as GET, got {method!r}")
        options = {key: item[key] for key in ("params", "json", "headers", "data") if item.get(key) is not None}
        _check_options(index, options)
        specs.append(_Spec(method.upper(), url, options))
    return specs


def _check_options(index: int, options: dict[str, Any]) -> None:
    headers = options.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        raise TypeError(f"items[{index}]['headers'] must be a mapping of header names to values, got {headers!r}")
    params = options.get("params")
    if params is not None and not isinstance(params, (Mapping, str, bytes)) and not _pairs(params):
        raise TypeError(f"items[{index}]['params'] must be a mapping, a sequence of pairs or a str, got {params!r}")
    if "json" in options and "data" in options:
        raise ValueError(f"items[{index}] has both 'json' and 'data': give one body")


def _pairs(value: object) -> bool:
    return isinstance(value, Sequence) and all(
        isinstance(pair, Sequence) and not isinstance(pair, (str, bytes)) and len(pair) == 2 for pair in value
    )


def _item_context() -> contextvars.Context:
    """The caller's context, minus what belongs to the caller's own logical call."""
    context = contextvars.copy_context()

    def detach() -> None:
        current_record.set(None)  # each item's policy monitors it; the caller's record is not its
        _context.idempotency_key.set(None)  # items are distinct operations: never one shared key

    context.run(detach)
    return context


class _Fixed:
    """The caller's policy, for every item."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def __call__(self, url: str) -> Policy:
        return self.policy


class _PerHost:
    """One ``http.policy(f"fetch:{host}")`` per host (see :func:`_host`), created on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._policies: dict[str, Policy] = {}

    def __call__(self, url: str) -> Policy:
        host = _host(url)
        with self._lock:
            found = self._policies.get(host)
            if found is None:
                found = self._policies[host] = _presets.policy(f"fetch:{host}")
            return found


def _host(url: str) -> str:
    """``host[:port]`` of ``url``, lowercased, IPv6 in brackets; never its userinfo (no secrets in names)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # an unclosed IPv6 bracket, a port that is no number: requests rejects the URL itself
        host, port = "", None
    if not host:
        return "invalid"  # RFC 6761's never-resolving name, for URLs with no host at all
    host = f"[{host}]" if ":" in host else host
    return host if port is None else f"{host}:{port}"


def _fetch_one(
    index: int, spec: _Spec, policy_for: Callable[[str], Policy], session: requests.Session, sent: list[int]
) -> ItemResult:
    plain = not isinstance(session, Session)  # it knows neither deadlines nor a default timeout
    # The last attempt's outcome: says why a drop happened, and the status behind a
    # breaker's rejection of the retry after a 503.
    last_response: requests.Response | None = None
    last_error: Exception | None = None

    def one_attempt() -> requests.Response:
        nonlocal last_response, last_error
        sent[index] += 1
        last_response = last_error = None
        options = {**spec.options, "timeout": _clipped_timeout()} if plain else spec.options
        try:
            last_response = session.request(spec.method, spec.url, **options)
        except Exception as exc:
            last_error = exc
            raise
        return last_response

    started = _clock.monotonic()
    try:
        value: Any = policy_for(spec.url).call(one_attempt)
    except BaseException as exc:  # noqa: BLE001 -- every item gets a result, whatever it raised
        response = getattr(exc, "response", None)
        if not isinstance(response, requests.Response):
            response = last_response
        return ItemResult(
            index,
            spec.method,
            spec.url,
            ok=False,
            status=None if response is None else response.status_code,
            error_type=type(exc).__name__,
            error=_message(exc),
            text=_excerpt(response),
            attempts=sent[index],
            elapsed=_clock.monotonic() - started,
        )
    elapsed = _clock.monotonic() - started
    base = ItemResult(index, spec.method, spec.url, ok=False, attempts=sent[index], elapsed=elapsed)
    if not isinstance(value, requests.Response):  # a fallback or a best-effort policy answered
        if value is not None:
            return replace(base, ok=True, data=value)
        if last_response is not None:
            cause = f"HTTP {last_response.status_code}"
        elif last_error is not None:
            cause = f"{type(last_error).__name__}: {_message(last_error)}"
        else:
            cause = "no request was sent (e.g. its breaker was open)"
        status = None if last_response is None else last_response.status_code
        error = f"the policy dropped the call (answered None) after {cause}"
        return replace(base, status=status, error_type="Dropped", error=error, text=_excerpt(last_response))
    status = value.status_code
    if not 200 <= status < 300:
        reason = f" {value.reason}" if value.reason else ""
        error = f"{status}{reason} for {spec.method} {value.url or spec.url}"
        return replace(base, status=status, error_type="HTTPError", error=error, text=_excerpt(value))
    try:
        return replace(base, ok=True, status=status, data=_body(value))
    except Exception as exc:  # noqa: BLE001 -- a body that says JSON but is not, or nests too deep to parse
        return replace(base, status=status, error_type=type(exc).__name__, error=_message(exc), text=_excerpt(value))


def _clipped_timeout() -> tuple[float, float]:
    """The (connect, read) timeout for a plain requests.Session: the policy's or the default, within the deadline."""
    connect, read = _context.policy_timeout.get() or DEFAULT_TIMEOUT
    deadline.check("request")
    left = deadline.remaining()
    return (connect, read) if left is None else (min(connect, left), min(read, left))


def _body(response: requests.Response) -> Any:
    if "json" in response.headers.get("Content-Type", "").lower() and response.content:
        return response.json()
    return response.text


def _message(exc: BaseException) -> str:
    try:
        return str(exc) or repr(exc)
    except Exception:  # noqa: BLE001 -- an exception whose str() fails still gets a result
        return type(exc).__name__


def _excerpt(response: object) -> str | None:
    if not isinstance(response, requests.Response):
        return None
    try:
        return response.text[:TEXT_LIMIT]
    except Exception:  # noqa: BLE001 -- a body that cannot be read (streamed, closed) has no excerpt
        return None


class _Pool:
    """Daemon threads handing items ``0..total-1`` to ``work``, started by ``start(workers)``.

    Whatever ``work`` raises becomes ``fail(index, exc)``'s result: an item whose result
    is lost would leave :meth:`results` waiting for it. Not a ThreadPoolExecutor: its
    threads are joined at interpreter exit, so Ctrl-C would then wait for every request
    in flight. Results go to a list only workers append to: the caller reads it without
    taking anything out, so a KeyboardInterrupt landing anywhere in the caller cannot
    lose a finished result.
    """

    def __init__(
        self, total: int, work: Callable[[int], ItemResult], fail: Callable[[int, BaseException], ItemResult]
    ) -> None:
        self.total = total
        self._work = work
        self._fail = fail
        self._next = iter(range(total))
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._finished: list[ItemResult] = []  # completion order
        self._arrived: queue.SimpleQueue[None] = queue.SimpleQueue()  # wake-ups only
        self._alive = 0
        self._on_idle: Callable[[], object] | None = None
        self._idle = threading.Event()

    def start(self, workers: int) -> None:
        """Start up to ``workers`` threads (fewer if the system refuses more: they share the items)."""
        for n in range(min(workers, self.total)):
            thread = threading.Thread(target=self._run, name=f"resilience-fetch-{n}", daemon=True)
            with self._lock:
                self._alive += 1
            try:
                thread.start()
            except RuntimeError:  # "can't start new thread"
                with self._lock:
                    self._alive -= 1
                if n == 0:
                    raise
                return

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                with self._lock:
                    index = next(self._next, None)
                if index is None:
                    break
                self._finished.append(self._outcome(index))
                self._arrived.put(None)
        finally:
            with self._lock:
                self._alive -= 1
                last = self._alive == 0
                on_idle = self._on_idle if last else None
            if last:
                self._idle.set()
            if on_idle is not None:
                on_idle()

    def _outcome(self, index: int) -> ItemResult:
        try:
            return self._work(index)
        except BaseException as exc:  # noqa: BLE001 -- a bug or an exotic input: one failed result, never a hang
            try:
                return self._fail(index, exc)
            except BaseException:  # noqa: BLE001
                return ItemResult(index, "", "", ok=False, error_type=type(exc).__name__)

    def results(self) -> Iterator[ItemResult]:
        """Every result, in completion order, as it arrives (the streaming form); ends early
        if every worker has left with items unfinished, rather than wait for them forever."""
        read = 0
        while read < self.total:
            if read == len(self._finished):
                gone = self._alive == 0  # read before the results: a worker appends, then leaves
                if gone and read == len(self._finished):
                    return
                with contextlib.suppress(queue.Empty):
                    self._arrived.get(timeout=POLL_INTERVAL)
                continue
            read += 1
            yield self._finished[read - 1]

    def stop(self) -> list[ItemResult]:
        """Hand out no more items; returns every result so far, in completion order."""
        self._stopping.set()
        return list(self._finished)

    def join(self) -> None:
        """Wait until every worker has exited (they do once no item is left)."""
        while self._alive:
            self._idle.wait(POLL_INTERVAL)

    def when_idle(self, fn: Callable[[], object]) -> None:
        """Call ``fn`` once every worker has exited: now, or from the last worker to leave."""
        with self._lock:
            if self._alive:
                self._on_idle = fn
                return
        fn()


class _Progress:
    """A one-line progress bar on stderr, redrawn at most every PROGRESS_INTERVAL seconds."""

    def __init__(self, total: int, started: float) -> None:
        self.total = total
        self.started = started
        self.done = self.ok = 0
        self.drawn_at = -math.inf
        self.width = 0

    def update(self, ok: bool) -> None:
        self.done += 1
        self.ok += ok
        now = _clock.monotonic()
        if now - self.drawn_at >= PROGRESS_INTERVAL:
            self.drawn_at = now
            self._draw("")

    def finish(self, finished: list[ItemResult], interrupted: bool) -> None:
        self.done, self.ok = len(finished), sum(result.ok for result in finished)  # some may not have been drawn
        self._draw("  interrupted" if interrupted else "")
        sys.stderr.write("\n")
        sys.stderr.flush()

    def _draw(self, suffix: str) -> None:
        elapsed = _clock.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        line = f"fetch {self.done}/{self.total}  ok {self.ok}  failed {self.done - self.ok}  {rate:.1f}/s{suffix}"
        self.width, padded = len(line), line.ljust(self.width)  # blank out a longer previous line
        sys.stderr.write("\r" + padded)
        sys.stderr.flush()
