"""``resilience demo`` and ``resilience fetch``: the command line (also ``python -m resilience``).

- ``demo``: a few seconds of traffic against a misbehaving loopback server, through the
  HTTP presets; prints retries, breaker transitions, drops and deadline cuts as they
  happen, then a table per endpoint.
- ``fetch URL... | --file FILE``: ``http.fetch_all`` from the shell; a summary table,
  one line per failure, JSONL with ``--out``.

Exit codes: 0 success, 1 some fetched items failed (or an unexpected error), 2 bad input,
130 interrupted. Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast
from urllib.parse import urlsplit

import resilience as rs

if TYPE_CHECKING:
    import requests

    from resilience._demo_server import DemoServer
    from resilience.http import BatchResult

__all__ = ["main"]

PROG = "resilience"
MAX_DEMO_SECONDS = 3600.0
MAX_SECONDS = 86400.0  # --timeout and --deadline: a day is already far beyond any sensible bound
MAX_CONCURRENCY = 1000
MAX_ATTEMPTS = 100
FAILED_LINES = 20  # failed items listed one per line; the rest are counted
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# An RFC 9110 token (GET, M-SEARCH...), as http.fetch_all checks it; repeated here because
# bad input is rejected before resilience.http (and requests) is imported.
METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class UsageError(Exception):
    """Bad input from the command line: one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, and printed by :func:`main`)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    with _lenient_stdout():
        return _main(argv)


@contextlib.contextmanager
def _lenient_stdout() -> Iterator[None]:
    """A URL the terminal's encoding cannot show is printed escaped, not a crash halfway through the table."""
    stdout = sys.stdout
    if not isinstance(stdout, io.TextIOWrapper):
        yield
        return
    errors = stdout.errors
    if errors in ("backslashreplace", "replace"):
        yield
        return
    stdout.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a stdout already closed (the reader left) keeps what it has
            stdout.reconfigure(errors=errors)


def _main(argv: Sequence[str] | None) -> int:
    try:
        return _run(argv)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `resilience fetch ... | head`: the reader left, nothing to say
        _silence_stdout()
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 -- the promise is one line, never a traceback
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help and --version end here, after printing
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if args.command is None:
        raise UsageError("choose a command: demo, fetch (see resilience --help)")
    command: Callable[[argparse.Namespace], int] = args.run
    return command(args)


def _error(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr, flush=True)


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at devnull so that flush cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="Resilient HTTP calls from the shell: see the presets at work (demo) or fetch URLs (fetch).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {rs.__version__}")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="a few seconds of traffic against a misbehaving local server, through the HTTP presets",
        description=(
            "Starts a misbehaving HTTP server on 127.0.0.1, calls a few endpoints on it from several "
            "threads through http.policy / http.best_effort, prints retries, breaker transitions, dropped "
            "calls and deadline cuts as they happen, then a table per endpoint. Needs no network access."
        ),
    )
    demo.add_argument("--seconds", default="8", metavar="S", help="how long to send traffic (default 8; at most 3600)")
    demo.set_defaults(run=_demo)

    fetch = commands.add_parser(
        "fetch",
        help="fetch URLs concurrently with timeouts, retries and per-host breakers",
        description=(
            "Fetches every URL through http.fetch_all and prints a summary and the failures. By default each "
            "host gets http.policy('fetch:HOST'): (connect, read) timeout 3,10 s, a 30 s deadline per URL "
            "(retries included), 3 attempts, a breaker of its own. With --timeout, --deadline or --attempts, "
            "one http.policy('fetch') with those settings serves every URL (one breaker for all hosts). "
            "Exit code 0 when every URL answered 2xx, 1 when some failed, 2 for bad input."
        ),
    )
    fetch.add_argument("urls", nargs="*", metavar="URL", help="http:// or https:// URLs")
    fetch.add_argument("--file", "-f", metavar="FILE", help="read URLs from FILE, one per line (# comments; - = stdin)")
    fetch.add_argument("--concurrency", "-c", default="10", metavar="N", help="requests in flight (default 10)")
    fetch.add_argument("--timeout", metavar="CONNECT,READ", help="request timeouts in seconds, or one number for both")
    fetch.add_argument("--deadline", metavar="S", help="seconds per URL, retries and waits included (default 30)")
    fetch.add_argument("--attempts", metavar="N", help="attempts per URL (default 3)")
    fetch.add_argument("--method", "-X", default="GET", metavar="M", help="HTTP method (default GET)")
    fetch.add_argument("--out", "-o", metavar="FILE", help="write one JSON line per URL (input order) to FILE")
    fetch.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress line on stderr (default: when stderr is a terminal)",
    )
    fetch.add_argument("--json", action="store_true", help="print the summary and failures as one JSON object")
    fetch.add_argument("--verbose", "-v", action="store_true", help="log each retry and give-up on stderr")
    fetch.set_defaults(run=_fetch)
    return parser


