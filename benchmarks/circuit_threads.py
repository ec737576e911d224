"""Threads through one shared circuit breaker: does the breaker serialise the calls?

Run from the repository root::

    python benchmarks/circuit_threads.py            # 8 threads x 20 calls of a 20 ms call
    python benchmarks/circuit_threads.py --quick    # 8 threads x 3 calls, one round
    python benchmarks/circuit_threads.py --json     # one JSON object instead of a table

8 threads, released together by a barrier, each call a function that sleeps 20 ms
through one breaker shared by all of them. Wall time from the barrier to the last
thread's end, best of a few rounds (rounds alternate between the cases):

- no breaker: the floor, about calls x 20 ms (threads sleep in parallel);
- ``@rs.circuit``: admission reads the state without a lock, so it should stay at the floor;
- ``pybreaker.CircuitBreaker``: holds its lock for the whole call (pybreaker issue 3),
  so the threads run one at a time: about threads x the floor.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import pybreaker

import resilience as rs

THREADS = 8
SLEEP = 0.020


def work(x: Any) -> Any:
    time.sleep(SLEEP)
    return x


def wall_time(fn: Callable[[Any], Any], *, threads: int, calls: int) -> float:
    """Seconds for ``threads`` threads to make ``calls`` calls each of ``fn``, started together."""
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            for i in range(calls):
                if fn(i) != i:
                    raise AssertionError("wrong result")
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def cases() -> dict[str, Callable[[Any], Any]]:
    rs_breaker = rs.circuit("bench-threads", fail_max=5, reset_timeout=30)
    py_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    return {
        "no breaker": work,
        "rs.circuit": rs_breaker(work),
        "pybreaker.CircuitBreaker": py_breaker(work),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 calls per thread, one round (smoke test)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    calls, rounds = (3, 1) if args.quick else (20, 3)

    fns = cases()
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            elapsed = wall_time(fn, threads=THREADS, calls=calls)
            best[name] = min(best.get(name, elapsed), elapsed)

    floor = best["no breaker"]
    rows = [
        {"name": name, "seconds": round(seconds, 4), "vs_no_breaker": round(seconds / floor, 3)}
        for name, seconds in best.items()
    ]
    result = {
        "threads": THREADS,
        "calls_per_thread": calls,
        "call_seconds": SLEEP,
        "rounds": rounds,
        "ideal_seconds": round(calls * SLEEP, 4),
        "serialised_seconds": round(THREADS * calls * SLEEP, 4),
        "versions": {name: version(name) for name in ("resilience", "pybreaker")},
        "rows": rows,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{THREADS} threads x {calls} calls of a {SLEEP * 1000:.0f} ms call through one shared breaker "
        f"(best of {rounds}; ideal {result['ideal_seconds']:.3f} s, fully serialised "
        f"{result['serialised_seconds']:.3f} s)"
    )
    header = f"{'case':<28} {'seconds':>9} {'vs no breaker':>14}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['name']:<28} {row['seconds']:>9.3f} {row['vs_no_breaker']:>13.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
