"""``rs.Policy``: the layers of one dependency as a frozen object, applied in the canonical order."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from helpers import blocked_call

import resilience as rs
from resilience import _clock


def add(a: int, b: int = 0) -> int:
    return a + b


async def add_async(a: int, b: int = 0) -> int:
    return a + b


def full_policy() -> rs.Policy:
    """A policy with every field set."""
    return rs.Policy(
        timeout=10.0,
        attempt_timeout=4.0,
        retry=rs.retry_on(ConnectionError, attempts=3),
        circuit=rs.circuit("users", fail_max=5),
        monitor="users",
        fallback=rs.fallback("cached"),
    )


def test_is_frozen() -> None:
    """A policy cannot be changed in place."""
    policy = full_policy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.timeout = 5.0  # type: ignore[misc]


def test_describe_shows_canonical_order() -> None:
    """monitored -> fallback -> total timeout -> retry -> circuit -> attempt timeout -> fn."""
    assert (
        "monitored('users') -> fallback('cached') -> timeout(10 s total, mode='cooperative') -> "
        "retry_on(ConnectionError, attempts=3) -> circuit('users', fail_max=5) -> "
        "timeout(4 s attempt, mode='thread') -> fn"
    ) == full_policy().describe()


def test_layers_in_canonical_order() -> None:
    """``layers`` lists the layer objects outermost first, reusing the ones passed in."""
    retry = rs.retry_on(ConnectionError)
    breaker = rs.circuit("users")
    fallback = rs.fallback(0)
    policy = rs.Policy(timeout=10.0, attempt_timeout=4.0, retry=retry, circuit=breaker, monitor="u", fallback=fallback)
    layers = policy.layers
    timeout_layer = type(rs.timeout(1))
    assert [rs.monitor.Monitored, type(fallback), timeout_layer, type(retry), type(breaker), timeout_layer] == [
        type(layer) for layer in layers
    ]
    assert (fallback, retry, breaker) == (layers[1], layers[3], layers[4])
    assert ("total", "attempt") == (layers[2].kind, layers[5].kind)  # type: ignore[attr-defined]


def test_empty_policy_is_transparent(twin: Any) -> None:
    """A policy without fields calls the function as is."""
    policy = rs.Policy()
    assert "fn" == policy.describe()
    assert 3 == twin.run(policy(twin.wrap(add)), 1, 2)


def test_breaker_sees_each_attempt(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Three failing attempts count three failures on the breaker (it sits inside the retry)."""
    policy = rs.Policy(retry=rs.retry_on(ConnectionError, attempts=3), circuit=rs.circuit("users", fail_max=5))
    fn = policy(scripted(twin, [ConnectionError("down")] * 3))
    with pytest.raises(ConnectionError):
        twin.run(fn)
    assert 3 == rs.circuit.get("users").fail_counter


def test_total_timeout_bounds_all_retries(twin: Any, clock: rs.testing.FakeClock) -> None:
    """timeout=10 with attempt_timeout=4 and a 5 s body: DeadlineExceeded around 10 s, never a 4th attempt."""
    starts: list[float] = []
    sleeper = twin.sleeping(5, "late")

    def record_start() -> None:
        starts.append(_clock.monotonic() - begin)

    if twin.is_async:

        async def body() -> str:
            record_start()
            return await sleeper()  # type: ignore[no-any-return]

    else:

        def body() -> str:
            record_start()
            return sleeper()  # type: ignore[no-any-return]

    policy = rs.Policy(
        timeout=10.0, attempt_timeout=4.0, retry=rs.retry_on(TimeoutError, attempts=10, wait_initial=0.0)
    )
    fn = policy(body)
    begin = clock.monotonic()
    with pytest.raises(rs.DeadlineExceeded):
        twin.run(fn)
    elapsed = clock.monotonic() - begin
    assert pytest.approx(10.0, abs=1.0) == elapsed
    assert 1 < len(starts) < 4
    assert all(start < 10.0 for start in starts)


def test_works_as_decorator(twin: Any) -> None:
    """Decorating with a policy keeps the flavour and counts under its monitor name."""
    fn = full_policy()(add_async if twin.is_async else add)
    assert 5 == twin.run(fn, 2, b=3)
    assert 1 == rs.monitor.snapshot("users")["ok"]


def test_call_runs_a_sync_function() -> None:
    """``policy.call(fn, *args, **kwargs)`` runs ``fn`` through every layer."""
    assert 5 == full_policy().call(add, 2, b=3)
    assert 1 == rs.monitor.snapshot("users")["ok"]