# --------------------------------------------------------------------------- input checks


def _number(option: str, text: str, most: float = MAX_SECONDS) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} must be a number of seconds > 0, got {text!r}")
    if value > most:
        raise UsageError(f"{option} must be at most {most:g} seconds, got {text!r}")
    return value


def _integer(option: str, text: str, most: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise UsageError(f"{option} must be an integer from 1 to {most}, got {text!r}")
    return value


def _timeout(text: str) -> float | tuple[float, float]:
    parts = text.split(",")
    if len(parts) > 2:
        raise UsageError(f"--timeout must be CONNECT,READ seconds or one number, got {text!r}")
    values = [_number("--timeout", part.strip()) for part in parts]
    return values[0] if len(values) == 1 else (values[0], values[1])


def _bad_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is no number
    except ValueError:
        return True
    return parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url)


def _read_urls(source: str) -> list[tuple[str, str]]:
    """(url, where) for each URL line of ``source`` (a path, or - for stdin)."""
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            text = sys.stdin.read().removeprefix("\ufeff")  # a BOM from a Windows editor is no part of a URL
        else:
            with open(source, encoding="utf-8-sig") as file:
                text = file.read()
    except FileNotFoundError:
        raise UsageError(f"--file {source!r}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--file {source!r}: is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"--file {source!r}: cannot read it: {reason}") from None
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        url = line.strip()
        if url and not url.startswith("#"):
            found.append((url, f"{name} line {number}"))
    return found


def _urls(args: argparse.Namespace) -> list[str]:
    given = [(url, f"argument {n}") for n, url in enumerate(args.urls, 1)]
    if args.file is not None:
        given += _read_urls(args.file)
    if not given:
        raise UsageError("no URLs to fetch: give them as arguments or with --file FILE (- for stdin)")
    bad = [(url, where) for url, where in given if _bad_url(url)]
    if bad:
        url, where = bad[0]
        more = f" (and {len(bad) - 1} more bad URL(s))" if len(bad) > 1 else ""
        raise UsageError(f"not an http:// or https:// URL with a host: {url!r} ({where}){more}")
    return [url for url, _ in given]


def _out_path(path: str) -> str:
    """``path`` once it is known to open for writing: a fetch is never wasted on an output that cannot be."""
    if not path:
        raise UsageError("--out must be a file name, got ''")
    if os.path.isdir(path):
        raise UsageError(f"--out {path!r}: is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--out {path!r}: no such directory {folder!r}")
    existed = os.path.lexists(path)
    try:
        with open(path, "ab"):  # appends nothing: an existing file keeps its contents until the write
            pass
    except OSError as exc:
        raise UsageError(f"--out {path!r}: cannot write to it: {exc.strerror or exc}") from None
    if not existed:
        with contextlib.suppress(OSError):
            os.remove(path)  # no empty file left behind if the fetch is interrupted or fails
    return path


# --------------------------------------------------------------------------- fetch


def _fetch(args: argparse.Namespace) -> int:
    concurrency = _integer("--concurrency", args.concurrency, MAX_CONCURRENCY)
    custom: dict[str, Any] = {}
    if args.timeout is not None:
        custom["timeout"] = _timeout(args.timeout)
    if args.deadline is not None:
        custom["deadline"] = _number("--deadline", args.deadline)
    if args.attempts is not None:
        custom["attempts"] = _integer("--attempts", args.attempts, MAX_ATTEMPTS)
    method = args.method.upper()
    if not METHOD.fullmatch(method):
        raise UsageError(f"--method must be an HTTP method name such as GET or POST, got {args.method!r}")
    out = _out_path(args.out) if args.out is not None else None
    urls = _urls(args)

    from resilience import http  # imports requests: only once the input is known to be good

    policy = http.policy("fetch", **custom) if custom else None
    items = urls if method == "GET" else [{"url": url, "method": method} for url in urls]
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    # The library logs each retry and give-up on logger "resilience"; the summary says it
    # all, so those records are shown only when asked for (and never mixed into --json).
    handler = logging.StreamHandler(sys.stderr) if args.verbose else logging.NullHandler()
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    log = logging.getLogger("resilience")
    log.addHandler(handler)
    try:
        batch = http.fetch_all(items, policy=policy, concurrency=concurrency, progress=progress)
    finally:
        log.removeHandler(handler)
    failed = [result for result in batch.results if not result.ok]
    if args.json:
        fields = ("index", "method", "url", "status", "error_type", "error", "attempts", "elapsed")
        report = {"summary": batch.summary(), "failed": [{key: getattr(r, key) for key in fields} for r in failed]}
        print(json.dumps(report, ensure_ascii=False), flush=True)
    else:
        _print_summary(batch.summary(), failed)
        sys.stdout.flush()
    # Written after the summary is out: a disk that fills up must not cost the fetch's report.
    written = _write_out(batch, out, sys.stderr if args.json else sys.stdout) if out is not None else True
    if batch.interrupted:
        _error("interrupted: the summary covers the URLs that finished")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed or not written else EXIT_OK


def _write_out(batch: BatchResult, out: str, report: IO[str]) -> bool:
    try:
        lines = batch.to_jsonl(out)
    except OSError as exc:
        _error(f"--out {out!r}: cannot write it: {exc.strerror or exc}")
        return False
    print(f"wrote {lines} line(s) to {out}", file=report)
    return True


def _print_summary(summary: dict[str, Any], failed: Sequence[Any]) -> None:
    rows = [
        ("total", f"{summary['total']}"),
        ("ok", f"{summary['ok']}"),
        ("failed", f"{summary['failed']}"),
        ("success rate", f"{summary['success_rate']:.1%}"),
        ("mean", f"{summary['mean_elapsed'] * 1000:.0f} ms"),
        ("p95", f"{summary['p95_elapsed'] * 1000:.0f} ms"),
        ("elapsed", f"{summary['elapsed']:.2f} s" + ("  (interrupted)" if summary["interrupted"] else "")),
    ]
    for label, value in rows:
        print(f"{label:<14}{value}")
    by_type = sorted(summary["by_error_type"].items(), key=lambda item: (-item[1], item[0]))
    if by_type:
        print("by error type")
        for error_type, count in by_type:
            print(f"  {error_type:<24}{count}")
    if failed:
        print("failed")
        for result in failed[:FAILED_LINES]:
            error = (result.error or "").removesuffix(f" for {result.method} {result.url}")
            error = " ".join(f"{result.error_type}: {error}".split())
            took = _duration(result.elapsed)
            print(f"  {result.method} {result.url}  {_clip(error, 160)}  ({result.attempts} attempt(s), {took})")
        if len(failed) > FAILED_LINES:
            print(f"  ... {len(failed) - FAILED_LINES} more (all of them with --out FILE or --json)")


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


# --------------------------------------------------------------------------- demo

_local = threading.local()  # which demo endpoint the current thread calls (for log records)


class _Events:
    """Prints one line per notable event, at most one per (endpoint, kind) per ``interval``
    seconds; the lines held back are counted on the next one shown. Once the output is
    gone (``| head``), ``broken`` is set and nothing more is printed."""

    def __init__(self, interval: float, out: IO[str]) -> None:
        self.started = time.monotonic()
        self.interval = interval
        self.out = out
        self.broken = threading.Event()
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}
        self._held: Counter[tuple[str, str]] = Counter()

    def emit(self, endpoint: str, kind: str, text: str, *, interval: float | None = None) -> None:
        now = time.monotonic()
        key = (endpoint, kind)
        with self._lock:
            if self.broken.is_set():
                return
            last = self._last.get(key)
            if last is not None and now - last < (self.interval if interval is None else interval):
                self._held[key] += 1
                return
            self._last[key] = now
            held = self._held.pop(key, 0)
            more = f"  (+{held} more like it)" if held else ""
            try:
                print(f"{now - self.started:6.2f}s  {endpoint:<15}{text}{more}", file=self.out, flush=True)
            except OSError:  # the reader left: the calling threads must go on (and the demo end)
                self.broken.set()


