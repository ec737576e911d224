"""The exceptions resilience raises.

```
ResilienceError
├── DeadlineExceeded        (also TimeoutError)   a timeout or deadline ran out
├── CircuitOpenError        (also pybreaker.CircuitBreakerError)   the breaker rejected the call
├── BulkheadFull            every slot of a bulkhead stayed taken for as long as the call could wait
└── RateLimited             no rate-limit token was available in time (``retry_after`` says when)
```

When retries run out, resilience does not wrap anything: the last exception the call
raised surfaces unchanged, with a note (PEP 678) saying why retrying stopped.
"""

from __future__ import annotations

from resilience._pybreaker import pybreaker

__all__ = ["BulkheadFull", "CircuitOpenError", "DeadlineExceeded", "RateLimited", "ResilienceError"]


class ResilienceError(Exception):
    """Base class of every error resilience raises itself."""


class DeadlineExceeded(ResilienceError, TimeoutError):
    """A timeout or an enclosing deadline ran out before the call finished.

    Attributes: ``limit`` (the seconds the call was allowed, None where unknown),
    ``elapsed`` (seconds it ran, or ran over when ``limit`` is None),
    ``kind`` ("timeout" for an ``rs.timeout`` layer, "deadline" for deadline-aware code),
    ``deadline`` (the absolute monotonic time that passed).
    """

    def __init__(
        self,
        limit: float | None,
        elapsed: float,
        *,
        deadline: float,
        kind: str = "timeout",
        what: str = "call",
    ) -> None:
        self.limit = limit
        self.elapsed = elapsed
        self.deadline = deadline
        self.kind = kind
        if limit is None:  # found by deadline-aware code that does not know when the clock started
            message = f"{what} ran {elapsed:.3g} s past its deadline"
        else:
            message = f"{what} exceeded its {limit:.3g} s deadline after {elapsed:.3g} s"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:  # keep it picklable for process pools
        return (_rebuild_deadline, (self.limit, self.elapsed, self.deadline, self.kind, str(self)))


def _rebuild_deadline(
    limit: float | None, elapsed: float, deadline: float, kind: str, message: str
) -> DeadlineExceeded:
    exc = DeadlineExceeded(limit, elapsed, deadline=deadline, kind=kind)
    exc.args = (message,)
    return exc


class CircuitOpenError(ResilienceError, pybreaker.CircuitBreakerError):
    """The circuit breaker ``name`` is open (or its half-open trials are taken).

    ``retry_after`` is the number of seconds until the breaker admits a trial call; while
    every half-open trial is in flight it is a short suggested wait (1 s, or
    ``reset_timeout`` if shorter), since those trials decide.
    """

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        if retry_after == float("inf"):
            message = f"circuit {name!r} is forced open until someone closes or resets it"
        else:
            message = f"circuit {name!r} is open; next trial call allowed in {retry_after:.3g} s"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (CircuitOpenError, (self.name, self.retry_after))


class BulkheadFull(ResilienceError):
    """The bulkhead ``name`` had all ``max_concurrent`` slots taken and none came free
    within ``waited`` seconds (``max_wait``, or less when a deadline came first).

    The call never started: it is safe to retry or to answer with a fallback.
    """

    def __init__(self, name: str, max_concurrent: int, waited: float, reason: str = "") -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.waited = waited
        self.reason = reason
        message = f"bulkhead {name!r} is full ({max_concurrent} calls in flight)"
        if waited > 0:
            message += f"; no slot came free within {waited:.3g} s"
        if reason:
            message += f" ({reason})"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (BulkheadFull, (self.name, self.max_concurrent, self.waited, self.reason))


class RateLimited(ResilienceError):
    """The rate limit ``name`` had no token for this call.

    ``retry_after`` is the number of seconds until a token is available (when the
    limiter was asked to wait, the wait it would have needed exceeded what it could
    wait). The call never started.
    """

    def __init__(self, name: str, retry_after: float, reason: str = "") -> None:
        self.name = name
        self.retry_after = retry_after
        self.reason = reason
        message = f"rate limit {name!r} exceeded; next call allowed in {retry_after:.3g} s"
        if reason:
            message += f" ({reason})"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (RateLimited, (self.name, self.retry_after, self.reason))