def test_acall_awaits_an_async_function() -> None:
    """``await policy.acall(fn, *args, **kwargs)`` awaits ``fn`` through every layer."""
    assert 5 == asyncio.run(full_policy().acall(add_async, 2, b=3))
    assert 1 == rs.monitor.snapshot("users")["ok"]


def test_call_applies_fallback_and_monitor() -> None:
    """``policy.call`` answers with the fallback and the monitor records it."""

    def down() -> str:
        raise ValueError("bad")

    assert "cached" == full_policy().call(down)
    assert {"fallback": 1} == rs.monitor.snapshot("users")["outcomes"]


def test_replace_derives_a_variant() -> None:
    """``dataclasses.replace(policy, timeout=5.0)`` gives a new policy; the original is unchanged."""
    policy = full_policy()
    shorter = dataclasses.replace(policy, timeout=5.0)
    assert (10.0, 5.0) == (policy.timeout, shorter.timeout)
    assert "timeout(5 s total, mode='cooperative')" in shorter.describe()
    assert "timeout(10 s total, mode='cooperative')" in policy.describe()
    assert (policy.retry, policy.circuit, policy.fallback) == (shorter.retry, shorter.circuit, shorter.fallback)


def test_repr_is_readable() -> None:
    """The repr names the fields, not the private layer tuple."""
    text = repr(rs.Policy(timeout=10.0, monitor="users"))
    assert text.startswith("Policy(timeout=10.0, attempt_timeout=None, retry=None, circuit=None, monitor='users'")
    assert "_layers" not in text


# One scripted dependency: what each successive attempt does.
SCRIPT: list[Any] = [
    "first",  # ok at once
    ConnectionError("blip"),
    "second",  # ok after one retry
    ConnectionError("a"),
    ConnectionError("b"),
    ConnectionError("c"),  # retries exhausted: the fallback answers
    ValueError("bad input"),  # not retried, not answered: surfaces
]


def scripted(twin: Any, script: Iterable[Any]) -> Callable[..., Any]:
    steps = iter(script)

    def body() -> Any:
        step = next(steps)
        if isinstance(step, Exception):
            raise step
        return step

    return twin.wrap(body)


def run_script(twin: Any, fn: Callable[..., Any], calls: int) -> list[str]:
    results = []
    for _ in range(calls):
        try:
            results.append(repr(twin.run(fn)))
        except Exception as exc:
            results.append(type(exc).__name__)
    return results


def comparable(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without what names it (its name, and the message of its last failure)."""
    return {key: value for key, value in snapshot.items() if key not in ("name", "last_failure")}


def test_hand_stacking_in_canonical_order_matches_policy(twin: Any, clock: rs.testing.FakeClock) -> None:
    """The same decorators stacked by hand in the canonical order give the policy's results and counters."""

    def retry() -> Any:
        return rs.retry_on(ConnectionError, attempts=3, wait_initial=0.5, jitter=False)

    def fallback() -> Any:
        return rs.fallback("cached", on=ConnectionError)

    policy = rs.Policy(
        timeout=30.0,
        attempt_timeout=5.0,
        retry=retry(),
        circuit=rs.circuit("policy", fail_max=10),
        monitor="policy",
        fallback=fallback(),
    )
    by_policy = policy(scripted(twin, SCRIPT))

    @rs.monitored("hand")
    @fallback()
    @rs.timeout(30, mode="cooperative")
    @retry()
    @rs.circuit("hand", fail_max=10)
    @rs.timeout(5)
    def by_hand_sync() -> Any:
        return inner()

    @rs.monitored("hand")
    @fallback()
    @rs.timeout(30, mode="cooperative")
    @retry()
    @rs.circuit("hand", fail_max=10)
    @rs.timeout(5)
    async def by_hand_async() -> Any:
        return await inner()

    inner = scripted(twin, SCRIPT)
    by_hand = by_hand_async if twin.is_async else by_hand_sync

    policy_results = run_script(twin, by_policy, 4)
    hand_results = run_script(twin, by_hand, 4)
    assert ["'first'", "'second'", "'cached'", "ValueError"] == policy_results
    assert policy_results == hand_results
    assert comparable(rs.monitor.snapshot("policy")) == comparable(rs.monitor.snapshot("hand"))
    policy_breaker = rs.circuit.get("policy").stats()
    hand_breaker = rs.circuit.get("hand").stats()
    assert 4 == policy_breaker["fail_counter"]  # three connection errors and the ValueError, in a row
    assert {**policy_breaker, "name": "hand"} == hand_breaker


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", "10"),
        ("attempt_timeout", [4.0]),
        ("retry", ConnectionError),
        ("circuit", "users"),
        ("monitor", 42),
        ("fallback", "cached"),
    ],
)
def test_bad_field_type_rejected(field: str, value: Any) -> None:
    """A field of the wrong type is a TypeError naming the field."""
    with pytest.raises(TypeError, match=field):
        rs.Policy(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", 0), ("timeout", -1.0), ("attempt_timeout", 0.0), ("timeout", float("inf"))],
)
def test_non_positive_timeout_rejected(field: str, value: float) -> None:
    """A timeout that is not a finite number > 0 is a ValueError naming the field."""
    with pytest.raises(ValueError, match=field):
        rs.Policy(**{field: value})


