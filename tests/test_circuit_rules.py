"""``rs.circuit`` trip rules, half-open verdicts, growing open time and manual states, on a fake clock."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pybreaker
import pytest

import resilience as rs
from resilience import _clock
from resilience._circuit_rules import BUCKETS, BreakerConfig, CountWindow, TimeWindow


class Boom(ConnectionError):
    """The dependency's failure in these tests."""


OK, FAIL = "ok", Boom("down")


def dependency(twin: Any) -> Callable[..., Any]:
    """A function of the twin's flavour: ``fn(outcome, seconds=0)`` takes ``seconds`` on the
    resilience clock, then raises ``outcome`` if it is an exception, else returns it."""
    if twin.is_async:

        async def async_dependency(outcome: object = OK, seconds: float = 0.0) -> object:
            await _clock.current.asleep(seconds)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome

        return async_dependency

    def sync_dependency(outcome: object = OK, seconds: float = 0.0) -> object:
        _clock.current.sleep(seconds)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return sync_dependency


def outcomes(twin: Any, guarded: Callable[..., Any], *sequence: object, seconds: float = 0.0) -> list[str]:
    """Call ``guarded`` once per outcome; returns "ok", "failed" or "rejected" for each."""
    seen = []
    for outcome in sequence:
        try:
            twin.run(guarded, outcome, seconds)
        except rs.CircuitOpenError:
            seen.append("rejected")
        except Exception:
            seen.append("failed")
        else:
            seen.append("ok")
    return seen


class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        self.changes.append((old_state.name, new_state.name))


# 1. failure rate, count window


def test_failure_rate_over_count_window_opens_at_the_threshold(twin: Any, clock: Any) -> None:
    """With window_calls=4 and min_calls=4, nothing is judged before 4 calls; 2 failures of 4 reach 0.5 and open."""
    guarded = rs.circuit("x", failure_rate=0.5, window_calls=4, min_calls=4)(dependency(twin))
    breaker = rs.circuit.get("x")
    assert ["failed", "failed", "ok"] == outcomes(twin, guarded, FAIL, FAIL, OK)
    assert "closed" == breaker.state  # 2 of 3 failed, but 3 < min_calls
    assert ["ok"] == outcomes(twin, guarded, OK)
    assert "open" == breaker.state  # 2 of 4: the threshold is >=
    assert ["rejected"] == outcomes(twin, guarded, OK)


def test_count_window_keeps_only_the_last_calls(twin: Any, clock: Any) -> None:
    """The oldest outcome leaves a count window when a new one arrives; 3 failures among the last 4 open at 0.75."""
    guarded = rs.circuit("x", failure_rate=0.75, window_calls=4, min_calls=4)(dependency(twin))
    breaker = rs.circuit.get("x")
    outcomes(twin, guarded, FAIL, FAIL, OK, OK, OK)  # the last 4: F O O O
    assert (4, 1) == (breaker.stats()["window"]["calls"], breaker.stats()["window"]["failures"])
    outcomes(twin, guarded, FAIL, FAIL)  # O O F F
    assert "closed" == breaker.state
    outcomes(twin, guarded, FAIL)  # O F F F
    assert "open" == breaker.state


def test_consecutive_rule_is_off_by_default_with_a_rate_rule(twin: Any, clock: Any) -> None:
    """With failure_rate and no fail_max, 9 straight failures stay below min_calls=10 and do not open."""
    guarded = rs.circuit("x", failure_rate=0.5)(dependency(twin))
    outcomes(twin, guarded, *[FAIL] * 9)
    assert ("closed", 9, None) == (
        rs.circuit.get("x").state,
        rs.circuit.get("x").fail_counter,
        rs.circuit.get("x").fail_max,
    )
    outcomes(twin, guarded, FAIL)
    assert "open" == rs.circuit.get("x").state


