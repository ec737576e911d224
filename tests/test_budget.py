"""``rs.RetryBudget``: retries limited to a share of recent first attempts, shared by every call."""

# House style reads `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import resilience as rs


@pytest.fixture(autouse=True)
def _quiet_retries(caplog: pytest.LogCaptureFixture) -> None:
    """Thousands of retry WARNINGs are not what these tests look at."""
    caplog.set_level(logging.ERROR, logger="resilience")


class Dependency:
    """Fails every call with ConnectionError and counts how often it was reached."""

    __name__ = "dependency"

    def __init__(self) -> None:
        self.reached = 0

    def __call__(self) -> None:
        self.reached += 1
        raise ConnectionError("down")


def hammer(twin: Any, fn: Any, calls: int, step: float, clock: Any) -> list[BaseException]:
    """Make ``calls`` logical calls ``step`` fake seconds apart; returns the errors they raised."""
    errors: list[BaseException] = []
    if twin.is_async:

        async def main() -> None:
            for _ in range(calls):
                try:
                    await fn()
                except ConnectionError as exc:
                    errors.append(exc)
                clock.advance(step)

        asyncio.run(main())
        return errors
    for _ in range(calls):
        try:
            fn()
        except ConnectionError as exc:
            errors.append(exc)
        clock.advance(step)
    return errors


# --- acceptance ---------------------------------------------------------------------------


def test_budget_keeps_a_dead_dependency_near_its_normal_load(twin, clock):
    """1,000 calls (10 s) with attempts=3 against a dependency that always fails: at most 1,250 reach it."""
    dependency = Dependency()
    budget = rs.RetryBudget(ratio=0.2, min_per_second=1.0, window=10.0)
    fn = rs.retry_on(ConnectionError, attempts=3, wait_initial=0, budget=budget)(twin.wrap(dependency))
    errors = hammer(twin, fn, 1_000, 0.01, clock)
    assert 1_000 == len(errors)
    assert 1_000 < dependency.reached <= 1_250
    stats = budget.stats()
    assert dependency.reached - 1_000 == stats["allowed"]
    assert stats["denied"] > 0


def test_without_a_budget_every_attempt_reaches_the_dependency(twin, clock):
    """The same 1,000 calls without a budget reach the dependency 3,000 times."""
    dependency = Dependency()
    fn = rs.retry_on(ConnectionError, attempts=3, wait_initial=0)(twin.wrap(dependency))
    hammer(twin, fn, 1_000, 0.01, clock)
    assert 3_000 == dependency.reached


def test_budget_shared_by_retry_and_hedge_counts_each_call_once(twin, clock):
    """A budget shared by retry_on and hedge: 1,000 failing calls reach the dependency as with separate ones."""

    def reach(hedge_budget: bool) -> tuple[int, int]:
        with rs.testing.fake_clock() as own:  # both runs start at t=0
            budget = rs.RetryBudget(ratio=0.2, min_per_second=1.0, window=10.0)
            dependency = Dependency()
            policy = rs.Policy(
                retry=rs.retry_on(ConnectionError, attempts=3, wait_initial=0),
                budget=budget,
                hedge=rs.hedge(5.0, budget=budget if hedge_budget else None),
            )
            hammer(twin, policy(twin.wrap(dependency)), 1_000, 0.01, own)
            return dependency.reached, budget.stats()["first_attempts"]

    separate, shared = reach(False), reach(True)
    assert separate == shared  # was 1,512 reached vs 1,210: every retry counted as a first attempt
    assert 1_000 < shared[0] <= 1_250


def test_layers_on_one_budget_deposit_once_per_call(twin, clock):
    """retry_on(budget=b) around hedge(budget=b), or a hedge alone, deposits one first attempt per call."""
    budget = rs.RetryBudget()
    both = rs.retry_on(ConnectionError, budget=budget)(rs.hedge(5.0, budget=budget)(twin.wrap(lambda: "ok")))
    alone = rs.hedge(5.0, budget=budget)(twin.wrap(lambda: "ok"))
    for _ in range(3):
        assert "ok" == twin.run(both)
        assert "ok" == twin.run(alone)
    assert 6 == budget.stats()["first_attempts"]


def test_a_retry_inside_a_retry_on_the_same_budget_deposits_once(twin, clock):
    """Nested retry_on layers sharing a budget: the inner one's runs are attempts of the outer call, not new calls."""
    budget = rs.RetryBudget(ratio=1.0, min_per_second=0.0)  # one retry per call
    dependency = Dependency()
    inner = rs.retry_on(ConnectionError, attempts=2, wait_initial=0, budget=budget)(twin.wrap(dependency))
    outer = rs.retry_on(ConnectionError, attempts=2, wait_initial=0, budget=budget)(inner)
    hammer(twin, outer, 1, 0.0, clock)
    assert (2, 1, 1) == (dependency.reached, budget.stats()["first_attempts"], budget.stats()["denied"])


# --- what the budget allows -----------------------------------------------------------------


def test_ratio_of_first_attempts():
    """With no floor, 10 first attempts at ratio 0.2 allow exactly 2 retries."""
    budget = rs.RetryBudget(ratio=0.2, min_per_second=0.0)
    for _ in range(10):
        budget.deposit()
    assert [True, True, False] == [budget.withdraw() for _ in range(3)]
    assert (10, 2, 2, 1) == tuple(budget.stats()[k] for k in ("first_attempts", "retries", "allowed", "denied"))


def test_floor_allows_retries_without_traffic(clock):
    """min_per_second=1 over a 10 s window allows 10 retries with no first attempts at all."""
    budget = rs.RetryBudget(ratio=0.2, min_per_second=1.0, window=10.0)
    assert [True] * 10 + [False] == [budget.withdraw() for _ in range(11)]
    assert 0.0 == budget.balance


