"""Redis outages, for the layers that keep shared state in Redis (a breaker, a rate limit).

While Redis does not answer, such a layer serves from local state instead of failing its
calls. :class:`Outage` tracks that: the first failure of an outage seeds the local state
and logs one WARNING, later failures only push back the next attempt; during an outage
one caller per ``interval`` tries Redis again; the first answer ends the outage (one
INFO). Also the client options shared by both layers: short timeouts for clients built
from a URL. Imports redis: imported only when a Redis storage is asked for.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.backoff
import redis.retry

from resilience import _clock

logger = logging.getLogger("resilience")

RESYNC_INTERVAL = 1.0  # seconds between attempts to reach Redis again during an outage
SOCKET_TIMEOUT = 1.0  # for clients built from a URL (a query string may say otherwise)
CONNECT_TIMEOUT = 0.5
REDIS_ERRORS = (redis.exceptions.RedisError, OSError)


def url_options(url: str, retry: Any) -> dict[str, Any]:
    """Client options for a URL: short timeouts and one immediate reconnection attempt
    (a pooled connection is stale after a Redis restart), unless the URL says otherwise."""
    given = parse_qs(urlsplit(url).query)
    defaults = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT}
    return {"retry": retry, **{key: value for key, value in defaults.items() if key not in given}}


def sync_client(url: str) -> redis.Redis:
    """A ``redis.Redis`` client for ``url`` with :func:`url_options`."""
    return redis.Redis.from_url(url, **url_options(url, redis.retry.Retry(redis.backoff.NoBackoff(), 1)))


def async_client(url: str) -> redis.asyncio.Redis:
    """A ``redis.asyncio.Redis`` client for ``url`` (it belongs to the running event loop) with :func:`url_options`."""
    return redis.asyncio.Redis.from_url(
        url, **url_options(url, redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 1))
    )


def is_async_client(client: object) -> bool:
    return inspect.iscoroutinefunction(getattr(type(client), "execute_command", None))


class Outage:
    """Whether Redis answers one layer (``kind`` and ``name`` say which, in the log).

    ``down`` is read without the lock (a stale read costs one Redis attempt or one local
    decision). ``lock`` also guards what the layer keeps of the last shared state, so that
    seeding the local state from it and taking the shared state back never interleave.
    """

    def __init__(self, kind: str, name: str, interval: float | None = None) -> None:
        self.kind = kind
        self.name = name
        self.interval = RESYNC_INTERVAL if interval is None else interval
        self.lock = threading.Lock()
        self.down = False
        self.count = 0  # outages so far
        self._since = 0.0
        self._next_probe = 0.0

    def probe_due(self) -> bool:
        """During an outage: whether this caller should try Redis again (one caller per interval)."""
        now = _clock.monotonic()
        with self.lock:
            if now < self._next_probe:
                return False
            self._next_probe = now + self.interval
            return True

    def lost(self, exc: BaseException, seed: Callable[[float], str]) -> None:
        """Redis did not answer. The first failure of an outage calls ``seed(now)`` under the
        lock (start the local state; it returns what is served, for the WARNING)."""
        now = _clock.monotonic()
        with self.lock:
            self._next_probe = now + self.interval
            if self.down:
                return
            self.down = True
            self._since = now
            self.count += 1
            serving = seed(now)
        logger.warning(
            "%s %r: Redis unreachable (%s: %s); serving from %s until it is back",
            self.kind,
            self.name,
            type(exc).__name__,
            exc,
            serving,
            extra={self.kind: self.name},
        )

    def end(self, now: float) -> float | None:
        """Redis answered (call with ``lock`` held): the outage's length if one just ended, else None."""
        if not self.down:
            return None
        self.down = False
        return now - self._since

    def log_back(self, seconds: float, detail: str) -> None:
        """The INFO for an outage that :meth:`end` ended ``seconds`` long; ``detail`` says what is served now."""
        logger.info(
            "%s %r: Redis reachable again after %.3g s; %s",
            self.kind,
            self.name,
            seconds,
            detail,
            extra={self.kind: self.name},
        )

    def stats(self) -> dict[str, Any]:
        """``stats()["storage"]``: backend, connected, outages."""
        return {"backend": "redis", "connected": not self.down, "outages": self.count}