def test_fail_max_and_failure_rate_together_open_on_whichever_comes_first(twin: Any, clock: Any) -> None:
    """fail_max=3 with failure_rate=0.5 and min_calls=10 opens on the third consecutive failure."""
    guarded = rs.circuit("x", fail_max=3, failure_rate=0.5)(dependency(twin))
    assert ["failed", "failed", "failed", "rejected"] == outcomes(twin, guarded, FAIL, FAIL, FAIL, OK)


# 2. failure rate, time window


@pytest.mark.parametrize(("later", "expected"), [(9.5, "open"), (10.0, "closed")])
def test_time_window_forgets_outcomes_older_than_the_window(twin: Any, clock: Any, later: float, expected: str) -> None:
    """A failure 9.5 s ago still counts in a 10 s window (20 buckets of 0.5 s); 10 s ago it no longer does."""
    guarded = rs.circuit("x", failure_rate=0.5, window=10, min_calls=2)(dependency(twin))
    outcomes(twin, guarded, FAIL)
    clock.advance(later)
    outcomes(twin, guarded, OK)
    assert expected == rs.circuit.get("x").state


def test_time_window_reports_its_counts_in_stats(twin: Any, clock: Any) -> None:
    """stats()["window"] gives calls, failures, slow and the two rates over the window as it stands now."""
    guarded = rs.circuit("x", failure_rate=0.9, window=60, min_calls=10)(dependency(twin))
    outcomes(twin, guarded, FAIL, OK, OK, OK)
    expected = {"calls": 4, "failures": 1, "slow": 0, "failure_rate": 0.25, "slow_rate": 0.0}
    assert expected == rs.circuit.get("x").stats()["window"]
    clock.advance(60)
    assert 0 == rs.circuit.get("x").stats()["window"]["calls"]


def test_min_calls_counts_the_calls_in_the_window(twin: Any, clock: Any) -> None:
    """Two failures and one that left the window are fewer than min_calls=3; a third failure in the window opens."""
    guarded = rs.circuit("x", failure_rate=0.5, window=10, min_calls=3)(dependency(twin))
    outcomes(twin, guarded, FAIL)
    clock.advance(10)
    outcomes(twin, guarded, FAIL, FAIL)
    assert "closed" == rs.circuit.get("x").state
    outcomes(twin, guarded, FAIL)
    assert "open" == rs.circuit.get("x").state


def test_excluded_outcomes_count_in_neither_numerator_nor_denominator(twin: Any, clock: Any) -> None:
    """One failure and three excluded KeyErrors are one call; a success then makes 1 of 2, which opens at 0.5."""
    guarded = rs.circuit("x", failure_rate=0.5, window_calls=10, min_calls=2, exclude=KeyError)(dependency(twin))
    outcomes(twin, guarded, FAIL, KeyError(), KeyError(), KeyError())
    assert (1, "closed") == (rs.circuit.get("x").stats()["window"]["calls"], rs.circuit.get("x").state)
    outcomes(twin, guarded, OK)
    assert "open" == rs.circuit.get("x").state


def test_outcomes_outside_on_count_as_successes_in_the_window(twin: Any, clock: Any) -> None:
    """With on=Boom, a ValueError is a success for the failure rate."""
    guarded = rs.circuit("x", failure_rate=0.5, window_calls=4, min_calls=4, on=Boom)(dependency(twin))
    outcomes(twin, guarded, FAIL, ValueError(), ValueError(), ValueError())
    assert {"calls": 4, "failures": 1} == {k: rs.circuit.get("x").stats()["window"][k] for k in ("calls", "failures")}
    assert "closed" == rs.circuit.get("x").state


# 3. slow calls


def test_slow_means_strictly_slower_than_slow_call(twin: Any, clock: Any) -> None:
    """A call of exactly slow_call seconds is not slow; one a little slower is, and 1 of 2 reaches slow_rate=0.5."""
    guarded = rs.circuit("x", slow_call=2.0, slow_rate=0.5, window_calls=10, min_calls=2)(dependency(twin))
    outcomes(twin, guarded, OK, seconds=2.0)
    assert 0 == rs.circuit.get("x").stats()["window"]["slow"]
    outcomes(twin, guarded, OK, seconds=2.5)
    assert "open" == rs.circuit.get("x").state
    assert {"calls": 2, "failures": 0, "slow": 1, "failure_rate": 0.0, "slow_rate": 0.5} == rs.circuit.get("x").stats()[
        "window"
    ]


