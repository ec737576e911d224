"""Per-call overhead of resilience's layers next to tenacity, stamina, backoff and pybreaker.

Run from the repository root::

    python benchmarks/overhead.py            # full run (~15-25 s), a table on stdout
    python benchmarks/overhead.py --quick    # a few seconds, numbers only indicative
    python benchmarks/overhead.py --json     # the same measurements as one JSON object

Method (timeit-style): every case is a loop of ``n`` calls timed with
``time.perf_counter_ns``, ``n`` calibrated so one sample lasts a few tens of ms; the
garbage collector is off while a sample runs (as in ``timeit``). Cases are sampled
round-robin, so a burst of load from another process hits all of them alike, and the
best sample of each case is kept (the median is shown to judge the noise).

Happy path: the call succeeds at once. Failure path: the function raises ConnectionError
twice then succeeds (its counter is reset before each logical call), with zero waits.

Targets, each printed with PASS/FAIL (``--strict`` exits 1 on a FAIL): the stack
``@monitored @retry_on @circuit`` costs at most 0.25x tenacity's ``@retry`` alone; and
``@monitored`` adds at most 1 µs per successful call over the same stack without it
(``@retry_on @circuit``, measured in the same round-robin, not printed as a table row).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import backoff
import pybreaker
import stamina
import tenacity

import resilience as rs
from resilience import http

TARGET = 0.25  # the stack must cost at most this fraction of tenacity's @retry alone
MONITORED_LIMIT_NS = 1000.0  # @monitored may add at most this over the same stack without it
STACK = "rs stack (monitored+retry_on+circuit)"
STACK_UNMONITORED = "rs stack without monitored (retry_on+circuit)"
PEERS = ("resilience", "tenacity", "stamina", "backoff", "pybreaker")
RETRY_LOGGERS = ("resilience", "stamina", "backoff")  # loggers that log each retry

perf_ns = time.perf_counter_ns


def f(x: Any) -> Any:
    return x


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One thing to time. ``run(n)`` returns the nanoseconds ``n`` calls took."""

    name: str
    run: Callable[[int], int]
    n: int = 1
    samples: list[float] = field(default_factory=list)  # ns per call

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def calls(fn: Callable[[Any], Any]) -> Callable[[int], int]:
    """A timed loop of ``fn(1)``."""

    def run(n: int) -> int:
        start = perf_ns()
        for _ in itertools.repeat(None, n):
            fn(1)
        return perf_ns() - start

    return run


def logical_calls(
    fn: Callable[[Any], Any], counter: list[int], wrap: Callable[[], Any] | None = None
) -> Callable[[int], int]:
    """A timed loop of logical calls of a flaky function: reset its counter, call it.

    ``wrap`` is a context manager factory entered around the loop, outside the timer.
    """

    def run(n: int) -> int:
        with wrap() if wrap is not None else contextlib.nullcontext():
            start = perf_ns()
            for _ in itertools.repeat(None, n):
                counter[0] = 0
                fn(1)
            return perf_ns() - start

    return run


def flaky_function(failures: int = 2) -> tuple[Callable[[Any], Any], list[int]]:
    """A function that raises ConnectionError ``failures`` times, then returns its argument."""
    counter = [0]

    def flaky(x: Any) -> Any:
        counter[0] += 1
        if counter[0] <= failures:
            raise ConnectionError("flaky")
        return x

    return flaky, counter


