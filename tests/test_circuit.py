"""``rs.circuit``: opening, half-open trials, what counts, late results, registry, listeners, storage."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import pybreaker
import pytest

import resilience as rs
from resilience.classify import IGNORED, Outcome, on_exception, on_result


class Boom(ConnectionError):
    """The dependency's failure in these tests."""


class Held:
    """A call kept inside the breaker until ``finish``: a worker thread for `def`, a task for `async def`."""

    def __init__(self, twin: Any) -> None:
        self.loop = asyncio.get_running_loop()
        self.entered = asyncio.Event()
        self.released: threading.Event | asyncio.Event = asyncio.Event() if twin.is_async else threading.Event()
        self.outcome: object = None
        self.future: asyncio.Future[Any] | None = None


class Dependency:
    """A function of the twin's flavour: ``fn(outcome)`` raises an exception instance or returns anything else.

    Given a :class:`Held`, it first waits inside the call until the test releases it.
    """

    def __init__(self, twin: Any, name: str = "dependency") -> None:
        self.calls = 0
        self.fn: Callable[..., Any]
        if twin.is_async:

            async def async_body(outcome: object = None) -> object:
                self.calls += 1
                await asyncio.sleep(0)
                if isinstance(outcome, Held):
                    outcome.entered.set()
                    await asyncio.wait_for(outcome.released.wait(), 5)  # type: ignore[union-attr]
                    outcome = outcome.outcome
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome

            self.fn = async_body
        else:

            def sync_body(outcome: object = None) -> object:
                self.calls += 1
                if isinstance(outcome, Held):
                    outcome.loop.call_soon_threadsafe(outcome.entered.set)
                    assert outcome.released.wait(5)  # type: ignore[call-arg]
                    outcome = outcome.outcome
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome

            self.fn = sync_body
        self.fn.__name__ = self.fn.__qualname__ = name


_held: list[Held] = []


async def call(twin: Any, fn: Callable[..., Any], outcome: object = None) -> Any:
    """One call that does not wait, from inside a scenario."""
    if twin.is_async:
        return await fn(outcome)
    return fn(outcome)


async def start(twin: Any, fn: Callable[..., Any]) -> Held:
    """Start a call and return once it runs inside the breaker (raises if the breaker rejects it)."""
    held = Held(twin)
    _held.append(held)
    if twin.is_async:
        held.future = asyncio.ensure_future(fn(held))
    else:
        held.future = held.loop.run_in_executor(None, fn, held)
    entered = asyncio.ensure_future(held.entered.wait())
    await asyncio.wait({held.future, entered}, return_when=asyncio.FIRST_COMPLETED)
    if not entered.done():
        entered.cancel()
        held.future.result()  # the rejection
    return held


async def finish(held: Held, outcome: object = "ok") -> Any:
    """Let a held call end with ``outcome`` and return what the caller gets."""
    held.outcome = outcome
    held.released.set()
    assert held.future is not None
    return await held.future