def test_slow_failures_count_as_slow_and_as_failures(twin: Any, clock: Any) -> None:
    """A failure that took too long counts in both rates; an excluded slow call in neither."""
    guarded = rs.circuit(
        "x", slow_call=1.0, slow_rate=0.9, failure_rate=0.9, window_calls=10, min_calls=5, exclude=KeyError
    )(dependency(twin))
    outcomes(twin, guarded, FAIL, seconds=1.5)
    outcomes(twin, guarded, KeyError(), seconds=1.5)
    expected = {"calls": 1, "failures": 1, "slow": 1, "failure_rate": 1.0, "slow_rate": 1.0}
    assert expected == rs.circuit.get("x").stats()["window"]


def test_slow_call_rate_alone_does_not_count_consecutive_failures(twin: Any, clock: Any) -> None:
    """slow_call/slow_rate alone: fast failures never open the breaker (no failure rule is configured)."""
    guarded = rs.circuit("x", slow_call=1.0, slow_rate=0.5, window_calls=4, min_calls=4)(dependency(twin))
    outcomes(twin, guarded, *[FAIL] * 8)
    assert "closed" == rs.circuit.get("x").state


# 4. half-open


def trip_and_wait(twin: Any, clock: Any, guarded: Callable[..., Any], failures: int, wait: float = 30.0) -> None:
    outcomes(twin, guarded, *[FAIL] * failures)
    assert "open" == rs.circuit.get("x").state
    clock.advance(wait)


def test_half_open_with_failure_rate_closes_when_trial_failures_stay_below_it(twin: Any, clock: Any) -> None:
    """With half_open_calls=4 and failure_rate=0.5, one failed trial of four still closes the breaker."""
    guarded = rs.circuit("x", failure_rate=0.5, window_calls=2, min_calls=2, half_open_calls=4)(dependency(twin))
    trip_and_wait(twin, clock, guarded, 2)
    assert ["failed", "ok", "ok"] == outcomes(twin, guarded, FAIL, OK, OK)
    assert "half-open" == rs.circuit.get("x").state  # 1 failure + 1 to come could still make 2 of 4
    assert ["ok"] == outcomes(twin, guarded, OK)
    assert "closed" == rs.circuit.get("x").state


def test_half_open_with_failure_rate_reopens_once_the_share_is_reached(twin: Any, clock: Any) -> None:
    """The second failed trial of four reaches failure_rate=0.5: the breaker re-opens without waiting for the rest."""
    guarded = rs.circuit("x", failure_rate=0.5, window_calls=2, min_calls=2, half_open_calls=4)(dependency(twin))
    trip_and_wait(twin, clock, guarded, 2)
    assert ["failed", "ok", "failed", "rejected"] == outcomes(twin, guarded, FAIL, OK, FAIL, OK)
    assert "open" == rs.circuit.get("x").state


def test_half_open_closes_early_once_the_remaining_trials_cannot_reopen_it(twin: Any, clock: Any) -> None:
    """Three successful trials of four with failure_rate=0.5: even a failed fourth could not reach it, so it closes."""
    guarded = rs.circuit("x", failure_rate=0.5, window_calls=2, min_calls=2, half_open_calls=4)(dependency(twin))
    trip_and_wait(twin, clock, guarded, 2)
    outcomes(twin, guarded, OK, OK, OK)
    assert "closed" == rs.circuit.get("x").state