def happy_cases() -> list[Case]:
    """Every decorator over the same trivial ``f``."""

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=10),
        retry=tenacity.retry_if_exception_type(ConnectionError),
    )
    def f_tenacity(x: Any) -> Any:
        return x

    @stamina.retry(on=ConnectionError, attempts=3)
    def f_stamina(x: Any) -> Any:
        return x

    @backoff.on_exception(backoff.expo, ConnectionError, max_tries=3)
    def f_backoff(x: Any) -> Any:
        return x

    @pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    def f_pybreaker(x: Any) -> Any:
        return x

    @rs.retry_on(ConnectionError, attempts=3)
    def f_retry(x: Any) -> Any:
        return x

    @rs.circuit("bench", fail_max=5)
    def f_circuit(x: Any) -> Any:
        return x

    @rs.monitored("bench")
    def f_monitored(x: Any) -> Any:
        return x

    @rs.monitored("stack")
    @rs.retry_on(ConnectionError, attempts=3)
    @rs.circuit("stack-cb")
    def f_stack(x: Any) -> Any:
        return x

    @http.policy("bench-http")
    def f_http(x: Any) -> Any:
        return x

    fns: dict[str, Callable[[Any], Any]] = {
        "bare f(x)": f,
        "tenacity @retry": f_tenacity,
        "stamina.retry": f_stamina,
        "backoff.on_exception": f_backoff,
        "pybreaker.CircuitBreaker": f_pybreaker,
        "rs.retry_on": f_retry,
        "rs.circuit": f_circuit,
        "rs.monitored": f_monitored,
        STACK: f_stack,
        "http.policy (all its layers)": f_http,
    }
    for name, fn in fns.items():
        if fn(1) != 1:
            raise AssertionError(f"{name} did not return its argument")
    return [Case(name, calls(fn)) for name, fn in fns.items()]


def unmonitored_stack_case() -> Case:
    """The stack's inner layers without @monitored: the difference is what @monitored adds."""

    @rs.retry_on(ConnectionError, attempts=3)
    @rs.circuit("stack-cb-unmonitored")
    def f_stack_unmonitored(x: Any) -> Any:
        return x

    if f_stack_unmonitored(1) != 1:
        raise AssertionError(f"{STACK_UNMONITORED} did not return its argument")
    return Case(STACK_UNMONITORED, calls(f_stack_unmonitored))


