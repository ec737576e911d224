"""Acceptance figures of ``@monitored``'s statistics: quantile accuracy and memory.

Run from the repository root::

    python benchmarks/monitor_accuracy.py          # 1,000,000 samples and calls (~30 s)
    python benchmarks/monitor_accuracy.py --quick  # 100,000 of each, numbers indicative
    python benchmarks/monitor_accuracy.py --json   # one JSON object instead of lines

1. **Quantiles**: 1,000,000 log-normal durations (median 50 ms, sigma 1.2: a long tail)
   go through a monitored function on a fake clock (each call advances it by one
   sample), so they take the real path: buffer, bulk fold, sketch. p50/p95/p99 of
   ``rs.monitor.snapshot()`` are compared with the exact quantiles of the sorted samples
   (the sample of rank ``floor(q * (n - 1))``); limit 1 % relative error.
2. **Memory**: 1,000,000 monitored calls spread round-robin over 100 names, each call
   advancing the fake clock by a log-normal duration (median 1 ms), so every name fills
   its lifetime sketch and rolls its 5-minute window through new buckets all along. RSS
   (``/proc/self/statm``, or ``ru_maxrss`` elsewhere) is read after one call per name
   and again at the end; limit 5 MB of growth. The same is then measured on
   the real clock with a trivial function.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import os
import random
import resource
import subprocess
import sys
import time
from typing import Any

import resilience as rs

QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
ERROR_LIMIT = 0.01
RSS_LIMIT = 5 * 1024 * 1024


def rss_bytes() -> int:
    """Resident set size now (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def quantile_accuracy(n: int) -> dict[str, Any]:
    rng = random.Random(20240601)
    samples = [rng.lognormvariate(math.log(0.05), 1.2) for _ in range(n)]
    rs.testing.reset()
    with rs.testing.fake_clock() as clock:
        advance = clock.advance
        feed = iter(samples)

        @rs.monitored("accuracy")
        def call() -> None:
            advance(next(feed))

        started = time.perf_counter()
        for _ in range(n):
            call()
        elapsed = time.perf_counter() - started
        latency = rs.monitor.snapshot("accuracy")["latency"]
    ordered = sorted(samples)
    rows = {}
    for key, q in QUANTILES.items():
        exact = ordered[math.floor(q * (n - 1))]
        rows[key] = {"exact": exact, "sketch": latency[key], "relative_error": abs(latency[key] - exact) / exact}
    worst = max(row["relative_error"] for row in rows.values())
    return {
        "samples": n,
        "quantiles": rows,
        "worst_relative_error": worst,
        "limit": ERROR_LIMIT,
        "pass": worst <= ERROR_LIMIT,
        "us_per_call": elapsed / n * 1e6,
    }


def memory_growth(calls: int, names: int, *, fake: bool) -> dict[str, Any]:
    rs.testing.reset()
    rng = random.Random(7)
    durations = [rng.lognormvariate(math.log(0.001), 1.0) for _ in range(4096)]
    functions = []
    step = itertools.cycle(durations)  # one, shared: its saved copy is made during the warm-up
    with rs.testing.fake_clock() if fake else _NoClock() as clock:
        for index in range(names):

            def work(clock: Any = clock) -> None:
                if clock is not None:
                    clock.advance(next(step))

            functions.append(rs.monitored(f"svc-{index:03d}")(work))
        for fn in functions:  # one call each: the names exist, their windows are still empty
            fn()
        gc.collect()
        before = rss_bytes()
        rounds = calls // names
        started = time.perf_counter()
        for _ in range(rounds):
            for fn in functions:
                fn()
        elapsed = time.perf_counter() - started
        snapshot = rs.monitor.snapshot()
        gc.collect()
        after = rss_bytes()
    counted = sum(snap["calls"] for snap in snapshot.values()) - names
    return {
        "clock": "fake, log-normal durations" if fake else "real, trivial function",
        "calls": rounds * names,
        "names": names,
        "counted": counted,
        "rss_before": before,
        "rss_after": after,
        "growth_bytes": after - before,
        "limit_bytes": RSS_LIMIT,
        "pass": after - before < RSS_LIMIT and counted == rounds * names,
        "us_per_call": elapsed / (rounds * names) * 1e6,
    }


def in_fresh_process(kind: str, quick: bool) -> dict[str, Any]:
    command = [sys.executable, os.path.abspath(__file__), "--memory-child", kind, *(["--quick"] if quick else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class _NoClock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 samples and calls")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a limit is missed")
    parser.add_argument("--memory-child", choices=["fake", "real"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else 1_000_000
    if args.memory_child:  # measured alone in a fresh interpreter: nothing freed earlier to reuse
        json.dump(memory_growth(n, 100, fake=args.memory_child == "fake"), sys.stdout)
        return 0
    memory = [in_fresh_process(kind, args.quick) for kind in ("fake", "real")]
    accuracy = quantile_accuracy(n)
    result = {"accuracy": accuracy, "memory": memory}
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(f"Quantiles of {n:,} log-normal durations (median 50 ms, sigma 1.2) through @monitored:")
        for key, row in accuracy["quantiles"].items():
            print(
                f"  {key}: exact {row['exact'] * 1e3:.4f} ms, sketch {row['sketch'] * 1e3:.4f} ms, "
                f"relative error {row['relative_error']:.4%}"
            )
        print(
            f"QUANTILES worst relative error {accuracy['worst_relative_error']:.4%} <= {ERROR_LIMIT:.0%} "
            f"-> {'PASS' if accuracy['pass'] else 'FAIL'} ({accuracy['us_per_call']:.2f} us per call on a fake clock)"
        )
        for block in memory:
            print(
                f"RSS growth over {block['calls']:,} monitored calls on {block['names']} names ({block['clock']}): "
                f"{block['growth_bytes'] / 1024 / 1024:.2f} MB < {RSS_LIMIT / 1024 / 1024:.0f} MB, "
                f"{block['counted']:,} counted -> {'PASS' if block['pass'] else 'FAIL'}"
            )
    passed = accuracy["pass"] and all(block["pass"] for block in memory)
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