def test_slow_trial_reopens_at_slow_rate(twin: Any, clock: Any) -> None:
    """With slow_rate=0.5 and two trials, one slow trial re-opens the breaker."""
    guarded = rs.circuit("x", slow_call=1.0, slow_rate=0.5, window_calls=2, min_calls=2, half_open_calls=2)(
        dependency(twin)
    )
    outcomes(twin, guarded, OK, OK, seconds=2.0)
    assert "open" == rs.circuit.get("x").state
    clock.advance(30)
    assert ["ok"] == outcomes(twin, guarded, OK, seconds=2.0)
    assert "open" == rs.circuit.get("x").state


@pytest.mark.parametrize("trials", [1, 3])
def test_half_open_admits_exactly_n_trials_in_flight(twin: Any, clock: Any, trials: int) -> None:
    """Trials nested inside each other stay in flight: the first half_open_calls run, the next is rejected."""
    admitted: list[int] = []
    rejected: list[float] = []
    layer = rs.circuit("x", failure_rate=0.5, window_calls=2, min_calls=2, half_open_calls=trials)

    if twin.is_async:

        async def nested_async(depth: int) -> str:
            admitted.append(depth)
            try:
                await guarded(depth + 1)
            except rs.CircuitOpenError as exc:
                rejected.append(exc.retry_after)
            return "ok"

        guarded = layer(nested_async)
    else:

        def nested_sync(depth: int) -> str:
            admitted.append(depth)
            try:
                guarded(depth + 1)
            except rs.CircuitOpenError as exc:
                rejected.append(exc.retry_after)
            return "ok"

        guarded = layer(nested_sync)
    layer.breaker.open()
    clock.advance(30)
    assert "ok" == twin.run(guarded, 1)
    assert (list(range(1, trials + 1)), [1.0]) == (admitted, rejected)
    assert "closed" == layer.breaker.state


# 5. late results


def test_late_failure_from_an_earlier_closed_period_is_not_counted_in_the_window(twin: Any, clock: Any) -> None:
    """A call admitted before the breaker opened and closed again does not enter the new window when it fails."""
    breaker_layer = rs.circuit("x", failure_rate=0.5, window_calls=4, min_calls=2)
    breaker = breaker_layer.breaker
    late = breaker.acquire()  # admitted while closed, finishes much later
    breaker.open()
    clock.advance(30)
    guarded = breaker_layer(dependency(twin))
    outcomes(twin, guarded, OK, OK)  # a trial that closes the breaker, then a call in the new window
    assert "closed" == breaker.state
    breaker.record(late, rs.Outcome(None, Boom()))
    assert ("closed", 1, 0) == (
        breaker.state,
        breaker.stats()["window"]["calls"],
        breaker.stats()["window"]["failures"],
    )


# 6. growing open time


def test_open_time_grows_with_each_reopening_up_to_max_reset_timeout(twin: Any, clock: Any) -> None:
    """reset_backoff=2: open 10 s, then 20, 40, capped at max_reset_timeout=60; closing starts again at 10 s."""
    guarded = rs.circuit("x", fail_max=1, reset_timeout=10, reset_backoff=2, max_reset_timeout=60)(dependency(twin))
    breaker = rs.circuit.get("x")
    seen = []
    outcomes(twin, guarded, FAIL)
    for _ in range(4):
        with pytest.raises(rs.CircuitOpenError) as excinfo:
            twin.run(guarded, OK)
        seen.append(excinfo.value.retry_after)
        clock.advance(excinfo.value.retry_after)
        outcomes(twin, guarded, FAIL)  # the trial fails: re-open, for longer
    assert [10.0, 20.0, 40.0, 60.0] == seen
    assert 60.0 == breaker.retry_after
    clock.advance(60)
    outcomes(twin, guarded, OK)
    assert "closed" == breaker.state
    outcomes(twin, guarded, FAIL)
    assert 10.0 == breaker.retry_after


def test_open_time_does_not_grow_by_default(twin: Any, clock: Any) -> None:
    """Without reset_backoff every re-opening lasts reset_timeout."""
    guarded = rs.circuit("x", fail_max=1, reset_timeout=10)(dependency(twin))
    outcomes(twin, guarded, FAIL)
    clock.advance(10)
    outcomes(twin, guarded, FAIL)
    assert 10.0 == rs.circuit.get("x").retry_after