class _LogEvents(logging.Handler):
    """Turns the library's own log records (retries, breaker transitions, drops) into events."""

    def __init__(self, events: _Events, reset_timeouts: dict[str, float]) -> None:
        super().__init__(logging.INFO)
        self.events = events
        self.reset_timeouts = reset_timeouts

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        endpoint: str = getattr(_local, "endpoint", "?")
        try:
            if "new_state" in fields:
                self._transition(str(fields["circuit"]), str(fields["old_state"]), str(fields["new_state"]))
            elif "reason" in fields and "wait" in fields:
                text = (
                    f"{fields['reason']} on attempt {fields['attempt']}/{fields['max_attempts']}; "
                    f"retrying in {_duration(fields['wait'])}"
                )
                self.events.emit(endpoint, "retry", text)
            elif fields.get("outcome") == "dropped":
                self.events.emit(endpoint, "dropped", f"dropped after {fields['error_type']}: the caller got None")
        except Exception:  # noqa: BLE001 -- logging's own convention: report, never raise
            self.handleError(record)

    def _transition(self, name: str, old: str, new: str) -> None:
        why = {
            "open": f"calls fail fast for {self.reset_timeouts.get(name, 0):g} s",
            "half-open": "one trial call may go through",
            "closed": "the trial succeeded",
        }.get(new, "")
        if old == "half-open" and new == "open":
            why = "the trial failed; " + why
        text = f"circuit {old} -> {new}: {why}"
        self.events.emit(name, f"circuit {old} {new}", text, interval=self.events.interval / 8)


