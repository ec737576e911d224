"""Tail latency with and without ``rs.hedge`` against a loopback HTTP server.

Run from the repository root::

    python benchmarks/hedge.py            # full run (~30 s): 2,000 calls per row
    python benchmarks/hedge.py --quick    # a few seconds, numbers only indicative
    python benchmarks/hedge.py --json     # the same measurements as one JSON object

The script starts an HTTP server on 127.0.0.1 in a child process (so that it does not
share the client's GIL). Each request is slow (``--slow`` seconds, default 0.2) with
probability 5 %, independently of the others, else answered at once; the server counts
the requests it receives. Clients make ``--calls`` logical calls: asyncio tasks over raw
``asyncio.open_connection`` (the hedge cancels the loser) and threads over
``http.client`` (the hedge runs attempts in its worker pool and abandons the loser).
Every row reports p50 / p99 / max latency of the logical calls, the calls per second
achieved and the extra requests the server saw, in % of the logical calls.

The load is open-loop: call ``i`` starts at ``i / --rate`` seconds, whether or not the
earlier calls have answered, so every row offers the server the same requests per
second (plus its extra attempts). A closed loop (N workers, each starting its next call
when the previous one ends) would not: unhedged workers spend ~90 % of their time
waiting on the slow 5 %, hedged ones do not, so the hedged rows pushed ~3x the requests
per second at the same 2-core server and their median measured that server's queueing,
not the hedge. Latency is timed from a call's actual start; a client that falls behind
the schedule (``lag``) is reported.

Target: for each hedged row with a fixed delay, p99 at least 5x lower than the unhedged
row of the same flavour, for at most 10 % extra requests -> PASS, else FAIL (``--strict``
exits 1 on FAIL). The adaptive row (``delay=None``: the hedge learns the latency
quantile itself) is shown for information.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import resilience as rs

SLOW_FRACTION = 0.05
TARGET_RATIO = 5.0  # hedged p99 at least this many times lower
TARGET_EXTRA = 0.10  # at most this share of extra requests
HOST = "127.0.0.1"
LAG_WARNING = 0.05  # seconds a call may start late before the row is flagged


# --------------------------------------------------------------------------- the server


def serve(slow: float, seed: int) -> None:
    """Run the server until stdin closes; print its port first."""
    rng = random.Random(seed)
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            if self.path == "/count":
                with lock:
                    body = str(count[0]).encode()
            else:
                with lock:
                    count[0] += 1
                    is_slow = rng.random() < SLOW_FRACTION
                if is_slow:
                    time.sleep(slow)
                body = b"slow" if is_slow else b"fast"
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # a cancelled hedge's client hung up: expected
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 512  # a full accept queue costs a 1 s SYN retransmit: not what is measured

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # clients that hung up (cancelled hedges) are expected

    server = Server((HOST, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # the parent closes our stdin when it is done
    server.shutdown()


class Server:
    """The child process running :func:`serve`."""

    def __init__(self, slow: float, seed: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", "--slow", str(slow), "--seed", str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def count(self) -> int:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            connection.request("GET", "/count")
            return int(connection.getresponse().read())
        finally:
            connection.close()

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


# --------------------------------------------------------------------------- the clients


def sync_get(port: int) -> bytes:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", "/")
        return connection.getresponse().read()
    finally:
        connection.close()


async def async_get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        await writer.drain()
        response = await reader.read()
        return response.rpartition(b"\r\n\r\n")[2]
    finally:
        writer.close()  # also when cancelled: the losing connection is dropped


@dataclass
class Row:
    name: str
    flavour: str
    hedged: bool
    calls: int = 0
    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)  # actual start - scheduled start, per call
    seconds: float = 0.0
    hedge_stats: dict[str, Any] = field(default_factory=dict)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    @property
    def extra(self) -> float:
        return (self.requests - self.calls) / self.calls

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "flavour": self.flavour,
            "calls": self.calls,
            "requests": self.requests,
            "extra": self.extra,
            "p50_ms": self.quantile(0.50) * 1e3,
            "p99_ms": self.quantile(0.99) * 1e3,
            "max_ms": max(self.latencies) * 1e3,
            "mean_ms": statistics.fmean(self.latencies) * 1e3,
            "calls_per_second": self.rate,
            "max_lag_ms": max(self.lag) * 1e3,
            "seconds": self.seconds,
            "hedge": self.hedge_stats,
        }


def run_async(server: Server, row: Row, fn: Callable[[int], Awaitable[bytes]], calls: int, rate: float) -> None:
    """Start call ``i`` as a task at ``i / rate`` seconds (open loop)."""

    async def one(due: float) -> None:
        start = time.perf_counter()
        row.lag.append(start - due)
        await fn(server.port)
        row.latencies.append(time.perf_counter() - start)

    async def main() -> None:
        tasks = []
        begin = time.perf_counter()
        for i in range(calls):
            due = begin + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)

    before = server.count()
    started = time.perf_counter()
    asyncio.run(main())
    row.seconds = time.perf_counter() - started
    time.sleep(0.05)  # let the last cancelled hedges reach the server's count, if they are going to
    row.calls, row.requests = calls, server.count() - before


def run_sync(server: Server, row: Row, fn: Callable[[int], bytes], calls: int, rate: float, threads: int) -> None:
    """Hand call ``i`` to one of ``threads`` client threads at ``i / rate`` seconds (open loop)."""
    lock = threading.Lock()

    def one(due: float) -> None:
        start = time.perf_counter()
        fn(server.port)
        elapsed = time.perf_counter() - start
        with lock:
            row.lag.append(start - due)
            row.latencies.append(elapsed)

    before = server.count()
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        futures = []
        begin = time.perf_counter()
        for i in range(calls):
            due = begin + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            futures.append(executor.submit(one, due))
        for future in futures:
            future.result()
    row.seconds = time.perf_counter() - started
    time.sleep(0.05)
    row.calls, row.requests = calls, server.count() - before


def measure(args: argparse.Namespace) -> tuple[list[Row], float]:
    delay = args.delay
    server = Server(args.slow, args.seed)
    rows: list[Row] = []
    try:
        warm = min(100, args.calls)
        # async
        row = Row("async unhedged", "async", hedged=False)
        run_async(server, Row("warm-up", "async", False), async_get, warm, args.rate)
        run_async(server, row, async_get, args.calls, args.rate)
        rows.append(row)

        layer = rs.hedge(delay)
        hedged_get = layer(async_get)
        row = Row(f"async hedge(delay={delay:g})", "async", hedged=True)
        run_async(server, row, hedged_get, args.calls, args.rate)
        row.hedge_stats = layer.stats()
        rows.append(row)

        adaptive = rs.hedge(quantile=args.quantile)
        adaptive_get = adaptive(async_get)
        run_async(server, Row("warm-up", "async", False), adaptive_get, warm, args.rate)
        adaptive.state.calls = adaptive.state.hedged = adaptive.state.won = adaptive.state.denied = 0
        row = Row(f"async hedge(quantile={args.quantile:g}) adaptive", "async", hedged=True)
        run_async(server, row, adaptive_get, args.calls, args.rate)
        row.hedge_stats = adaptive.stats()
        rows.append(row)

        # sync
        row = Row("sync unhedged", "sync", hedged=False)
        run_sync(server, row, sync_get, args.calls, args.rate, args.threads)
        rows.append(row)

        layer = rs.hedge(delay)
        hedged_sync = layer(sync_get)
        row = Row(f"sync hedge(delay={delay:g})", "sync", hedged=True)
        run_sync(server, row, hedged_sync, args.calls, args.rate, args.threads)
        row.hedge_stats = layer.stats()
        rows.append(row)
    finally:
        server.stop()
    return rows, delay


def verdicts(rows: list[Row]) -> list[dict[str, Any]]:
    """One verdict per fixed-delay hedged row against the unhedged row of its flavour."""
    base = {row.flavour: row for row in rows if not row.hedged}
    out = []
    for row in rows:
        if not row.hedged or "adaptive" in row.name:
            continue
        ratio = base[row.flavour].quantile(0.99) / row.quantile(0.99)
        out.append(
            {
                "row": row.name,
                "p99_ratio": ratio,
                "extra": row.extra,
                "pass": ratio >= TARGET_RATIO and row.extra <= TARGET_EXTRA,
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few hundred calls: a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument("--calls", type=int, default=None, help="logical calls per row (default 2000, quick 200)")
    parser.add_argument("--rate", type=float, default=400.0, help="calls started per second (default 400)")
    parser.add_argument("--threads", type=int, default=64, help="client threads of the sync rows (default 64)")
    parser.add_argument("--slow", type=float, default=0.2, help="seconds a slow response takes")
    parser.add_argument("--delay", type=float, default=0.02, help="the fixed hedge delay, seconds")
    parser.add_argument("--quantile", type=float, default=0.95, help="the adaptive row's quantile (the default)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.slow, args.seed)
        return 0
    if args.calls is None:
        args.calls = 200 if args.quick else 2000
    rows, delay = measure(args)
    results = verdicts(rows)
    passed = all(result["pass"] for result in results)
    if args.json:
        print(
            json.dumps(
                {
                    "rows": [row.as_dict() for row in rows],
                    "verdicts": results,
                    "pass": passed,
                    "meta": {
                        "calls": args.calls,
                        "rate": args.rate,
                        "threads": args.threads,
                        "slow_seconds": args.slow,
                        "slow_fraction": SLOW_FRACTION,
                        "delay": delay,
                        "quick": args.quick,
                    },
                },
                indent=2,
            )
        )
    else:
        print(
            f"Loopback HTTP server, {SLOW_FRACTION:.0%} of responses slow ({args.slow * 1e3:.0f} ms); "
            f"{args.calls} logical calls per row, started {args.rate:g} per second (open loop)"
        )
        print(
            f"  {'row':<34}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'calls/s':>9}{'requests':>10}{'extra':>8}"
            "  hedge stats"
        )
        print("  " + "-" * 105)
        for row in rows:
            stats = row.hedge_stats
            note = (
                f"hedged={stats['hedged']} won={stats['won']} denied={stats['denied']} delay={stats['delay'] or 0:.4f}"
                if stats
                else ""
            )
            print(
                f"  {row.name:<34}{row.quantile(0.5) * 1e3:>9.1f}{row.quantile(0.99) * 1e3:>9.1f}"
                f"{max(row.latencies) * 1e3:>9.1f}{row.rate:>9.0f}{row.requests:>10}{row.extra:>8.1%}  {note}"
            )
        print()
        for row in rows:
            if max(row.lag) > LAG_WARNING:
                print(
                    f"NOTE {row.name}: a call started {max(row.lag) * 1e3:.0f} ms late: the client fell behind "
                    f"--rate {args.rate:g}, so that row's load was lower than asked (a busy machine?)"
                )
        for result in results:
            verdict = "PASS" if result["pass"] else "FAIL"
            print(
                f"TARGET {result['row']}: p99 {result['p99_ratio']:.1f}x lower (>= {TARGET_RATIO:g}x), "
                f"{result['extra']:.1%} extra requests (<= {TARGET_EXTRA:.0%}) -> {verdict}"
            )
        if args.quick:
            print("(--quick: too few calls for a meaningful p99)")
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