def test_manual_open_uses_the_current_open_time(twin: Any, clock: Any) -> None:
    """open() by hand after one re-opening opens for the grown time; after close() for reset_timeout again."""
    guarded = rs.circuit("x", fail_max=1, reset_timeout=10, reset_backoff=3)(dependency(twin))
    breaker = rs.circuit.get("x")
    outcomes(twin, guarded, FAIL)
    clock.advance(10)
    outcomes(twin, guarded, FAIL)
    breaker.open()
    assert 30.0 == breaker.retry_after
    breaker.close()
    breaker.open()
    assert 10.0 == breaker.retry_after


# 7. manual states


def test_force_open_rejects_every_call_until_closed_by_hand(twin: Any, clock: Any) -> None:
    """force_open(): calls are rejected with retry_after=inf, time never half-opens it; close() ends it."""
    calls: list[object] = []
    guarded = rs.circuit("x", fail_max=1)(twin.wrap(calls.append))
    breaker = rs.circuit.get("x")
    breaker.force_open()
    clock.advance(1e6)
    with pytest.raises(rs.CircuitOpenError) as excinfo:
        twin.run(guarded, 1)
    assert (math.inf, "forced-open", math.inf, []) == (
        excinfo.value.retry_after,
        breaker.state,
        breaker.retry_after,
        calls,
    )
    assert (None, 1) == (breaker.stats()["retry_after"], breaker.stats()["rejected"])
    breaker.close()
    twin.run(guarded, 2)
    assert ("closed", [2]) == (breaker.state, calls)


def test_disable_admits_everything_and_records_nothing(twin: Any, clock: Any) -> None:
    """disable(): failures pass through, counted nowhere; close() brings the rules back."""
    guarded = rs.circuit("x", fail_max=2, failure_rate=0.5, window_calls=4, min_calls=2)(dependency(twin))
    breaker = rs.circuit.get("x")
    breaker.disable()
    assert ["failed"] * 5 == outcomes(twin, guarded, *[FAIL] * 5)
    assert ("disabled", 0, 0) == (breaker.state, breaker.fail_counter, breaker.stats()["window"]["calls"])
    breaker.close()
    outcomes(twin, guarded, FAIL, FAIL)
    assert "open" == breaker.state


def test_metrics_only_records_but_never_trips(twin: Any, clock: Any) -> None:
    """metrics_only(): every call runs; failures are counted and reported by stats(), the breaker never opens."""
    guarded = rs.circuit("x", fail_max=2, failure_rate=0.5, window_calls=4, min_calls=2)(dependency(twin))
    breaker = rs.circuit.get("x")
    breaker.metrics_only()
    assert ["failed"] * 3 + ["ok"] == outcomes(twin, guarded, FAIL, FAIL, FAIL, OK)
    stats = breaker.stats()
    assert ("metrics-only", 0, 0.0) == (stats["state"], stats["opened"], stats["retry_after"])
    assert {"calls": 4, "failures": 3, "slow": 0, "failure_rate": 0.75, "slow_rate": 0.0} == stats["window"]


def test_reset_from_a_manual_state_gives_a_new_closed_breaker(twin: Any, clock: Any) -> None:
    """reset() after force_open() closes the breaker and clears counters, window and statistics."""
    guarded = rs.circuit("x", fail_max=5, failure_rate=0.9, window_calls=4, min_calls=4)(dependency(twin))
    breaker = rs.circuit.get("x")
    outcomes(twin, guarded, FAIL)
    breaker.force_open()
    outcomes(twin, guarded, OK)
    breaker.reset()
    stats = breaker.stats()
    assert ("closed", 0, 0, 0, 0) == (
        stats["state"],
        stats["fail_counter"],
        stats["rejected"],
        stats["opened"],
        stats["window"]["calls"],
    )


