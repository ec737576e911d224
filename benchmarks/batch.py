"""``http.fetch_all`` against a plain ThreadPoolExecutor + requests.Session, on a loopback server.

Run from the repository root::

    python benchmarks/batch.py            # full run (~10 s): 5 rounds per row
    python benchmarks/batch.py --quick    # one round per row, numbers only indicative
    python benchmarks/batch.py --json     # the same measurements as one JSON object

The script starts ``resilience._demo_server.DemoServer`` (in this process, on 127.0.0.1)
and fetches ``--urls`` (200) x ``/delay/<--latency>`` (50 ms) with ``--concurrency`` (20)
workers, two ways, alternating round by round:

- ``http.fetch_all``: the default per-host ``http.policy`` (retry, breaker, monitor,
  deadline) around each request, one ``http.Session`` sized for the concurrency;
- the baseline: ``ThreadPoolExecutor(concurrency)`` mapping ``session.get(url).json()``
  over one ``requests.Session`` whose adapter pool holds ``concurrency`` connections.

Each row reports the best and median wall time, the ideal time
(``urls / concurrency * latency``: every worker always busy), the ratio to the ideal,
the connections the server accepted in the best round, and the ratio to the baseline.

Target (the issue's acceptance): fetch_all's best round within 1.5x the ideal and at
most ``concurrency + 3`` connections -> PASS, else FAIL (``--strict`` exits 1 on FAIL).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

import resilience as rs
from resilience import http
from resilience._demo_server import DemoServer

TARGET_RATIO = 1.5  # fetch_all within this many times the ideal
SPARE_CONNECTIONS = 3  # connections allowed over the pool size


@dataclass
class Row:
    name: str
    seconds: list[float] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    ok: int = 0

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best_connections(self) -> int:
        return self.connections[self.seconds.index(self.best)]


def with_fetch_all(urls: list[str], concurrency: int) -> int:
    batch = http.fetch_all(urls, concurrency=concurrency)
    return int(batch.summary()["ok"])


def with_executor(urls: list[str], concurrency: int) -> int:
    with requests.Session() as session:
        adapter = HTTPAdapter(pool_connections=concurrency, pool_maxsize=concurrency)
        session.mount("http://", adapter)

        def get(url: str) -> bool:
            response = session.get(url, timeout=(3.0, 10.0))
            response.json()
            return response.ok

        with ThreadPoolExecutor(concurrency) as executor:
            return sum(executor.map(get, urls))


def measure(args: argparse.Namespace) -> list[Row]:
    cases: list[tuple[Row, Callable[[list[str], int], int]]] = [
        (Row("http.fetch_all"), with_fetch_all),
        (Row("ThreadPoolExecutor + requests.Session"), with_executor),
    ]
    with DemoServer() as server:
        urls = [server.url(f"/delay/{args.latency:g}")] * args.urls
        for _, fn in cases:  # warm-up: imports, first connections, the policy's registration
            fn(urls[: args.concurrency], args.concurrency)
        for _ in range(args.rounds):
            for row, fn in cases:
                rs.testing.reset()
                server.reset_counts()
                started = time.perf_counter()
                row.ok = fn(urls, args.concurrency)
                row.seconds.append(time.perf_counter() - started)
                row.connections.append(server.connections)
    return [row for row, _ in cases]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round per row: a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument("--urls", type=int, default=200, help="URLs per round (default 200)")
    parser.add_argument("--concurrency", type=int, default=20, help="workers (default 20)")
    parser.add_argument("--latency", type=float, default=0.05, help="server latency per request, seconds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per row (default 5, quick 1)")
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    rows = measure(args)
    ideal = args.urls / args.concurrency * args.latency
    fetch, baseline = rows
    connection_limit = args.concurrency + SPARE_CONNECTIONS
    ratio = fetch.best / ideal
    passed = ratio <= TARGET_RATIO and fetch.best_connections <= connection_limit
    if args.json:
        result: dict[str, Any] = {
            "rows": [
                {
                    "name": row.name,
                    "best_seconds": row.best,
                    "median_seconds": row.median,
                    "vs_ideal": row.best / ideal,
                    "vs_baseline": row.best / baseline.best,
                    "connections": row.best_connections,
                    "ok": row.ok,
                }
                for row in rows
            ],
            "ideal_seconds": ideal,
            "target": {"ratio": ratio, "limit": TARGET_RATIO, "connection_limit": connection_limit, "pass": passed},
            "meta": {
                "urls": args.urls,
                "concurrency": args.concurrency,
                "latency": args.latency,
                "rounds": args.rounds,
                "quick": args.quick,
            },
        }
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.urls} x /delay/{args.latency:g} with concurrency {args.concurrency} on a loopback DemoServer "
            f"(ideal {ideal:.3f} s; best of {args.rounds})"
        )
        print(f"  {'row':<40}{'best s':>9}{'median s':>10}{'vs ideal':>10}{'vs baseline':>13}{'connections':>13}")
        print("  " + "-" * 95)
        for row in rows:
            print(
                f"  {row.name:<40}{row.best:>9.3f}{row.median:>10.3f}{row.best / ideal:>9.2f}x"
                f"{row.best / baseline.best:>12.2f}x{row.best_connections:>13}"
            )
        print()
        verdict = "PASS" if passed else "FAIL"
        print(
            f"TARGET fetch_all <= {TARGET_RATIO:g}x ideal ({ratio:.2f}x) and <= {connection_limit} connections "
            f"({fetch.best_connections}) -> {verdict}"
        )
        if args.quick:
            print("(--quick: one round, numbers only indicative)")
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
