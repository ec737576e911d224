"""What an enclosing ``http.policy`` / ``http.idempotent`` tells the ``http.Session`` below it.

Context variables, so they follow the call into threads started with a copied context
(``asyncio.to_thread``) and never leak between concurrent calls.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

from resilience._engine import check_seconds

IDEMPOTENCY_HEADER = "Idempotency-Key"

# The (connect, read) timeout of the innermost http.policy, used when a request names none.
policy_timeout: ContextVar[tuple[float, float] | None] = ContextVar("resilience_http_timeout", default=None)


class IdempotencyKeys:
    """The Idempotency-Keys of one logical call.

    ``numbered`` (an ``http.policy(..., idempotent=True)``, which sees each attempt start):
    the n-th request needing a key in an attempt gets ``base`` for n = 1, ``base-n`` after,
    so every attempt repeats the same keys while two different POSTs of one call (an order,
    then a charge) never share one. Otherwise (``@http.idempotent``, which only sees the
    whole call) every request of the call gets ``base``.
    """

    __slots__ = ("_base", "numbered", "used")

    def __init__(self, base: str | None, numbered: bool) -> None:
        self._base = base  # None: a fresh UUID, made when a request first needs a key
        self.numbered = numbered
        self.used = 0

    @property
    def base(self) -> str:
        if self._base is None:
            self._base = str(uuid.uuid4())  # ~3 us: only calls that send a POST pay for it
        return self._base

    def next_key(self) -> str:
        """The key of the next request that needs one."""
        self.used += 1
        return self.base if not self.numbered or self.used == 1 else f"{self.base}-{self.used}"

    def new_attempt(self) -> None:
        self.used = 0


# The keys of the current logical call, or None.
idempotency_key: ContextVar[IdempotencyKeys | None] = ContextVar("resilience_http_idempotency_key", default=None)


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
