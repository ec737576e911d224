"""The exception tree and its pickling (errors cross process pools)."""

from __future__ import annotations

import pickle

import pybreaker

import resilience as rs


def test_deadline_exceeded_is_a_resilience_error_and_a_timeout_error() -> None:
    """DeadlineExceeded subclasses ResilienceError and the built-in TimeoutError."""
    exc = rs.DeadlineExceeded(2.0, 2.5, deadline=10.0, what="fetch")
    assert (True, True) == (isinstance(exc, rs.ResilienceError), isinstance(exc, TimeoutError))
    assert "fetch exceeded its 2 s deadline after 2.5 s" == str(exc)


def test_deadline_exceeded_without_a_known_limit_says_how_far_past() -> None:
    """Deadline-aware code that does not know the limit reports the overrun instead."""
    assert "call ran 0.25 s past its deadline" == str(rs.DeadlineExceeded(None, 0.25, deadline=1.0))


def test_deadline_exceeded_pickles() -> None:
    """A pickled DeadlineExceeded keeps its message and attributes."""
    exc = pickle.loads(pickle.dumps(rs.DeadlineExceeded(2.0, 2.5, deadline=10.0, kind="attempt", what="fetch")))
    assert ("fetch exceeded its 2 s deadline after 2.5 s", 2.0, 2.5, 10.0, "attempt") == (
        str(exc),
        exc.limit,
        exc.elapsed,
        exc.deadline,
        exc.kind,
    )


def test_circuit_open_error_pickles_and_is_a_pybreaker_error() -> None:
    """CircuitOpenError is a pybreaker.CircuitBreakerError and survives pickling."""
    exc = pickle.loads(pickle.dumps(rs.CircuitOpenError("users", 12.5)))
    assert (True, "users", 12.5) == (isinstance(exc, pybreaker.CircuitBreakerError), exc.name, exc.retry_after)
