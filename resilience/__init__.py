"""Harden any callable against slow, failing and overloaded dependencies.

>>> import resilience as rs
>>> @rs.monitored("users-api")
... @rs.retry_on(ConnectionError, attempts=3)
... @rs.circuit("users-api", fail_max=5, reset_timeout=30)
... @rs.timeout(10)
... def get_user(uid: int) -> dict[str, int]:
...     return {"id": uid}
>>> get_user(7)
{'id': 7}
"""

from resilience import deadline, monitor, testing
from resilience._budget import RetryBudget
from resilience._bulkhead import bulkhead
from resilience._circuit import Breaker, circuit
from resilience._fallback import fallback
from resilience._hedge import hedge
from resilience._policy import Policy
from resilience._rate_limit import rate_limit
from resilience._retry import RetryEvent, retry_on
from resilience._timeout import timeout
from resilience.classify import Outcome, Verdict
from resilience.errors import BulkheadFull, CircuitOpenError, DeadlineExceeded, RateLimited, ResilienceError
from resilience.monitor import monitored

__all__ = [
    "Breaker",
    "BulkheadFull",
    "CircuitOpenError",
    "DeadlineExceeded",
    "Outcome",
    "Policy",
    "RateLimited",
    "ResilienceError",
    "RetryBudget",
    "RetryEvent",
    "Verdict",
    "bulkhead",
    "circuit",
    "deadline",
    "fallback",
    "hedge",
    "monitor",
    "monitored",
    "rate_limit",
    "retry_on",
    "testing",
    "timeout",
]

__version__ = "0.1.0"