def test_listeners_hear_each_real_manual_transition_once(twin: Any, clock: Any) -> None:
    """Repeating a manual state is silent; each real change is told once, with old and new state."""
    recorder = Recorder()
    guarded = rs.circuit("x", fail_max=1, listeners=[recorder])(dependency(twin))
    breaker = rs.circuit.get("x")
    breaker.force_open()
    breaker.force_open()
    breaker.disable()
    breaker.disable()
    outcomes(twin, guarded, FAIL)
    breaker.metrics_only()
    outcomes(twin, guarded, FAIL)
    breaker.close()
    breaker.reset()
    outcomes(twin, guarded, FAIL)
    breaker.open()
    breaker.reset()
    expected = [
        ("closed", "forced-open"),
        ("forced-open", "disabled"),
        ("disabled", "metrics-only"),
        ("metrics-only", "closed"),
        ("closed", "open"),
        ("open", "closed"),
    ]
    assert expected == recorder.changes


def test_listeners_hear_rate_rule_transitions_once(twin: Any, clock: Any) -> None:
    """A rate-rule breaker tells closed -> open, open -> half-open, half-open -> open, ... -> closed, each once."""
    recorder = Recorder()
    guarded = rs.circuit("x", failure_rate=0.5, window_calls=2, min_calls=2, half_open_calls=2, listeners=[recorder])(
        dependency(twin)
    )
    outcomes(twin, guarded, FAIL, FAIL, OK)
    clock.advance(30)
    outcomes(twin, guarded, FAIL, OK)
    clock.advance(30)
    outcomes(twin, guarded, OK, OK, OK)
    expected = [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]
    assert expected == recorder.changes


def test_manual_states_are_logged_like_transitions(caplog: pytest.LogCaptureFixture) -> None:
    """force_open() logs a WARNING, disable() and close() log INFO, on logger "resilience"."""
    caplog.set_level("INFO", logger="resilience")
    breaker = rs.circuit("x").breaker
    breaker.force_open()
    breaker.disable()
    breaker.close()
    expected = [
        ("WARNING", "circuit 'x': closed -> forced-open"),
        ("INFO", "circuit 'x': forced-open -> disabled"),
        ("INFO", "circuit 'x': disabled -> closed"),
    ]
    assert expected == [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "resilience"]


# 8. configuration


@pytest.mark.parametrize(
    ("kwargs", "error", "parameter"),
    [
        ({"failure_rate": 0}, ValueError, "failure_rate"),
        ({"failure_rate": 1.5}, ValueError, "failure_rate"),
        ({"failure_rate": math.nan}, ValueError, "failure_rate"),
        ({"failure_rate": True}, ValueError, "failure_rate"),
        ({"failure_rate": 0.5, "window": 0}, ValueError, "window"),
        ({"failure_rate": 0.5, "window_calls": 0}, ValueError, "window_calls"),
        ({"failure_rate": 0.5, "min_calls": 0}, ValueError, "min_calls"),
        ({"failure_rate": 0.5, "window_calls": 5, "min_calls": 10}, ValueError, "min_calls"),
        ({"window_calls": 100}, ValueError, "window_calls applies only to a rate rule"),
        ({"min_calls": 3}, ValueError, "min_calls applies only to a rate rule"),
        ({"window": 300}, ValueError, "window applies only to a rate rule"),
        ({"failure_rate": 0.5, "window": 300, "window_calls": 100}, ValueError, "either window .* or window_calls"),
        ({"slow_call": 2.0}, ValueError, "slow_rate"),
        ({"slow_rate": 0.5}, ValueError, "slow_call"),
        ({"slow_call": -1.0, "slow_rate": 0.5}, ValueError, "slow_call"),
        ({"slow_call": 1.0, "slow_rate": 2}, ValueError, "slow_rate"),
        ({"reset_backoff": 0.5}, ValueError, "reset_backoff"),
        ({"reset_backoff": math.inf}, ValueError, "reset_backoff"),
        ({"reset_backoff": "2"}, TypeError, "reset_backoff"),
        ({"reset_timeout": 10, "max_reset_timeout": 5}, ValueError, "max_reset_timeout"),
        ({"max_reset_timeout": 0}, ValueError, "max_reset_timeout"),
        ({"storage": "http://localhost:6379"}, TypeError, "storage"),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else "",
)
def test_bad_rule_configuration_raises_naming_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], parameter: str
) -> None:
    """Misconfigured trip rules fail when the decorator is built, with an error naming the parameter."""
    with pytest.raises(error, match=parameter):
        rs.circuit("x", **kwargs)
    assert [] == rs.circuit.names()