# Regressions found in review


def test_call_with_an_async_function_points_to_acall() -> None:
    """policy.call(async_fn) is a TypeError pointing to acall, and acall(sync_fn) points to call."""
    policy = rs.Policy(retry=rs.retry_on(ConnectionError))

    async def async_fn() -> int:
        return 1

    def sync_fn() -> int:
        return 1

    with pytest.raises(TypeError, match="acall"):
        policy.call(async_fn)
    with pytest.raises(TypeError, match=r"policy\.call"):
        asyncio.run(policy.acall(sync_fn))


def test_total_timeout_is_enforced_when_the_attempt_timeout_is_cooperative(twin: Any, clock: Any) -> None:
    """With a cooperative attempt timeout, the Policy's total timeout still interrupts the call."""
    policy = rs.Policy(timeout=1.0, attempt_timeout=rs.timeout(5, mode="cooperative"))
    assert "mode='thread'" in policy.describe().split(" -> ")[0]
    with pytest.raises(rs.DeadlineExceeded):
        twin.run(policy(twin.sleeping(3, "late")))


# Overload protection: bulkhead, rate limit, retry budget and hedge in the canonical order


def overload_policy() -> rs.Policy:
    """A policy with every field set, overload protection included."""
    return dataclasses.replace(
        full_policy(),
        bulkhead=rs.bulkhead(4, name="users"),
        rate_limit=rs.rate_limit(10, name="users"),
        budget=rs.RetryBudget(ratio=0.2),
        hedge=rs.hedge(0.5),
    )


def test_describe_shows_the_full_canonical_order() -> None:
    """monitored, fallback, total, retry (+budget), hedge, rate_limit, bulkhead, circuit, attempt timeout."""
    assert (
        "monitored('users') -> fallback('cached') -> timeout(10 s total, mode='cooperative') -> "
        "retry_on(ConnectionError, attempts=3, budget=RetryBudget(ratio=0.2, min_per_second=1, window=10)) -> "
        "hedge(delay=0.5 s, max_extra=1) -> rate_limit('users', 10/1 s, burst=10, wait=False) -> "
        "bulkhead('users', max_concurrent=4) -> circuit('users', fail_max=5) -> "
        "timeout(4 s attempt, mode='thread') -> fn"
    ) == overload_policy().describe()


def test_full_policy_runs(twin: Any) -> None:
    """A call goes through every layer and is counted by each."""
    rs.bulkhead.clear()
    rs.rate_limit.clear()
    policy = overload_policy()
    assert 5 == twin.run(policy(twin.wrap(add)), 2, 3)
    assert (1, 1, 1) == (
        rs.bulkhead.get("users").stats()["admitted"],
        rs.rate_limit.get("users").stats()["admitted"],
        policy.budget.stats()["first_attempts"],  # type: ignore[union-attr]
    )


def test_budget_applies_to_the_policy_retry(twin: Any, clock: rs.testing.FakeClock) -> None:
    """budget= limits the retry's retries: with no retries allowed, one attempt reaches the dependency."""
    budget = rs.RetryBudget(ratio=0.0, min_per_second=0.0)
    policy = rs.Policy(retry=rs.retry_on(ConnectionError, attempts=3, wait_initial=0), budget=budget)
    fn = policy(scripted(twin, [ConnectionError("a"), ConnectionError("b")]))
    with pytest.raises(ConnectionError, match="a") as excinfo:
        twin.run(fn)
    assert "retry budget is spent" in excinfo.value.__notes__[0]
    assert (1, 1) == (budget.stats()["first_attempts"], budget.stats()["denied"])


