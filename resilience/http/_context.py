"""What an enclosing ``http.policy`` / ``http.idempotent`` tells the ``http.Session`` below it.

Context variables, so they follow the call into threads started with a copied context
(``asyncio.to_thread``) and never leak between concurrent calls.
"""

from __future__ import annotations

from contextvars import ContextVar

IDEMPOTENCY_HEADER = "Idempotency-Key"

# The (connect, read) timeout of the innermost http.policy, used when a request names none.
policy_timeout: ContextVar[tuple[float, float] | None] = ContextVar("resilience_http_timeout", default=None)
# The Idempotency-Key of the current logical call (the same on every attempt), or None.
idempotency_key: ContextVar[str | None] = ContextVar("resilience_http_idempotency_key", default=None)