def test_old_traffic_ages_out_of_the_window(clock):
    """Deposits and retries older than the window no longer count."""
    budget = rs.RetryBudget(ratio=1.0, min_per_second=0.0, window=10.0)
    for _ in range(5):
        budget.deposit()
    assert 5.0 == budget.balance
    clock.advance(5.0)
    assert 5.0 == budget.balance
    clock.advance(6.0)
    assert 0.0 == budget.balance
    assert False is budget.withdraw()


def test_retries_age_out_too(clock):
    """Spent retries are given back once they leave the window."""
    budget = rs.RetryBudget(ratio=0.0, min_per_second=0.5, window=10.0)
    assert [True] * 5 + [False] == [budget.withdraw() for _ in range(6)]
    clock.advance(11.0)
    assert True is budget.withdraw()


def test_one_budget_is_shared_by_every_function_using_it(twin, clock):
    """Two functions on one budget draw on the same retries."""
    budget = rs.RetryBudget(ratio=0.0, min_per_second=0.1, window=10.0)  # one retry per window
    a, b = Dependency(), Dependency()
    fa = rs.retry_on(ConnectionError, attempts=3, wait_initial=0, budget=budget)(twin.wrap(a))
    fb = rs.retry_on(ConnectionError, attempts=3, wait_initial=0, budget=budget)(twin.wrap(b))
    hammer(twin, fa, 1, 0.0, clock)
    hammer(twin, fb, 1, 0.0, clock)
    assert (2, 1) == (a.reached, b.reached)


def test_denied_retry_surfaces_the_original_error_with_a_note(twin, clock):
    """A retry the budget denies is not made: the first error surfaces unchanged, noted, and is counted."""
    budget = rs.RetryBudget(ratio=0.0, min_per_second=0.0)
    dependency = Dependency()
    fn = rs.retry_on(ConnectionError, attempts=3, wait_initial=0, budget=budget)(twin.wrap(dependency))
    (error,) = hammer(twin, fn, 1, 0.0, clock)
    assert 1 == dependency.reached
    assert ["retry budget is spent"] == [n[n.index("retry budget") :][:21] for n in error.__notes__]
    assert "after 1 attempt(s)" in error.__notes__[0]
    assert 1 == budget.stats()["denied"]


def test_budget_is_not_spent_when_other_rules_stop_the_retry(twin, clock):
    """A retry stopped by the attempt limit never withdraws from the budget."""
    budget = rs.RetryBudget(ratio=0.0, min_per_second=1.0)
    fn = rs.retry_on(ConnectionError, attempts=1, budget=budget)(twin.wrap(Dependency()))
    hammer(twin, fn, 3, 0.0, clock)
    assert (0, 0) == (budget.stats()["allowed"], budget.stats()["denied"])


def test_successful_calls_deposit(twin, clock):
    """Every logical call counts as a first attempt, successful or not."""
    budget = rs.RetryBudget()
    fn = rs.retry_on(ConnectionError, budget=budget)(twin.wrap(lambda: "ok"))
    for _ in range(4):
        twin.run(fn)
    assert 4 == budget.stats()["first_attempts"]


def test_reset_forgets_everything(clock):
    """reset() clears the window and the counters."""
    budget = rs.RetryBudget(ratio=1.0, min_per_second=0.0)
    budget.deposit()
    budget.withdraw()
    budget.withdraw()
    budget.reset()
    assert {"first_attempts": 0, "retries": 0, "allowed": 0, "denied": 0} == {
        k: budget.stats()[k] for k in ("first_attempts", "retries", "allowed", "denied")
    }


def test_repr_is_readable():
    """The repr shows the three settings."""
    assert "RetryBudget(ratio=0.2, min_per_second=1, window=10)" == repr(rs.RetryBudget())


def test_retry_repr_shows_its_budget():
    """retry_on(..., budget=b) says so in its repr (and so in Policy.describe())."""
    layer = rs.retry_on(ConnectionError, budget=rs.RetryBudget(ratio=0.1))
    assert "retry_on(ConnectionError, attempts=3, budget=RetryBudget(ratio=0.1, min_per_second=1, window=10))" == (
        repr(layer)
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "parameter"),
    [
        ({"ratio": -0.1}, ValueError, "ratio"),
        ({"ratio": float("nan")}, ValueError, "ratio"),
        ({"ratio": "0.2"}, TypeError, "ratio"),
        ({"ratio": True}, TypeError, "ratio"),
        ({"min_per_second": -1}, ValueError, "min_per_second"),
        ({"min_per_second": None}, TypeError, "min_per_second"),
        ({"window": 0}, ValueError, "window"),
        ({"window": "10"}, TypeError, "window"),
    ],
)
def test_bad_configuration_is_rejected(kwargs: dict[str, Any], error: type, parameter: str):
    """Bad settings raise ValueError/TypeError naming the parameter."""
    with pytest.raises(error, match=parameter):
        rs.RetryBudget(**kwargs)


def test_retry_on_rejects_a_budget_of_the_wrong_type():
    """retry_on(budget=0.2) is a TypeError naming budget."""
    with pytest.raises(TypeError, match="budget"):
        rs.retry_on(ConnectionError, budget=0.2)  # type: ignore[arg-type]


def test_budget_benchmark_smoke():
    """``benchmarks/budget.py --quick --json`` runs and reports the reach counts (no timing asserted)."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "budget.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert 0 == done.returncode, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert 3_000 == result["rows"][0]["reached"]
    assert {"bare f(x)", "retry_on", "retry_on(budget=...)", "RetryBudget.deposit()"} == set(result["cost_ns"])
