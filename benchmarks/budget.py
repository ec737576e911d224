"""How much load a dead dependency sees with and without ``rs.RetryBudget``, and what a budget costs.

Run from the repository root::

    python benchmarks/budget.py            # a second or two
    python benchmarks/budget.py --quick    # the same, fewer timing samples
    python benchmarks/budget.py --json     # one JSON object

Load: 1,000 logical calls of ``retry_on(ConnectionError, attempts=3, wait_initial=0)``
against a function that always raises, on a fake clock, spread evenly over 10 s (and
over 1 s and 50 s, to show the ``min_per_second`` floor at work). Reported: how many
times the dependency was reached. Target: at most 1,250 with a 20 % budget over 10 s
(3,000 without) -> PASS / FAIL.

Cost: ns per successful call of a bare function, ``retry_on`` and ``retry_on`` with a
budget, and ns per ``RetryBudget.deposit()`` (best of several timeit samples).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import timeit
from typing import Any

import resilience as rs

CALLS = 1_000
TARGET = 1_250


def reach(spread: float, budget: rs.RetryBudget | None) -> int:
    """Times a dead dependency is reached by CALLS logical calls spread over ``spread`` fake seconds."""
    reached = 0

    def dead() -> None:
        nonlocal reached
        reached += 1
        raise ConnectionError("down")

    fn = rs.retry_on(ConnectionError, attempts=3, wait_initial=0, budget=budget)(dead)
    with rs.testing.fake_clock() as clock:
        for _ in range(CALLS):
            with contextlib.suppress(ConnectionError):
                fn()
            clock.advance(spread / CALLS)
    return reached


def cost(repeat: int) -> dict[str, float]:
    def f(x: Any) -> Any:
        return x

    plain = rs.retry_on(ConnectionError)(f)
    budgeted = rs.retry_on(ConnectionError, budget=rs.RetryBudget())(f)
    budget = rs.RetryBudget()
    number = 100_000
    out = {}
    for name, stmt in (
        ("bare f(x)", lambda: f(1)),
        ("retry_on", lambda: plain(1)),
        ("retry_on(budget=...)", lambda: budgeted(1)),
        ("RetryBudget.deposit()", budget.deposit),
    ):
        out[name] = min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e9
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args()
    logging.getLogger("resilience").setLevel(logging.ERROR)  # thousands of retry WARNINGs are not the point

    rows = [{"spread_s": 10.0, "budget": None, "reached": reach(10.0, None)}]
    for spread in (1.0, 10.0, 50.0):
        budget = rs.RetryBudget(ratio=0.2, min_per_second=1.0, window=10.0)
        rows.append({"spread_s": spread, "budget": repr(budget), "reached": reach(spread, budget)})
    target_row = rows[2]
    passed = target_row["reached"] <= TARGET
    costs = cost(3 if args.quick else 7)
    if args.json:
        print(json.dumps({"rows": rows, "cost_ns": costs, "target": TARGET, "pass": passed}, indent=2))
    else:
        print(f"{CALLS} logical calls, attempts=3, dependency failing 100 % of the time (fake clock)")
        print(f"  {'calls spread over':<20}{'budget':<58}{'reached':>8}")
        for row in rows:
            print(f"  {row['spread_s']:>6g} s{'':<12}{row['budget'] or 'none':<58}{row['reached']:>8}")
        verdict = "PASS" if passed else "FAIL"
        print(f"\nTARGET 20 % budget over 10 s: {target_row['reached']} <= {TARGET} -> {verdict}\n")
        print("Cost per successful call (ns, best of samples)")
        for name, ns in costs.items():
            print(f"  {name:<24}{ns:>8.0f}")
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
