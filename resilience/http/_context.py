"""What an enclosing ``http.policy`` / ``http.idempotent`` tells the ``http.Session`` below it.

Context variables, so they follow the call into threads started with a copied context
(``asyncio.to_thread``) and never leak between concurrent calls.
"""

from __future__ import annotations

from contextvars import ContextVar

from resilience._engine import check_seconds

IDEMPOTENCY_HEADER = "Idempotency-Key"

# The (connect, read) timeout of the innermost http.policy, used when a request names none.
policy_timeout: ContextVar[tuple[float, float] | None] = ContextVar("resilience_http_timeout", default=None)
# The Idempotency-Key of the current logical call (the same on every attempt), or None.
idempotency_key: ContextVar[str | None] = ContextVar("resilience_http_idempotency_key", default=None)


def timeout_pair(value: object, parameter: str = "timeout") -> tuple[float, float]:
    """A (connect, read) pair of float seconds from one number (both) or a pair, naming ``parameter`` if wrong."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{parameter} must be {_TIMEOUT_HELP}, got {value!r}")
        connect, read = value
        check_seconds(f"{parameter} (connect)", connect)
        check_seconds(f"{parameter} (read)", read)
        return float(connect), float(read)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{parameter} must be {_TIMEOUT_HELP}, got {value!r}")
    check_seconds(parameter, value)
    return float(value), float(value)


_TIMEOUT_HELP = "a number of seconds > 0 or a (connect, read) pair of them"