def test_declarations_compare_the_resolved_rules() -> None:
    """rs.circuit(name) and rs.circuit(name, fail_max=5) are one breaker; another failure_rate is a conflict."""
    assert rs.circuit("x").breaker is rs.circuit("x", fail_max=5).breaker
    rs.circuit("y", failure_rate=0.5)
    with pytest.raises(ValueError, match="'y'"):
        rs.circuit("y", failure_rate=0.6)


def test_repr_shows_the_trip_rules() -> None:
    """The layer's repr names its rules, as Policy.describe() shows them."""
    assert "circuit('x', fail_max=5)" == repr(rs.circuit("x"))
    assert "circuit('y', failure_rate=0.5, window=300.0)" == repr(rs.circuit("y", failure_rate=0.5, window=300))
    expected = "circuit('z', fail_max=3, slow_call=2.0, slow_rate=0.5, window_calls=100)"
    assert expected == repr(rs.circuit("z", fail_max=3, slow_call=2, slow_rate=0.5, window_calls=100))


# 9. the windows and rules on their own


def test_time_window_memory_is_bounded_by_its_buckets() -> None:
    """100,000 outcomes spread over 6 minutes leave a 60 s time window with BUCKETS buckets and exact totals."""
    window = TimeWindow(60.0)
    for i in range(100_000):
        window.add(i * 0.0036, failed=i % 4 == 0, slow=False)
    assert BUCKETS == len(window._calls)
    now = 99_999 * 0.0036
    in_window = [i for i in range(100_000) if (i * 0.0036) // 3.0 > now // 3.0 - BUCKETS]
    assert (len(in_window), sum(1 for i in in_window if i % 4 == 0), 0) == window.totals(now)


def test_count_window_flags_slow_and_failed_calls() -> None:
    """A count window of 3 keeps failed and slow marks of its last 3 calls."""
    window = CountWindow(3)
    for failed, slow in [(True, True), (False, True), (True, False), (False, False)]:
        window.add(0.0, failed, slow)
    assert (3, 1, 1) == window.totals(0.0)


@pytest.mark.parametrize(
    ("trials", "rate", "results", "expected"),
    [
        (1, None, "s", "closed"),
        (3, None, "ss", None),
        (3, None, "ssf", "open"),
        (4, 0.5, "fss", None),
        (4, 0.5, "fsss", "closed"),
        (4, 0.5, "sff", "open"),
        (4, 0.25, "f", "open"),
        (10, 0.5, "ssssss", "closed"),
    ],
)
def test_trial_verdict(trials: int, rate: float | None, results: str, expected: str | None) -> None:
    """The half-open verdict is reached as soon as the remaining trials cannot change it."""
    config = BreakerConfig(fail_max=None, failure_rate=rate, half_open_calls=trials)
    assert expected == config.trial_verdict(results.count("s"), results.count("f"), 0)


def test_open_period_never_overflows() -> None:
    """A huge number of re-openings gives the cap (a year without max_reset_timeout), not an OverflowError."""
    config = BreakerConfig(reset_timeout=1.0, reset_backoff=10.0)
    assert 366 * 24 * 3600.0 == config.open_period(10_000)


def test_default_window_and_min_calls_still_apply_with_a_rate_rule() -> None:
    """Without window or min_calls, a rate rule gets a 60 s window judged from 10 calls."""
    config = rs.circuit("defaults", failure_rate=0.5).breaker.config
    assert (60.0, None, 10) == (config.window, config.window_calls, config.min_calls)