def test_budget_without_retry_is_an_error() -> None:
    """budget= without retry= is a ValueError naming both."""
    with pytest.raises(ValueError, match=r"budget=.*retry="):
        rs.Policy(budget=rs.RetryBudget())


def test_two_different_budgets_are_an_error() -> None:
    """A retry_on with a budget of its own and another budget= disagree: ValueError."""
    retry = rs.retry_on(ConnectionError, budget=rs.RetryBudget())
    with pytest.raises(ValueError, match="budget"):
        rs.Policy(retry=retry, budget=rs.RetryBudget())
    budget = rs.RetryBudget()
    same = rs.Policy(retry=rs.retry_on(ConnectionError, budget=budget), budget=budget)
    assert "budget=RetryBudget" in same.describe()


@pytest.mark.parametrize(
    ("field", "value"),
    [("bulkhead", 4), ("rate_limit", 10.0), ("budget", 0.2), ("hedge", 0.05)],
)
def test_bad_overload_field_type_rejected(field: str, value: Any) -> None:
    """A new field of the wrong type is a TypeError naming the field."""
    with pytest.raises(TypeError, match=field):
        rs.Policy(**{field: value})


def test_every_retry_takes_a_rate_limit_token(twin: Any, clock: rs.testing.FakeClock) -> None:
    """Retries sit outside the rate limit: with 2 tokens, the third attempt is refused and not retried."""
    rs.rate_limit.clear()
    reached: list[int] = []

    def down() -> None:
        reached.append(1)
        raise ConnectionError("down")

    policy = rs.Policy(
        retry=rs.retry_on(ConnectionError, attempts=3, wait_initial=0),
        rate_limit=rs.rate_limit(1, per=60.0, burst=2, name="api"),
    )
    with pytest.raises(rs.RateLimited):
        twin.run(policy(twin.wrap(down)))
    assert 2 == len(reached)


def test_local_rejections_never_count_on_the_breaker(twin: Any, clock: rs.testing.FakeClock) -> None:
    """RateLimited and BulkheadFull happen outside the breaker: a fail_max=1 breaker stays closed."""
    rs.rate_limit.clear()
    rs.bulkhead.clear()
    policy = rs.Policy(
        circuit=rs.circuit("api", fail_max=1),
        rate_limit=rs.rate_limit(1, per=60.0, burst=1, name="api"),
    )
    fn = policy(twin.wrap(add))
    assert 1 == twin.run(fn, 1)
    with pytest.raises(rs.RateLimited):
        twin.run(fn, 1)
    bulkheaded = rs.Policy(circuit=rs.circuit("api", fail_max=1), bulkhead=rs.bulkhead(1, name="api"))
    rs.bulkhead.get("api").acquire_sync()
    with pytest.raises(rs.BulkheadFull):
        twin.run(bulkheaded(twin.wrap(add)), 1)
    rs.bulkhead.get("api").release()
    assert ("closed", 0) == (rs.circuit.get("api").state, rs.circuit.get("api").fail_counter)


def test_total_timeout_bounds_the_wait_for_a_token(twin: Any, clock: rs.testing.FakeClock) -> None:
    """With 1 s left in the total timeout, a token due in 10 s is refused at once, without waiting."""
    rs.rate_limit.clear()
    policy = rs.Policy(timeout=1.0, rate_limit=rs.rate_limit(1, per=10.0, burst=1, wait=True, name="api"))
    fn = policy(twin.wrap(add))
    assert 1 == twin.run(fn, 1)
    with pytest.raises(rs.RateLimited, match="deadline"):
        twin.run(fn, 1)
    assert [] == clock.sleeps


def test_hedged_attempt_needs_a_bulkhead_slot(clock: rs.testing.FakeClock) -> None:
    """The hedge sits outside the bulkhead: with one slot, the extra attempt is refused and the first one answers."""
    rs.bulkhead.clear()
    policy = rs.Policy(hedge=rs.hedge(1.0), bulkhead=rs.bulkhead(1, name="llm"))
    assert ("attempt 1", 1) == asyncio.run(blocked_call(policy, clock, 1.0))
    assert (1, 1) == (rs.bulkhead.get("llm").stats()["admitted"], rs.bulkhead.get("llm").stats()["rejected"])