@dataclass
class _Endpoint:
    """One simulated dependency of the demo: its policy, one request, how often it is called."""

    name: str
    story: str
    policy: rs.Policy
    request: Callable[[random.Random], Callable[[], object]]  # makes one logical call (what gets retried)
    deadline: float
    threads: int = 1
    pause: tuple[float, float] = (0.02, 0.08)
    after: Callable[[object], str | None] | None = None  # an event line about a successful call, if any


def _demo(args: argparse.Namespace) -> int:
    seconds = _number("--seconds", args.seconds, MAX_DEMO_SECONDS)
    return _run_demo(seconds, sys.stdout)


def _run_demo(seconds: float, out: IO[str]) -> int:
    from resilience import http
    from resilience._demo_server import DemoServer

    server = DemoServer().start()
    session = http.Session(timeout=(1.0, 5.0), pool_connections=10, pool_maxsize=16)
    try:
        endpoints = _endpoints(server, session)
        print(f"resilience demo: {seconds:g} s of traffic against a misbehaving server at {server.base}", file=out)
        for endpoint in endpoints:
            print(f"  {endpoint.name:<15}{endpoint.story}", file=out)
        print(file=out, flush=True)
        events = _Events(interval=min(max(seconds / 3, 1.0), 60.0), out=out)
        reset_timeouts = {e.name: rs.circuit.get(e.name).reset_timeout for e in endpoints}
        handler = _LogEvents(events, reset_timeouts)
        log = logging.getLogger("resilience")
        level = log.level
        log.addHandler(handler)
        log.setLevel(logging.INFO)  # breaker transitions other than "open" are INFO
        try:
            interrupted = _drive(endpoints, seconds, events, tick=lambda: _forget_old_requests(server))
        finally:
            log.removeHandler(handler)
            log.setLevel(level)
        _print_table(endpoints, out)
    finally:
        session.close()
        server.stop()
    if interrupted:
        _error("interrupted: the table covers the calls made until then")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _forget_old_requests(server: DemoServer) -> None:
    with server.lock:  # the server keeps every request; a long demo needs only the recent ones
        del server.requests[:-1000]


