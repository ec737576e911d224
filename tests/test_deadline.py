"""``rs.deadline``: reading, scoping and checking the current deadline on the fake clock."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import math

import pytest

import resilience as rs


def test_no_deadline_outside_any_scope(clock):
    """Outside any scope or timeout, remaining() and expires_at() are None and check() passes."""
    assert rs.deadline.remaining() is None
    assert rs.deadline.expires_at() is None
    rs.deadline.check()


def test_scope_sets_the_deadline_and_restores_it(clock):
    """scope(s) sets a deadline s seconds from now for the block and removes it afterwards."""
    with rs.deadline.scope(5) as deadline:
        assert clock.monotonic() + 5 == deadline
        assert deadline == rs.deadline.expires_at()
        assert 5.0 == rs.deadline.remaining()

    assert rs.deadline.remaining() is None
    assert rs.deadline.expires_at() is None


def test_scope_restores_the_deadline_after_an_exception(clock):
    """A block that raises still leaves the previous deadline in place."""
    with pytest.raises(KeyError), rs.deadline.scope(5):
        raise KeyError("boom")

    assert rs.deadline.expires_at() is None


def test_remaining_counts_down_and_goes_negative(clock):
    """remaining() follows the clock and is negative once the deadline has passed."""
    with rs.deadline.scope(5):
        clock.advance(2)
        assert 3.0 == rs.deadline.remaining()
        clock.advance(4)
        assert -1.0 == rs.deadline.remaining()


def test_nested_scope_never_extends_the_outer_deadline(clock):
    """A longer inner scope keeps the outer deadline; leaving it restores the outer one."""
    with rs.deadline.scope(5) as outer:
        with rs.deadline.scope(100) as inner:
            assert outer == inner
            assert 5.0 == rs.deadline.remaining()
        assert outer == rs.deadline.expires_at()


def test_nested_scope_can_shorten_the_deadline(clock):
    """A shorter inner scope sets its own, earlier deadline, and the outer one returns after it."""
    with rs.deadline.scope(5) as outer:
        with rs.deadline.scope(1) as inner:
            assert clock.monotonic() + 1 == inner
            assert 1.0 == rs.deadline.remaining()
        assert outer == rs.deadline.expires_at()


def test_scope_inside_a_timeout_never_extends_it(twin, clock):
    """Inside @rs.timeout(2), scope(100) still ends at the timeout's deadline."""

    def body() -> float | None:
        with rs.deadline.scope(100):
            return rs.deadline.remaining()

    fn = rs.timeout(2)(twin.wrap(body))

    assert 2.0 == twin.run(fn)


def test_timeout_inside_a_scope_never_extends_it(twin, clock):
    """An @rs.timeout(100) call inside scope(3) sees the scope's 3 s."""
    fn = rs.timeout(100)(twin.wrap(rs.deadline.remaining))

    with rs.deadline.scope(3):
        assert 3.0 == twin.run(fn)


def test_check_passes_before_the_deadline(clock):
    """check() does nothing while time is left."""
    with rs.deadline.scope(5):
        clock.advance(4.5)
        rs.deadline.check()


@pytest.mark.parametrize("overrun", [0.0, 2.0])
def test_check_raises_once_the_deadline_has_passed(clock, overrun):
    """check() raises DeadlineExceeded when the clock reaches or passes the deadline."""
    with rs.deadline.scope(5) as deadline:
        clock.advance(5 + overrun)
        with pytest.raises(rs.DeadlineExceeded) as info:
            rs.deadline.check("fetch")

    error = info.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, rs.ResilienceError)
    assert error.limit is None
    assert overrun == error.elapsed
    assert deadline == error.deadline
    assert "deadline" == error.kind
    assert f"fetch ran {overrun:.3g} s past its deadline" == str(error)


def test_check_inside_a_timed_call(twin, clock):
    """Deadline-aware code in a cooperative timeout finds the deadline passed with check()."""

    def body() -> None:
        clock.advance(3)
        rs.deadline.check("step")

    fn = rs.timeout(2, mode="cooperative")(twin.wrap(body))

    with pytest.raises(rs.DeadlineExceeded, match="step ran 1 s past its deadline"):
        twin.run(fn)


def test_expires_at_is_absolute_on_the_resilience_clock(twin, clock):
    """expires_at() inside @rs.timeout(5) is the resilience clock's time at the call plus 5 s."""
    start = clock.monotonic()
    fn = rs.timeout(5)(twin.wrap(rs.deadline.expires_at))

    assert start + 5 == twin.run(fn)


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf])
def test_scope_rejects_bad_seconds(clock, seconds):
    """scope() rejects what rs.timeout rejects, with a ValueError naming the parameter and range."""
    with pytest.raises(ValueError, match=r"seconds.*> 0"), rs.deadline.scope(seconds):
        pass


@pytest.mark.parametrize("seconds", [True, "1", None])
def test_scope_rejects_non_numbers(clock, seconds):
    """scope() rejects a non-number (a bool included) with a TypeError naming the parameter."""
    with pytest.raises(TypeError, match=r"seconds.*number"), rs.deadline.scope(seconds):
        pass