def scenario(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run an async scenario; calls it left held are released when it ends, so a failure cannot hang."""

    async def main() -> None:
        try:
            await body()
        finally:
            while _held:
                _held.pop().released.set()

    asyncio.run(main())


def cancellation(twin: Any) -> BaseException:
    """What interrupting a call raises through the breaker in each flavour."""
    return asyncio.CancelledError() if twin.is_async else KeyboardInterrupt()


def trip(twin: Any, guarded: Callable[..., Any], times: int) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            twin.run(guarded, Boom())


# 1. opening


def test_opens_after_fail_max_consecutive_failures(twin: Any, clock: Any) -> None:
    """The breaker stays closed for fail_max - 1 failures and opens on the fail_max-th."""
    guarded = rs.circuit("x", fail_max=3)(Dependency(twin).fn)
    breaker = rs.circuit.get("x")
    trip(twin, guarded, 2)
    assert ("closed", 2) == (breaker.state, breaker.fail_counter)
    trip(twin, guarded, 1)
    assert "open" == breaker.state


def test_tripping_failure_surfaces_as_itself(twin: Any, clock: Any) -> None:
    """The failure that opens the breaker reaches the caller as the same exception object."""
    guarded = rs.circuit("x", fail_max=1)(Dependency(twin).fn)
    boom = Boom("down")
    with pytest.raises(Boom) as excinfo:
        twin.run(guarded, boom)
    assert boom is excinfo.value
    assert "open" == rs.circuit.get("x").state


def test_open_breaker_rejects_with_exact_retry_after(twin: Any, clock: Any) -> None:
    """While open, calls get CircuitOpenError naming the breaker, with the exact time left on the clock."""
    dependency = Dependency(twin)
    guarded = rs.circuit("x", fail_max=2, reset_timeout=30)(dependency.fn)
    trip(twin, guarded, 2)
    with pytest.raises(rs.CircuitOpenError) as first:
        twin.run(guarded, "ok")
    clock.advance(10)
    with pytest.raises(rs.CircuitOpenError) as second:
        twin.run(guarded, "ok")
    assert ("x", 30.0) == (first.value.name, first.value.retry_after)
    assert ("x", 20.0) == (second.value.name, second.value.retry_after)
    assert 20.0 == rs.circuit.get("x").retry_after
    assert 2 == dependency.calls


def test_circuit_open_error_belongs_to_both_trees(twin: Any, clock: Any) -> None:
    """CircuitOpenError is a ResilienceError and a pybreaker.CircuitBreakerError."""
    guarded = rs.circuit("x", fail_max=1)(Dependency(twin).fn)
    trip(twin, guarded, 1)
    with pytest.raises(pybreaker.CircuitBreakerError) as excinfo:
        twin.run(guarded, "ok")
    assert isinstance(excinfo.value, rs.ResilienceError)
    assert isinstance(excinfo.value, rs.CircuitOpenError)


def test_success_between_failures_resets_the_count(twin: Any, clock: Any) -> None:
    """Only consecutive failures open the breaker: a success sets the count back to zero."""
    guarded = rs.circuit("x", fail_max=3)(Dependency(twin).fn)
    breaker = rs.circuit.get("x")
    trip(twin, guarded, 2)
    assert "ok" == twin.run(guarded, "ok")
    assert 0 == breaker.fail_counter
    trip(twin, guarded, 2)
    assert ("closed", 2) == (breaker.state, breaker.fail_counter)


# 2. half-open


def test_half_open_after_exactly_reset_timeout(twin: Any, clock: Any) -> None:
    """No trial before reset_timeout has passed; at reset_timeout a trial is admitted and closes on success."""
    dependency = Dependency(twin)
    guarded = rs.circuit("x", fail_max=1, reset_timeout=30)(dependency.fn)
    trip(twin, guarded, 1)
    clock.advance(29.5)
    with pytest.raises(rs.CircuitOpenError) as excinfo:
        twin.run(guarded, "ok")
    assert 0.5 == excinfo.value.retry_after
    clock.advance(0.5)
    assert "trial" == twin.run(guarded, "trial")
    assert ("closed", 0, 2) == (rs.circuit.get("x").state, rs.circuit.get("x").fail_counter, dependency.calls)


@pytest.mark.parametrize("trials", [1, 3])
def test_half_open_admits_exactly_half_open_calls_in_flight(twin: Any, clock: Any, trials: int) -> None:
    """With half_open_calls trials in flight, the next call is rejected without calling the function."""
    dependency = Dependency(twin)
    guarded = rs.circuit("x", fail_max=1, half_open_calls=trials)(dependency.fn)
    trip(twin, guarded, 1)
    clock.advance(30)

    async def body() -> None:
        held = [await start(twin, guarded) for _ in range(trials)]
        with pytest.raises(rs.CircuitOpenError) as excinfo:
            await call(twin, guarded, "extra")
        # every trial is in flight: a short suggested wait (1 s), never "retry now"
        assert ("x", 1.0) == (excinfo.value.name, excinfo.value.retry_after)
        assert 1 + trials == dependency.calls
        assert "half-open" == rs.circuit.get("x").state
        for one in held:
            assert "ok" == await finish(one)

    scenario(body)
    assert "closed" == rs.circuit.get("x").state


def test_half_open_closes_only_when_all_trials_succeed(twin: Any, clock: Any) -> None:
    """With two trials, the first success leaves it half-open and the second closes it."""
    guarded = rs.circuit("x", fail_max=1, half_open_calls=2)(Dependency(twin).fn)
    breaker = rs.circuit.get("x")
    trip(twin, guarded, 1)
    clock.advance(30)

    async def body() -> None:
        first, second = await start(twin, guarded), await start(twin, guarded)
        assert "ok" == await finish(first)
        assert "half-open" == breaker.state
        assert "ok" == await finish(second)
        assert ("closed", 0) == (breaker.state, breaker.fail_counter)

    scenario(body)


def test_reentrant_call_during_single_trial_is_rejected(twin: Any, clock: Any) -> None:
    """A call made from inside the only half-open trial is rejected; the trial then closes the breaker."""
    breaker_layer = rs.circuit("x", fail_max=1)
    inner_dependency = Dependency(twin, "inner")
    inner = breaker_layer(inner_dependency.fn)
    seen: list[object] = []
    if twin.is_async:

        async def outer_fn() -> str:
            try:
                await inner("nested")
            except rs.CircuitOpenError as exc:
                seen.append(exc.retry_after)
            return "outer"

    else:

        def outer_fn() -> str:
            try:
                inner("nested")
            except rs.CircuitOpenError as exc:
                seen.append(exc.retry_after)
            return "outer"

    outer = rs.circuit("x", fail_max=1)(outer_fn)
    trip(twin, inner, 1)
    clock.advance(30)
    assert "outer" == twin.run(outer)
    assert [1.0] == seen
    assert 1 == inner_dependency.calls
    assert "closed" == rs.circuit.get("x").state


def test_failed_trial_reopens_for_a_full_reset_timeout(twin: Any, clock: Any) -> None:
    """A failing trial surfaces as itself and re-opens the breaker for a fresh reset_timeout."""
    guarded = rs.circuit("x", fail_max=1, reset_timeout=30)(Dependency(twin).fn)
    trip(twin, guarded, 1)
    clock.advance(45)
    boom = Boom("still down")
    with pytest.raises(Boom) as raised:
        twin.run(guarded, boom)
    assert boom is raised.value
    with pytest.raises(rs.CircuitOpenError) as first:
        twin.run(guarded, "ok")
    clock.advance(10)
    with pytest.raises(rs.CircuitOpenError) as second:
        twin.run(guarded, "ok")
    assert (30.0, 20.0) == (first.value.retry_after, second.value.retry_after)
    assert "open" == rs.circuit.get("x").state


# 3. what counts


def test_on_types_count_and_other_exceptions_are_successes(twin: Any, clock: Any) -> None:
    """With on=ConnectionError, a ValueError surfaces but counts as a success and resets the count."""
    guarded = rs.circuit("x", fail_max=2, on=ConnectionError)(Dependency(twin).fn)
    breaker = rs.circuit.get("x")
    trip(twin, guarded, 1)
    with pytest.raises(ValueError):
        twin.run(guarded, ValueError("bad input"))
    assert ("closed", 0) == (breaker.state, breaker.fail_counter)
    trip(twin, guarded, 2)
    assert "open" == breaker.state


def test_on_predicate_selects_failures(twin: Any, clock: Any) -> None:
    """A predicate over the exception decides what counts."""
    guarded = rs.circuit("x", fail_max=1, on=lambda exc: "overloaded" in str(exc))(Dependency(twin).fn)
    with pytest.raises(RuntimeError):
        twin.run(guarded, RuntimeError("bad request"))
    assert "closed" == rs.circuit.get("x").state
    with pytest.raises(RuntimeError):
        twin.run(guarded, RuntimeError("overloaded"))
    assert "open" == rs.circuit.get("x").state


def test_on_classifier_counts_returned_values(twin: Any, clock: Any) -> None:
    """A result classifier makes a returned 503 a failure; the value is still returned."""
    guarded = rs.circuit("x", fail_max=2, on=on_result(lambda r: r == 503))(Dependency(twin).fn)
    assert 503 == twin.run(guarded, 503)
    assert 1 == rs.circuit.get("x").fail_counter
    assert 200 == twin.run(guarded, 200)
    assert 0 == rs.circuit.get("x").fail_counter
    assert [503, 503] == [twin.run(guarded, 503), twin.run(guarded, 503)]
    assert "open" == rs.circuit.get("x").state


def test_on_classifier_with_ignored_verdict_counts_as_neither(twin: Any, clock: Any) -> None:
    """An outcome a classifier marks ignored neither counts nor resets the count."""
    counts = on_exception(LookupError, verdict=IGNORED) | on_exception(Boom)
    guarded = rs.circuit("x", fail_max=2, on=counts)(Dependency(twin).fn)
    trip(twin, guarded, 1)
    with pytest.raises(KeyError):
        twin.run(guarded, KeyError("k"))
    assert 1 == rs.circuit.get("x").fail_counter
    trip(twin, guarded, 1)
    assert "open" == rs.circuit.get("x").state


def test_exclude_counts_as_neither_even_between_failures(twin: Any, clock: Any) -> None:
    """fail, excluded, fail with fail_max=2 opens the breaker; excluded errors alone never do."""
    guarded = rs.circuit("x", fail_max=2, exclude=KeyError)(Dependency(twin).fn)
    breaker = rs.circuit.get("x")
    for _ in range(3):
        with pytest.raises(KeyError):
            twin.run(guarded, KeyError("k"))
    assert ("closed", 0) == (breaker.state, breaker.fail_counter)
    trip(twin, guarded, 1)
    with pytest.raises(KeyError):
        twin.run(guarded, KeyError("k"))
    assert 1 == breaker.fail_counter
    trip(twin, guarded, 1)
    assert "open" == breaker.state


def test_exclude_wins_over_on(twin: Any, clock: Any) -> None:
    """An exception both counted by on= and excluded counts as neither."""
    guarded = rs.circuit("x", fail_max=1, on=LookupError, exclude=lambda exc: isinstance(exc, KeyError))(
        Dependency(twin).fn
    )
    with pytest.raises(KeyError):
        twin.run(guarded, KeyError("k"))
    assert "closed" == rs.circuit.get("x").state
    with pytest.raises(IndexError):
        twin.run(guarded, IndexError("i"))
    assert "open" == rs.circuit.get("x").state


def test_cancellation_is_no_failure(twin: Any, clock: Any) -> None:
    """CancelledError / KeyboardInterrupt neither count as failures nor reset the count."""
    guarded = rs.circuit("x", fail_max=2)(Dependency(twin).fn)
    breaker = rs.circuit.get("x")
    for _ in range(3):
        with pytest.raises(type(cancellation(twin))):
            twin.run(guarded, cancellation(twin))
    assert ("closed", 0) == (breaker.state, breaker.fail_counter)
    trip(twin, guarded, 1)
    with pytest.raises(type(cancellation(twin))):
        twin.run(guarded, cancellation(twin))
    assert 1 == breaker.fail_counter
    trip(twin, guarded, 1)
    assert "open" == breaker.state


def test_cancelled_half_open_trial_gives_its_slot_back(twin: Any, clock: Any) -> None:
    """An interrupted trial frees its slot: the next call is admitted as the trial and closes the breaker."""
    guarded = rs.circuit("x", fail_max=1)(Dependency(twin).fn)
    trip(twin, guarded, 1)
    clock.advance(30)

    async def body() -> None:
        if twin.is_async:
            held = await start(twin, guarded)
            assert held.future is not None
            held.future.cancel()
            with pytest.raises(asyncio.CancelledError):
                await held.future
        else:
            with pytest.raises(KeyboardInterrupt):
                guarded(KeyboardInterrupt())
        assert "half-open" == rs.circuit.get("x").state
        assert "ok" == await call(twin, guarded, "ok")

    scenario(body)
    assert "closed" == rs.circuit.get("x").state


def test_excluded_half_open_trial_gives_its_slot_back(twin: Any, clock: Any) -> None:
    """An excluded outcome of a trial neither closes nor re-opens, and frees the slot."""
    guarded = rs.circuit("x", fail_max=1, exclude=KeyError)(Dependency(twin).fn)
    trip(twin, guarded, 1)
    clock.advance(30)
    with pytest.raises(KeyError):
        twin.run(guarded, KeyError("k"))
    assert "half-open" == rs.circuit.get("x").state
    assert "ok" == twin.run(guarded, "ok")
    assert "closed" == rs.circuit.get("x").state


# 4. late results


@pytest.mark.parametrize("late", ["failure", "success"])
def test_late_result_of_call_admitted_while_closed_changes_nothing(twin: Any, clock: Any, late: str) -> None:
    """A call admitted before the breaker opened neither extends nor ends the open period when it finishes."""
    guarded = rs.circuit("x", fail_max=2, reset_timeout=30)(Dependency(twin).fn)
    breaker = rs.circuit.get("x")
    boom = Boom("late")

    async def body() -> None:
        slow = await start(twin, guarded)
        for _ in range(2):
            with pytest.raises(Boom):
                await call(twin, guarded, Boom())
        clock.advance(10)
        if late == "failure":
            with pytest.raises(Boom) as excinfo:
                await finish(slow, boom)
            assert boom is excinfo.value
        else:
            assert "ok" == await finish(slow, "ok")

    scenario(body)
    assert ("open", 20.0, 1) == (breaker.state, breaker.retry_after, breaker.stats()["opened"])


@pytest.mark.parametrize("late", ["failure", "success"])
def test_late_result_from_before_the_open_period_is_no_trial(twin: Any, clock: Any, late: str) -> None:
    """A call admitted while closed that finishes during the next half-open period neither closes nor re-opens it."""
    guarded = rs.circuit("x", fail_max=1, reset_timeout=30, half_open_calls=2)(Dependency(twin).fn)
    breaker = rs.circuit.get("x")

    async def body() -> None:
        slow = await start(twin, guarded)
        with pytest.raises(Boom):
            await call(twin, guarded, Boom())
        clock.advance(30)
        trial = await start(twin, guarded)
        if late == "failure":
            with pytest.raises(Boom):
                await finish(slow, Boom())
        else:
            assert "ok" == await finish(slow, "ok")
        assert "half-open" == breaker.state
        assert "ok" == await finish(trial, "ok")
        assert "half-open" == breaker.state  # one of the two trials still to come
        assert "ok" == await call(twin, guarded, "ok")

    scenario(body)
    assert ("closed", 1) == (breaker.state, breaker.stats()["opened"])


@pytest.mark.parametrize("late", ["failure", "success"])
def test_late_trial_result_after_reopen_changes_nothing(twin: Any, clock: Any, late: str) -> None:
    """A trial still in flight when another trial re-opened the breaker neither closes nor re-extends it."""
    guarded = rs.circuit("x", fail_max=1, reset_timeout=30, half_open_calls=2)(Dependency(twin).fn)
    breaker = rs.circuit.get("x")
    trip(twin, guarded, 1)
    clock.advance(30)

    async def body() -> None:
        slow = await start(twin, guarded)
        with pytest.raises(Boom):
            await call(twin, guarded, Boom())
        assert "open" == breaker.state
        clock.advance(5)
        if late == "failure":
            with pytest.raises(Boom):
                await finish(slow, Boom())
        else:
            assert "ok" == await finish(slow, "ok")

    scenario(body)
    assert ("open", 25.0, 2) == (breaker.state, breaker.retry_after, breaker.stats()["opened"])


# 5. shared by name


def test_functions_with_the_same_name_share_one_breaker(twin: Any, clock: Any) -> None:
    """Failures of two functions declared with the same name add up, and both are rejected once open."""
    first = rs.circuit("x", fail_max=2)(Dependency(twin, "first").fn)
    second = rs.circuit("x", fail_max=2)(Dependency(twin, "second").fn)
    trip(twin, first, 1)
    trip(twin, second, 1)
    for fn in (first, second):
        with pytest.raises(rs.CircuitOpenError):
            twin.run(fn, "ok")
    assert ["x"] == rs.circuit.names()


def test_registry_breaker_exposes_state_and_manual_control(twin: Any, clock: Any) -> None:
    """rs.circuit.get(name) shows state, fail_counter, retry_after, stats() and opens, closes, resets by hand."""
    layer = rs.circuit("x", fail_max=2, reset_timeout=30)
    guarded = layer(Dependency(twin).fn)
    breaker = rs.circuit.get("x")
    assert layer.breaker is breaker
    trip(twin, guarded, 1)
    assert ("closed", 1, 0.0) == (breaker.state, breaker.fail_counter, breaker.retry_after)
    breaker.open()
    clock.advance(5)
    with pytest.raises(rs.CircuitOpenError):
        twin.run(guarded, "ok")
    expected = {
        "name": "x",
        "state": "open",
        "fail_counter": 1,
        "fail_max": 2,
        "retry_after": 25.0,
        "rejected": 1,
        "opened": 1,
    }
    assert expected == breaker.stats()
    breaker.close()
    assert ("closed", 0, 0.0) == (breaker.state, breaker.fail_counter, breaker.retry_after)
    assert "ok" == twin.run(guarded, "ok")
    trip(twin, guarded, 1)
    breaker.reset()
    expected = {
        "name": "x",
        "state": "closed",
        "fail_counter": 0,
        "fail_max": 2,
        "retry_after": 0.0,
        "rejected": 0,
        "opened": 0,
    }
    assert expected == breaker.stats()


def test_same_declaration_twice_is_allowed(twin: Any, clock: Any) -> None:
    """Declaring a name again with the same configuration returns the same breaker."""
    first = rs.circuit("x", fail_max=2, reset_timeout=10, on=ConnectionError)
    second = rs.circuit("x", fail_max=2, reset_timeout=10.0, on=ConnectionError)
    assert first.breaker is second.breaker


@pytest.mark.parametrize(
    "other",
    [{"fail_max": 3}, {"reset_timeout": 5}, {"half_open_calls": 2}, {"on": TimeoutError}, {"exclude": KeyError}],
    ids=["fail_max", "reset_timeout", "half_open_calls", "on", "exclude"],
)
def test_second_declaration_with_other_config_raises(other: dict[str, Any]) -> None:
    """A second declaration of a name with a different configuration raises ValueError naming it."""
    rs.circuit("inventory", fail_max=2)
    with pytest.raises(ValueError, match="inventory"):
        rs.circuit("inventory", **{"fail_max": 2, **other})


def test_get_unknown_name_raises_key_error_naming_it() -> None:
    """rs.circuit.get of an undeclared name raises KeyError naming it."""
    with pytest.raises(KeyError, match="missing"):
        rs.circuit.get("missing")


def test_anonymous_breaker_is_private_and_named_after_the_function(twin: Any, clock: Any) -> None:
    """name=None gives each function its own unregistered breaker named module.qualname."""
    if twin.is_async:

        async def fetch_user(outcome: object = None) -> object:
            raise Boom()

        async def fetch_order(outcome: object = None) -> object:
            return "order"

    else:

        def fetch_user(outcome: object = None) -> object:
            raise Boom()

        def fetch_order(outcome: object = None) -> object:
            return "order"

    user_layer, order_layer = rs.circuit(fail_max=1), rs.circuit(fail_max=1)
    users, orders = user_layer(fetch_user), order_layer(fetch_order)
    trip(twin, users, 1)
    assert "order" == twin.run(orders)
    assert f"{__name__}.{fetch_user.__qualname__}" == user_layer.breaker.name
    assert f"{__name__}.{fetch_order.__qualname__}" == order_layer.breaker.name
    assert ("open", "closed") == (user_layer.breaker.state, order_layer.breaker.state)
    assert [] == rs.circuit.names()
    with pytest.raises(rs.CircuitOpenError) as excinfo:
        twin.run(users)
    assert user_layer.breaker.name == excinfo.value.name


# 6. listeners and logging


class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        self.events.append(("before_call", cb.name, args, kwargs))

    def success(self, cb: Any) -> None:
        self.events.append(("success", cb.name))

    def failure(self, cb: Any, exc: BaseException) -> None:
        self.events.append(("failure", cb.name, exc))

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        self.events.append(("state_change", old_state.name, new_state.name))


class Raising(pybreaker.CircuitBreakerListener):
    def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("listener before_call")

    def success(self, cb: Any) -> None:
        raise RuntimeError("listener success")

    def failure(self, cb: Any, exc: BaseException) -> None:
        raise RuntimeError("listener failure")

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        raise RuntimeError("listener state_change")


def test_listener_hears_calls_and_each_transition_once(twin: Any, clock: Any) -> None:
    """before_call/success/failure for admitted calls, state_change once per real transition with .name."""
    recorder = Recorder()
    guarded = rs.circuit("x", fail_max=2, listeners=[recorder])(Dependency(twin).fn)
    first, second, trial_boom = Boom("1"), Boom("2"), Boom("3")
    assert "ok" == twin.run(guarded, "ok")
    for boom in (first, second):
        with pytest.raises(Boom):
            twin.run(guarded, boom)
    for _ in range(2):
        with pytest.raises(rs.CircuitOpenError):
            twin.run(guarded, "rejected")
    clock.advance(30)
    with pytest.raises(Boom):
        twin.run(guarded, trial_boom)
    clock.advance(30)
    assert "ok" == twin.run(guarded, "ok")
    assert "ok" == twin.run(guarded, "ok")
    expected = [
        ("before_call", "x", ("ok",), {}),
        ("success", "x"),
        ("before_call", "x", (first,), {}),
        ("failure", "x", first),
        ("before_call", "x", (second,), {}),
        ("failure", "x", second),
        ("state_change", "closed", "open"),
        ("state_change", "open", "half-open"),
        ("before_call", "x", (trial_boom,), {}),
        ("failure", "x", trial_boom),
        ("state_change", "half-open", "open"),
        ("state_change", "open", "half-open"),
        ("before_call", "x", ("ok",), {}),
        ("success", "x"),
        ("state_change", "half-open", "closed"),
        ("before_call", "x", ("ok",), {}),
        ("success", "x"),
    ]
    assert expected == recorder.events


def test_listener_before_call_gets_keyword_arguments(twin: Any, clock: Any) -> None:
    """With a listener attached, a call with keyword arguments runs and before_call receives them."""
    recorder = Recorder()
    guarded = rs.circuit("x", listeners=[recorder])(Dependency(twin).fn)
    assert "ok" == twin.run(guarded, outcome="ok")
    assert [("before_call", "x", (), {"outcome": "ok"}), ("success", "x")] == recorder.events


@pytest.mark.parametrize("keyword", ["method", "args", "kwargs", "fn"])
def test_listener_before_call_gets_keywords_of_any_name(twin: Any, clock: Any, keyword: str) -> None:
    """A keyword argument named like a parameter of the breaker's own plumbing reaches the function and before_call."""
    recorder = Recorder()
    guarded = rs.circuit("x", listeners=[recorder])(twin.wrap(lambda **kwargs: kwargs))
    assert {keyword: "GET"} == twin.run(functools.partial(guarded, **{keyword: "GET"}))
    assert [("before_call", "x", (), {keyword: "GET"}), ("success", "x")] == recorder.events


def test_raising_listener_never_changes_the_outcome(twin: Any, clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Results, the failure's identity, opening, rejection and closing are as without the listener."""
    guarded = rs.circuit("x", fail_max=1, listeners=[Raising(), Recorder()])(Dependency(twin).fn)
    assert "ok" == twin.run(guarded, "ok")
    boom = Boom()
    with pytest.raises(Boom) as excinfo:
        twin.run(guarded, boom)
    assert boom is excinfo.value
    assert "open" == rs.circuit.get("x").state
    with pytest.raises(rs.CircuitOpenError):
        twin.run(guarded, "ok")
    clock.advance(30)
    assert "trial" == twin.run(guarded, "trial")
    assert "closed" == rs.circuit.get("x").state
    listener_errors = [r for r in caplog.records if r.name == "resilience" and r.exc_info]
    assert {"before_call", "success", "failure", "state_change"} == {
        str(r.exc_info[1]).removeprefix("listener ") for r in listener_errors if r.exc_info
    }


def test_transitions_log_on_the_resilience_logger(twin: Any, clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Opening logs a WARNING, half-opening and closing log INFO, on logger "resilience"."""
    caplog.set_level(logging.INFO, logger="resilience")
    guarded = rs.circuit("x", fail_max=1)(Dependency(twin).fn)
    trip(twin, guarded, 1)
    clock.advance(30)
    twin.run(guarded, "ok")
    expected = [
        (logging.WARNING, "circuit 'x': closed -> open"),
        (logging.INFO, "circuit 'x': open -> half-open"),
        (logging.INFO, "circuit 'x': half-open -> closed"),
    ]
    assert expected == [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "resilience"]


# 7. storage


def test_given_storage_holds_the_state(twin: Any, clock: Any) -> None:
    """A pybreaker memory storage passed as storage= holds the counter, the state and when it opened."""
    storage = pybreaker.CircuitMemoryStorage("closed")
    guarded = rs.circuit("x", fail_max=2, storage=storage)(Dependency(twin).fn)
    trip(twin, guarded, 1)
    assert ("closed", 1) == (storage.state, storage.counter)
    clock.advance(7)
    trip(twin, guarded, 1)
    assert "open" == storage.state
    assert datetime.fromtimestamp(clock.time(), UTC) == storage.opened_at
    clock.advance(30)
    twin.run(guarded, "ok")
    assert ("closed", 0) == (storage.state, storage.counter)


# 8. bad configuration


@pytest.mark.parametrize(
    ("kwargs", "error", "parameter"),
    [
        ({"fail_max": 0}, ValueError, "fail_max"),
        ({"fail_max": -1}, ValueError, "fail_max"),
        ({"fail_max": True}, ValueError, "fail_max"),
        ({"fail_max": 1.5}, ValueError, "fail_max"),
        ({"reset_timeout": 0}, ValueError, "reset_timeout"),
        ({"reset_timeout": -1.0}, ValueError, "reset_timeout"),
        ({"reset_timeout": math.nan}, ValueError, "reset_timeout"),
        ({"reset_timeout": math.inf}, ValueError, "reset_timeout"),
        ({"half_open_calls": 0}, ValueError, "half_open_calls"),
        ({"name": ""}, ValueError, "name"),
        ({"name": 5}, TypeError, "name"),
        ({"listeners": [object()]}, TypeError, "listeners"),
        ({"storage": "memory"}, TypeError, "storage"),
        ({"storage": pybreaker.CircuitBreaker()}, TypeError, "storage"),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else "",
)
def test_bad_configuration_raises_naming_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], parameter: str
) -> None:
    """Misconfiguration fails when the decorator is built, with an error naming the parameter."""
    with pytest.raises(error, match=parameter):
        rs.circuit(**kwargs)
    assert [] == rs.circuit.names()


def test_listener_class_instead_of_instance_is_rejected() -> None:
    """Passing a listener class (not an instance) fails at decoration time, naming listeners."""
    with pytest.raises(TypeError, match="listeners"):
        rs.circuit("x", listeners=[pybreaker.CircuitBreakerListener])


def test_breaker_opened_elsewhere_counts_its_open_time_from_shared_storage(twin: Any, clock: Any) -> None:
    """A breaker whose storage another process opened rejects until that opening's reset_timeout ends."""
    import datetime

    storage = pybreaker.CircuitMemoryStorage("open")
    storage.opened_at = datetime.datetime.fromtimestamp(clock.time() - 10, datetime.UTC)
    guarded = rs.circuit("shared", reset_timeout=30, storage=storage)(twin.wrap(lambda: "ok"))
    with pytest.raises(rs.CircuitOpenError) as excinfo:
        twin.run(guarded)
    assert 20.0 == pytest.approx(excinfo.value.retry_after)
    clock.advance(20)
    assert "ok" == twin.run(guarded)
    assert "closed" == rs.circuit.get("shared").state


# Regressions found in review


def test_hung_half_open_trials_expire_after_reset_timeout(twin: Any, clock: Any) -> None:
    """A trial still in flight after reset_timeout frees its slot; its late success changes nothing."""
    dependency = Dependency(twin)
    guarded = rs.circuit("x", fail_max=1, reset_timeout=30)(dependency.fn)
    trip(twin, guarded, 1)
    clock.advance(30)

    async def body() -> None:
        hung = await start(twin, guarded)
        with pytest.raises(rs.CircuitOpenError):
            await call(twin, guarded, "extra")
        clock.advance(30)
        assert "fresh" == await call(twin, guarded, "fresh")
        assert "closed" == rs.circuit.get("x").state
        assert "ok" == await finish(hung)
        assert "closed" == rs.circuit.get("x").state

    scenario(body)


def test_exclude_classifying_results_keeps_the_failure_count(twin: Any, clock: Any) -> None:
    """An exclude= over returned values counts them as neither, even with on=None."""
    dependency = Dependency(twin)
    guarded = rs.circuit("x", fail_max=2, exclude=on_result(lambda r: r == 404))(dependency.fn)
    trip(twin, guarded, 1)
    assert 404 == twin.run(guarded, 404)
    trip(twin, guarded, 1)
    assert "open" == rs.circuit.get("x").state


def test_call_admitted_just_before_a_transition_is_not_taken_for_a_trial(twin: Any, clock: Any) -> None:
    """A call that read "closed" while the breaker moved on to half-open does not close it on success."""
    fired: list[bool] = []

    class RacingStorage(pybreaker.CircuitMemoryStorage):
        @property  # type: ignore[override]
        def state(self) -> str:
            value = super().state
            if value == "closed" and not fired and breaker_ref:
                fired.append(True)  # between this read and the call, the breaker opens and half-opens
                breaker_ref[0].open()
                clock.advance(30)
                breaker_ref[0].acquire()  # the real trial takes the only slot
            return value

        @state.setter
        def state(self, value: str) -> None:
            pybreaker.CircuitMemoryStorage.state.fset(self, value)  # type: ignore[attr-defined]

    breaker_ref: list[Any] = []
    layer = rs.circuit("x", storage=RacingStorage("closed"))
    breaker_ref.append(layer.breaker)
    assert "ok" == twin.run(layer(Dependency(twin).fn), "ok")
    assert "half-open" == layer.breaker.state


def test_reset_resets_breakers_that_decorated_functions_hold(twin: Any) -> None:
    """rs.testing.reset() closes a module-level function's breaker in place; get() still finds it."""
    guarded = rs.circuit("svc", fail_max=1)(Dependency(twin).fn)
    trip(twin, guarded, 1)
    rs.testing.reset()
    assert "ok" == twin.run(guarded, "ok")
    assert "closed" == rs.circuit.get("svc").state
    again = rs.circuit("svc", fail_max=1)
    assert rs.circuit.get("svc") is again.breaker


def test_retry_on_pybreaker_error_retries_an_open_circuit(twin: Any, clock: Any) -> None:
    """Naming pybreaker.CircuitBreakerError in retry_on asks for open circuits to be retried after retry_after."""
    dependency = Dependency(twin)
    guarded = rs.retry_on(pybreaker.CircuitBreakerError, attempts=2)(
        rs.circuit("x", fail_max=1, reset_timeout=5)(dependency.fn)
    )
    breaker = rs.circuit.get("x")
    breaker.open()
    assert "ok" == twin.run(guarded, "ok")
    assert [5.0] == clock.sleeps


def test_trial_admitted_late_in_half_open_is_not_presumed_hung(clock: Any) -> None:
    """A trial younger than reset_timeout keeps its slot, and its success counts with the earlier ones."""
    breaker = rs.circuit("late-trial", fail_max=1, reset_timeout=10, half_open_calls=2).breaker
    breaker.open()
    clock.advance(10)
    breaker.succeeded(breaker.acquire())  # trial 1 succeeds at once
    clock.advance(9.9)
    second = breaker.acquire()  # trial 2 starts 9.9 s into half-open
    clock.advance(0.1)
    with pytest.raises(rs.CircuitOpenError):
        breaker.acquire()
    breaker.succeeded(second)
    assert "closed" == breaker.state


def test_hung_trial_frees_its_slot_and_finished_trials_still_count(clock: Any) -> None:
    """After reset_timeout the hung trial's slot is reused; the finished trial's success is kept."""
    breaker = rs.circuit("hung-trial", fail_max=1, reset_timeout=10, half_open_calls=2).breaker
    breaker.open()
    clock.advance(10)
    breaker.succeeded(breaker.acquire())
    hung = breaker.acquire()
    clock.advance(10)
    breaker.succeeded(breaker.acquire())  # the replacement trial: two successes close it
    assert "closed" == breaker.state
    breaker.record(hung, Outcome(None, Boom()))
    assert ("closed", 0) == (breaker.state, breaker.fail_counter)


def test_pybreaker_storage_reopened_elsewhere_uses_the_storage_opening_time(clock: Any) -> None:
    """An opening written by another process wins over this process's own earlier opening."""
    shared = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
    mine = rs.circuit("mine", fail_max=1, reset_timeout=30, storage=shared).breaker
    theirs = rs.circuit("theirs", fail_max=1, reset_timeout=30, storage=shared).breaker
    mine.open()
    theirs.close()
    clock.advance(100)
    theirs.open()
    with pytest.raises(rs.CircuitOpenError) as excinfo:
        mine.acquire()
    assert 30.0 == pytest.approx(excinfo.value.retry_after)