def failure_cases(logging_mode: Callable[[], Any]) -> list[Case]:
    """Each retry implementation over its own flaky function, zero waits."""
    cases: list[Case] = []

    def add(name: str, decorate: Callable[[Callable[[Any], Any]], Callable[[Any], Any]], wrap: Any = None) -> None:
        flaky, counter = flaky_function()
        fn = decorate(flaky)
        with wrap() if wrap is not None else contextlib.nullcontext(), logging_mode():
            counter[0] = 0
            if fn(1) != 1 or counter[0] != 3:
                raise AssertionError(f"{name}: expected success on the 3rd attempt, saw {counter[0]} attempts")

        def both() -> contextlib.ExitStack:
            stack = contextlib.ExitStack()
            if wrap is not None:
                stack.enter_context(wrap())
            stack.enter_context(logging_mode())
            return stack

        cases.append(Case(name, logical_calls(fn, counter, both)))

    def by_hand(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def loop(x: Any) -> Any:
            for attempt in range(3):
                try:
                    return fn(x)
                except ConnectionError:
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        return loop

    add("hand-written try/except loop", by_hand)
    add(
        "tenacity @retry wait_none()",
        tenacity.retry(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_none(),
            retry=tenacity.retry_if_exception_type(ConnectionError),
        ),
    )
    add(
        "tenacity wait_none(), sleep=no-op",
        tenacity.retry(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_none(),
            retry=tenacity.retry_if_exception_type(ConnectionError),
            sleep=_no_sleep,
        ),
    )
    add(
        "stamina.retry waits=0",
        stamina.retry(on=ConnectionError, attempts=3, wait_initial=0, wait_max=0, wait_jitter=0),
    )
    add(
        "stamina.retry set_testing(attempts=3)",
        stamina.retry(on=ConnectionError, attempts=3),
        wrap=lambda: stamina.set_testing(True, attempts=3),
    )
    add("backoff constant interval=0", backoff.on_exception(backoff.constant, ConnectionError, max_tries=3, interval=0))
    add("rs.retry_on wait_initial=0", rs.retry_on(ConnectionError, attempts=3, wait_initial=0))
    return cases


def _no_sleep(seconds: float) -> None:
    """tenacity calls sleep(0) between attempts even with wait_none(); this row shows its cost."""


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """Retry loggers at ERROR: a retry's WARNING (INFO for backoff) is dropped at once."""
    loggers = [logging.getLogger(name) for name in RETRY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def default_logging() -> Iterator[None]:
    """Logging as an unconfigured program has it: no handlers, loggers at their own defaults.

    resilience's and stamina's WARNINGs then reach Python's last-resort handler, which
    formats them and writes them to sys.stderr; stderr points at os.devnull meanwhile, so
    the cost is measured without flooding the terminal.
    """
    if logging.getLogger().handlers:
        raise RuntimeError("the root logger has handlers: the 'default logging' figure would be wrong")
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        yield


# --------------------------------------------------------------------------- timing


def calibrate(case: Case, sample_ns: int) -> None:
    """Pick ``n`` so that one sample of ``case`` lasts about ``sample_ns``."""
    n = 1
    while True:
        elapsed = case.run(n)
        if elapsed >= sample_ns // 5 or n >= 1 << 30:
            break
        n *= 4 if elapsed < sample_ns // 50 else 2
    case.n = max(1, round(n * sample_ns / max(elapsed, 1)))


def measure(cases: list[Case], *, repeats: int, sample_ns: int) -> None:
    for case in cases:
        calibrate(case, sample_ns)
    for _ in range(repeats):
        for case in cases:  # round-robin: noise from other processes hits every case alike
            gc.collect()
            gc.disable()
            try:
                elapsed = case.run(case.n)
            finally:
                gc.enable()
            case.samples.append(elapsed / case.n)


# --------------------------------------------------------------------------- report


def source_state() -> str:
    """The commit measured, with "-dirty" when the working tree has changes."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def happy_rows(cases: list[Case]) -> list[dict[str, Any]]:
    bare = cases[0].best
    tenacity_case = next(c for c in cases if c.name == "tenacity @retry")
    ten_total, ten_over = tenacity_case.best, tenacity_case.best - bare
    return [
        {
            "name": c.name,
            "ns_best": round(c.best, 1),
            "ns_median": round(c.median, 1),
            "overhead_ns": round(c.best - bare, 1),
            "total_vs_tenacity": round(c.best / ten_total, 4),
            "overhead_vs_tenacity": round((c.best - bare) / ten_over, 4) if ten_over > 0 else None,
            "n": c.n,
        }
        for c in cases
    ]


def failure_rows(cases: list[Case]) -> list[dict[str, Any]]:
    ten = next(c for c in cases if c.name == "tenacity @retry wait_none()").best
    return [
        {
            "name": c.name,
            "us_best": round(c.best / 1000, 3),
            "us_median": round(c.median / 1000, 3),
            "total_vs_tenacity": round(c.best / ten, 4),
            "n": c.n,
        }
        for c in cases
    ]


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def print_report(result: dict[str, Any]) -> None:
    meta = result["meta"]
    print(
        f"resilience overhead benchmark ({meta['source']})  python {meta['python']}  "
        + "  ".join(f"{k} {v}" for k, v in meta["versions"].items())
    )
    print(
        f"mode={'quick' if meta['quick'] else 'full'}  best of {meta['repeats_happy']} (happy) / "
        f"{meta['repeats_failure']} (failure) samples of ~{meta['sample_ms']} ms, gc off while timing, "
        f"{meta['cpus']} CPUs"
    )
    print()
    print("Happy path: f(x) returns at once (ns per call; overhead = ns - bare; ratios vs tenacity @retry)")
    header = f"{'case':<40} {'ns/call':>9} {'median':>9} {'overhead':>9} {'total/ten':>10} {'over/ten':>9}"
    print(header)
    print("-" * len(header))
    for row in result["happy_path"]["rows"]:
        print(
            f"{row['name']:<40} {row['ns_best']:>9.1f} {row['ns_median']:>9.1f} {row['overhead_ns']:>9.1f} "
            f"{fmt_ratio(row['total_vs_tenacity']):>10} {fmt_ratio(row['overhead_vs_tenacity']):>9}"
        )
    target = result["target"]
    print()
    print(
        f"TARGET stack <= {target['limit']}x tenacity @retry (total ns per call): "
        f"{target['stack_ns']:.1f} ns vs {target['tenacity_ns']:.1f} ns = {target['total_ratio']:.3f}x "
        f"-> {'PASS' if target['pass'] else 'FAIL'}"
    )
    print(
        f"       overhead ratio (ns above bare): {target['stack_overhead_ns']:.1f} / "
        f"{target['tenacity_overhead_ns']:.1f} = {fmt_ratio(target['overhead_ratio'])}"
    )
    added = result["monitored_target"]
    # single spaces only: the smoke test reads table rows as "name<2+ spaces>number"
    print(
        f"MONITORED @monitored adds <= {added['limit_ns']:.0f} ns over the same stack without it: "
        f"{added['stack_ns']:.1f} ns vs {added['unmonitored_stack_ns']:.1f} ns ({STACK_UNMONITORED}) "
        f"= {added['added_ns']:.1f} ns -> {'PASS' if added['pass'] else 'FAIL'}"
    )
    for mode, block in result["failure_path"].items():
        print()
        print(f"Failure path, logging {mode}: {block['description']}")
        print("  ConnectionError twice then success, zero waits (us per logical call = 3 attempts)")
        header = f"  {'case':<40} {'us/call':>9} {'median':>9} {'total/ten':>10}"
        print(header)
        print("  " + "-" * (len(header) - 2))
        for row in block["rows"]:
            print(
                f"  {row['name']:<40} {row['us_best']:>9.2f} {row['us_median']:>9.2f} "
                f"{fmt_ratio(row['total_vs_tenacity']):>10}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few, short samples (smoke test)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    repeats_happy, repeats_failure, sample_ms = (3, 3, 3) if args.quick else (25, 15, 30)
    sample_ns = sample_ms * 1_000_000

    happy = happy_cases()
    unmonitored = unmonitored_stack_case()
    measure([*happy, unmonitored], repeats=repeats_happy, sample_ns=sample_ns)

    modes = {
        "quiet": (
            quiet_logging,
            'loggers "resilience", "stamina", "backoff" set to ERROR (retry messages dropped at once)',
        ),
        "default": (
            default_logging,
            "left on, no handlers configured (resilience/stamina WARNINGs reach Python's "
            "last-resort stderr handler, stderr sent to os.devnull; backoff logs INFO to its NullHandler)",
        ),
    }
    failure: dict[str, Any] = {}
    for mode, (context, description) in modes.items():
        cases = failure_cases(context)
        measure(cases, repeats=repeats_failure, sample_ns=sample_ns)
        failure[mode] = {"description": description, "rows": failure_rows(cases)}

    rows = happy_rows(happy)
    bare = rows[0]["ns_best"]
    by_name = {row["name"]: row for row in rows}
    ten = by_name["tenacity @retry"]
    stack = by_name[STACK]
    added = stack["ns_best"] - unmonitored.best
    total_ratio = stack["ns_best"] / ten["ns_best"]
    ten_over = ten["ns_best"] - bare
    result = {
        "meta": {
            "python": platform.python_version(),
            "source": source_state(),
            "versions": {name: version(name) for name in PEERS},
            "quick": args.quick,
            "repeats_happy": repeats_happy,
            "repeats_failure": repeats_failure,
            "sample_ms": sample_ms,
            "cpus": os.cpu_count(),
        },
        "happy_path": {"unit": "ns per call", "rows": rows},
        "failure_path": failure,
        "target": {
            "limit": TARGET,
            "stack_ns": stack["ns_best"],
            "tenacity_ns": ten["ns_best"],
            "total_ratio": round(total_ratio, 4),
            "stack_overhead_ns": stack["overhead_ns"],
            "tenacity_overhead_ns": round(ten_over, 1),
            "overhead_ratio": round(stack["overhead_ns"] / ten_over, 4) if ten_over > 0 else None,
            "pass": total_ratio <= TARGET,
        },
        "monitored_target": {
            "limit_ns": MONITORED_LIMIT_NS,
            "stack_ns": stack["ns_best"],
            "unmonitored_stack_ns": round(unmonitored.best, 1),
            "unmonitored_stack_median_ns": round(unmonitored.median, 1),
            "added_ns": round(added, 1),
            "pass": added <= MONITORED_LIMIT_NS,
        },
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print_report(result)
    passed = result["target"]["pass"] and result["monitored_target"]["pass"]
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
