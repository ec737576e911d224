"""pybreaker, imported without its eager ``import redis``.

pybreaker tries ``import redis`` when it is imported, and ``import resilience`` must not
import redis (it is heavy, and only shared breakers need it). We import pybreaker with
redis hidden, then give pybreaker its Redis support back the first time someone builds a
``pybreaker.CircuitRedisStorage``.
"""

from __future__ import annotations

import sys
from typing import Any

if "pybreaker" in sys.modules or "redis" in sys.modules:
    import pybreaker
else:
    sys.modules["redis"] = None  # type: ignore[assignment]  # `from redis import X` now raises ImportError
    try:
        import pybreaker
    finally:
        del sys.modules["redis"]

    _redis_storage_init = pybreaker.CircuitRedisStorage.__init__

    def _init_with_redis(self: Any, *args: Any, **kwargs: Any) -> None:
        if not pybreaker.HAS_REDIS_SUPPORT:
            try:
                from redis import Redis
                from redis.client import Pipeline
                from redis.exceptions import RedisError
            except ImportError:
                pass  # pybreaker's own __init__ then says redis is missing
            else:
                vars(pybreaker).update(Redis=Redis, Pipeline=Pipeline, RedisError=RedisError, HAS_REDIS_SUPPORT=True)
        _redis_storage_init(self, *args, **kwargs)

    pybreaker.CircuitRedisStorage.__init__ = _init_with_redis  # type: ignore[method-assign]

__all__ = ["pybreaker"]
