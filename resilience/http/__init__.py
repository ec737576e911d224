"""HTTP presets over requests: classification, a deadline-aware Session, policies, batch fetch.

>>> from resilience import http
>>> USERS = http.policy("users-api", timeout=(3.0, 10.0), deadline=30.0)
>>> session = http.Session()

- :func:`classify` / :data:`TRANSIENT`: which requests errors and HTTP statuses are worth
  retrying (method-aware), which count against a breaker, and Retry-After.
- :class:`Session`: a requests.Session that never waits forever and keeps to the deadline.
- :func:`policy` / :func:`best_effort`: ready-made ``rs.Policy`` objects per endpoint.
- :func:`idempotent`: one Idempotency-Key per logical call, so POSTs retry safely.
- :func:`fetch_all`: many requests through one Session and a bounded pool of threads.

Importing this module imports requests; ``import resilience`` alone does not.
"""

from resilience.http._batch import BatchResult, ItemResult, fetch_all
from resilience.http._classify import (
    COUNTED_ERRORS,
    FATAL_ERRORS,
    FATAL_STATUSES,
    IDEMPOTENT_METHODS,
    RETRY_ANY_METHOD_ERRORS,
    RETRY_ANY_METHOD_STATUSES,
    RETRY_IDEMPOTENT_ERRORS,
    RETRY_IDEMPOTENT_STATUSES,
    TRANSIENT,
    BusinessError,
    classify,
    parse_retry_after,
    transient,
)
from resilience.http._context import IDEMPOTENCY_HEADER
from resilience.http._presets import HttpPolicy, best_effort, idempotent, policy
from resilience.http._session import Session

__all__ = [
    "COUNTED_ERRORS",
    "FATAL_ERRORS",
    "FATAL_STATUSES",
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENT_METHODS",
    "RETRY_ANY_METHOD_ERRORS",
    "RETRY_ANY_METHOD_STATUSES",
    "RETRY_IDEMPOTENT_ERRORS",
    "RETRY_IDEMPOTENT_STATUSES",
    "TRANSIENT",
    "BatchResult",
    "BusinessError",
    "HttpPolicy",
    "ItemResult",
    "Session",
    "best_effort",
    "classify",
    "fetch_all",
    "idempotent",
    "parse_retry_after",
    "policy",
    "transient",
]