def _endpoints(server: DemoServer, session: requests.Session) -> list[_Endpoint]:
    from resilience import http

    def get(path: str) -> Callable[[], object]:
        def attempt() -> object:
            response = session.get(server.url(path))
            response.raise_for_status()  # a failure is an exception, with the retries' note on it
            return response.json()

        return attempt

    payments = iter(range(1, 1_000_000_000))
    searches = iter(range(1, 1_000_000_000))

    def pay(rng: random.Random) -> Callable[[], object]:
        key = f"pay-{next(payments)}"  # the server answers this payment's n-th request with the n-th code
        codes = rng.choice(["200", "200", "500,200", "500,200", "503,500,200"])

        def attempt() -> object:
            response = session.post(server.url(f"/seq/{key}?codes={codes}"), json={"cents": 1250})
            response.raise_for_status()
            return key, response.json()

        return attempt

    def paid(answer: object) -> str | None:
        key, body = cast("tuple[str, dict[str, Any]]", answer)
        with server.lock:  # only the server saw each attempt's headers; the recent ones suffice
            sent = [headers for _, path, headers in server.requests[-200:] if path == f"/seq/{key}"]
        if len(sent) < 2:
            return None
        keys = {value for headers in sent for name, value in headers.items() if name.lower() == "idempotency-key"}
        shared = f"one Idempotency-Key {next(iter(keys))[:8]}..." if len(keys) == 1 else f"{len(keys)} different keys"
        return f"{key}: {len(sent)} POSTs with {shared}; {body['status']} on attempt {body['attempt']}"

    def search(rng: random.Random) -> Callable[[], object]:
        if rng.random() < 0.3:  # the first attempt is turned away with 429 and Retry-After: 1
            return get(f"/seq/search-{next(searches)}?codes=429,200&retry_after=1")
        return get(f"/ok?q={rng.randrange(1000)}")

    def beacon(rng: random.Random) -> Callable[[], object]:
        url = server.url(rng.choice(["/ok"] * 8 + ["/reset", "/hang"]))
        return lambda: session.post(url, json={"event": "page_view"})  # best effort drops error statuses too

    return [
        _Endpoint(
            "users-api",
            "GET /flaky: 1 answer in 5 is a 503; retried with backoff (3 attempts, 2 s deadline)",
            http.policy("users-api", timeout=(1.0, 5.0), deadline=2.0, wait_initial=0.05, wait_max=0.5, fail_max=10),
            lambda rng: get(f"/flaky?rate=0.2&id={rng.randrange(1000)}"),
            deadline=2.0,
            threads=2,
        ),
        _Endpoint(
            "inventory-api",
            "GET /burst: 503 + Retry-After: 1 for 1.5 s of every 4 s; a breaker (5 failures, open 1 s)",
            http.policy("inventory-api", timeout=(1.0, 2.0), deadline=2.0, reset_timeout=1.0, max_retry_after=0.5),
            lambda rng: get("/burst?cycle=4&burst=1.5"),
            deadline=2.0,
            threads=2,
        ),
        _Endpoint(
            "payments",
            "POST /seq: some answer 500 first; idempotent=True: one Idempotency-Key per payment, so retried",
            http.policy(
                "payments",
                timeout=(1.0, 2.0),
                deadline=2.5,
                wait_initial=0.1,
                wait_max=0.5,
                reset_timeout=5.0,
                idempotent=True,
            ),
            pay,
            deadline=2.5,
            pause=(0.1, 0.3),
            after=paid,
        ),
        _Endpoint(
            "search-api",
            "GET: 3 in 10 first answer 429 + Retry-After: 1, which the retry waits for",
            http.policy("search-api", timeout=(1.0, 2.0), deadline=2.5),
            search,
            deadline=2.5,
            pause=(0.05, 0.15),
        ),
        _Endpoint(
            "telemetry",
            "POST a beacon: 1 in 10 is reset, 1 in 10 hangs; http.best_effort drops them (returns None)",
            http.best_effort("telemetry", timeout=(0.2, 0.3)),
            beacon,
            deadline=0.5,
            pause=(0.05, 0.15),
        ),
        _Endpoint(
            "reports-api",
            "GET: 1 in 5 hangs forever; its 1 s deadline cuts the call (the read timeout alone is 5 s)",
            http.policy("reports-api", timeout=(1.0, 5.0), deadline=1.0),
            lambda rng: get("/hang" if rng.random() < 0.2 else "/delay/0.05"),
            deadline=1.0,
        ),
    ]


