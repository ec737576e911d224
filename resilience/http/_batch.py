"""``http.fetch_all``: many requests through one Session and a bounded pool of daemon threads.

Every item runs through a policy (by default one ``http.policy`` per host), its outcome
becomes an :class:`ItemResult`, and nothing is lost: one bad item, a dead host or Ctrl-C
still leaves exactly one result per input.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import requests

from resilience import _clock
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


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome of one item of :func:`fetch_all`.

    - ``index``: the item's position in the input; ``method``, ``url``: what was asked.
    - ``ok``: a 2xx response arrived (no exception).
    - ``status``: the final HTTP status, or None when no response arrived.
    - ``data``: the parsed JSON body (when the response says it is JSON), else its text;
      None on failure.
    - ``error_type``: the exception's type name ("ConnectionError", "CircuitOpenError"...),
      "HTTPError" for a final non-2xx response, "Interrupted" for an item Ctrl-C left
      unfinished; None when ok. ``error``: the message, None when ok.
    - ``text``: the first 500 characters of the response body on failure, else None.
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

        Values JSON cannot encode (a fallback's object) are written as their ``str()``.
        """
        with open(path, "w", encoding="utf-8") as out:
            for result in self.results:
                out.write(json.dumps(result.to_dict(), ensure_ascii=False, default=str) + "\n")
        return len(self.results)


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
) -> BatchResult:
    """Fetch every item through one Session and ``concurrency`` worker threads; never raises for an item.

    ``items``: URLs, or mappings with ``url`` and optionally ``method`` (default "GET"),
    ``params``, ``json``, ``headers``, ``data``. Malformed items (not a str or mapping, no
    ``url``, unknown keys) raise TypeError/ValueError naming their index before anything is
    sent; a malformed URL string just becomes a failed result.

    ``policy``: an ``rs.Policy`` run around every item; by default one
    ``http.policy(f"fetch:{host}")`` per host (host = the URL's netloc), so a dead host
    opens only its own breaker: once it is open, that host's remaining items fail fast
    with CircuitOpenError while the other hosts go on.
    ``session``: a ``requests.Session`` to use (not closed; give it ``pool_maxsize >=
    concurrency``); by default an ``http.Session`` sized for ``concurrency``, closed at
    the end. ``progress``: a one-line progress bar on stderr.

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

    own_session = session is None
    # At most `concurrency` hosts are in flight at once: that many pools never evicts a busy one.
    size = max(10, concurrency)
    active = Session(pool_connections=size, pool_maxsize=size) if session is None else session
    policy_for: Callable[[str], Policy] = _PerHost() if policy is None else _Fixed(policy)
    context = _item_context()

    def work(index: int) -> ItemResult:
        return context.copy().run(_fetch_one, index, specs[index], policy_for, active)

    started = _clock.monotonic()
    bar = _Progress(len(specs), started) if progress else None
    pool = _Pool(len(specs), work)
    interrupted = False
    try:
        pool.start(concurrency)
        for result in pool.results():
            if bar is not None:
                bar.update(result.ok)
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
        by_index[index] = ItemResult(
            index, spec.method, spec.url, ok=False, error_type=INTERRUPTED, error="the batch was interrupted first"
        )
    results = [by_index[index] for index in range(len(specs))]
    order = tuple([result.index for result in finished] + unfinished)
    if bar is not None:
        bar.finish(finished, interrupted)
    return BatchResult(results, interrupted=interrupted, elapsed=elapsed, completion_order=order)


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
        if not isinstance(method, str) or not method:
            raise TypeError(f"items[{index}]['method'] must be an HTTP method name, got {method!r}")
        options = {key: item[key] for key in ("params", "json", "headers", "data") if key in item}
        specs.append(_Spec(method.upper(), url, options))
    return specs


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
    """One ``http.policy(f"fetch:{host}")`` per host, created on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._policies: dict[str, Policy] = {}

    def __call__(self, url: str) -> Policy:
        try:
            host = urlsplit(url).netloc.lower()
        except ValueError:  # e.g. an unclosed IPv6 bracket: requests will reject the URL itself
            host = ""
        host = host or "invalid"  # RFC 6761's never-resolving name, for URLs with no host at all
        with self._lock:
            found = self._policies.get(host)
            if found is None:
                found = self._policies[host] = _presets.policy(f"fetch:{host}")
            return found


def _fetch_one(index: int, spec: _Spec, policy_for: Callable[[str], Policy], session: requests.Session) -> ItemResult:
    attempts = 0

    def one_attempt() -> requests.Response:
        nonlocal attempts
        attempts += 1
        return session.request(spec.method, spec.url, **spec.options)

    started = _clock.monotonic()
    try:
        value: Any = policy_for(spec.url).call(one_attempt)
    except BaseException as exc:  # noqa: BLE001 -- every item gets a result, whatever it raised
        return ItemResult(
            index,
            spec.method,
            spec.url,
            ok=False,
            status=_status(exc),
            error_type=type(exc).__name__,
            error=str(exc) or repr(exc),
            text=_excerpt(getattr(exc, "response", None)),
            attempts=attempts,
            elapsed=_clock.monotonic() - started,
        )
    elapsed = _clock.monotonic() - started
    base = ItemResult(index, spec.method, spec.url, ok=False, attempts=attempts, elapsed=elapsed)
    if not isinstance(value, requests.Response):  # a fallback or a best-effort policy answered
        if value is None:
            return replace(base, error_type="Dropped", error="the policy dropped the call and answered None")
        return replace(base, ok=True, data=value)
    status = value.status_code
    if not 200 <= status < 300:
        reason = f" {value.reason}" if value.reason else ""
        error = f"{status}{reason} for {spec.method} {value.url or spec.url}"
        return replace(base, status=status, error_type="HTTPError", error=error, text=_excerpt(value))
    try:
        return replace(base, ok=True, status=status, data=_body(value))
    except ValueError as exc:  # the response says JSON but its body is not
        return replace(
            base, status=status, error_type=type(exc).__name__, error=str(exc) or repr(exc), text=_excerpt(value)
        )


def _body(response: requests.Response) -> Any:
    if "json" in response.headers.get("Content-Type", "").lower() and response.content:
        return response.json()
    return response.text


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return response.status_code if isinstance(response, requests.Response) else None


def _excerpt(response: object) -> str | None:
    if not isinstance(response, requests.Response):
        return None
    try:
        return response.text[:TEXT_LIMIT]
    except Exception:  # noqa: BLE001 -- a body that cannot be read (streamed, closed) has no excerpt
        return None


class _Pool:
    """Daemon threads handing items ``0..total-1`` to ``work``, started by ``start(workers)``.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, so Ctrl-C would
    then wait for every request in flight. Results go to a list only workers append to:
    the caller reads it without taking anything out, so a KeyboardInterrupt landing
    anywhere in the caller cannot lose a finished result.
    """

    def __init__(self, total: int, work: Callable[[int], ItemResult]) -> None:
        self.total = total
        self._work = work
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
                self._finished.append(self._work(index))
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

    def results(self) -> Iterator[ItemResult]:
        """Every result, in completion order, as it arrives (the streaming form)."""
        read = 0
        while read < self.total:
            if read == len(self._finished):
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