def _drive(endpoints: Sequence[_Endpoint], seconds: float, events: _Events, tick: Callable[[], object]) -> bool:
    """Call every endpoint from its threads for ``seconds`` (less if the output breaks), ``tick()`` now and then.

    Returns True when Ctrl-C ended it early (the calls in flight still finish)."""
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_call_loop, args=(endpoint, stop, events), name=f"demo-{endpoint.name}-{n}", daemon=True
        )
        for endpoint in endpoints
        for n in range(endpoint.threads)
    ]
    for thread in threads:
        thread.start()
    end = time.monotonic() + seconds
    interrupted = False
    try:
        while (left := end - time.monotonic()) > 0 and not events.broken.is_set():
            stop.wait(min(left, 0.25))
            tick()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop.set()
    wind_down = time.monotonic() + max(e.deadline for e in endpoints) + 1.0  # every call is deadline-bounded
    for thread in threads:
        thread.join(max(wind_down - time.monotonic(), 0.0))
    return interrupted


def _call_loop(endpoint: _Endpoint, stop: threading.Event, events: _Events) -> None:
    _local.endpoint = endpoint.name
    rng = random.Random()
    while not stop.is_set():
        started = time.monotonic()
        try:
            answer = endpoint.policy.call(endpoint.request(rng))
        except rs.CircuitOpenError as exc:
            events.emit(endpoint.name, "rejected", f"rejected at once: circuit open ({exc.retry_after:.2f} s left)")
        except TimeoutError as exc:  # rs.DeadlineExceeded is one
            took = time.monotonic() - started
            events.emit(
                endpoint.name,
                "cut",
                f"cut at its {endpoint.deadline:g} s deadline after {took:.2f} s ({type(exc).__name__})",
            )
        except Exception as exc:  # noqa: BLE001 -- the demo reports every failure and goes on
            events.emit(endpoint.name, "gave up", f"gave up: {_failure(exc)}")
        else:
            text = endpoint.after(answer) if endpoint.after is not None else None
            if text:
                events.emit(endpoint.name, "after", text)
        stop.wait(rng.uniform(*endpoint.pause))


def _failure(exc: BaseException) -> str:
    """What failed, and why the retries stopped (from the note the retry layer adds)."""
    response = getattr(exc, "response", None)
    what = f"HTTP {response.status_code}" if response is not None else type(exc).__name__
    for note in reversed(getattr(exc, "__notes__", ())):
        found = _GAVE_UP.search(note)
        if found:
            attempts, took, why = found.groups()
            return f"{what} after {attempts} attempt(s) in {float(took):.2f} s: {why}"
    return what


_GAVE_UP = re.compile(r"^resilience: gave up on .* after (\d+) attempt\(s\) over (\S+) s: (.*)$")


def _print_table(endpoints: Sequence[_Endpoint], out: IO[str]) -> None:
    health = rs.monitor.health()["names"]
    header = ("endpoint", "calls", "ok %", "retries", "p50 ms", "p95 ms", "p99 ms", "breaker", "health")
    rows = []
    for endpoint in endpoints:
        snap = rs.monitor.snapshot(endpoint.name)
        latency = snap["latency"]
        rows.append(
            (
                endpoint.name,
                str(snap["calls"]),
                f"{snap['ok'] / snap['calls']:.1%}" if snap["calls"] else "-",
                str(snap["retries"]),
                *(f"{latency[q] * 1000:.0f}" for q in ("p50", "p95", "p99")),
                rs.circuit.get(endpoint.name).state,
                health.get(endpoint.name, {}).get("status", "-"),
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(file=out)
    for row in [header, *rows]:
        cells = [
            cell.ljust(w) if i in (0, 7, 8) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)
    for endpoint in endpoints:
        verdict = health.get(endpoint.name)
        if verdict and verdict["status"] != "healthy":
            print(f"  {endpoint.name}: {verdict['status']}: {'; '.join(verdict['reasons'])}", file=out)
    print(file=out)
    print(
        "Look at: users-api's ok % although 1 answer in 5 failed (retries), inventory-api failing fast while its "
        "breaker was open, reports-api never past 1 s, telemetry never raising. "
        "In your code: rs.monitor.snapshot(name), rs.monitor.health().",
        file=out,
        flush=True,
    )
