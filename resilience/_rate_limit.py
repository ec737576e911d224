"""``rs.rate_limit``: a token bucket in this process (on the resilience clock) or in Redis.

The bucket holds up to ``burst`` tokens and gains one every ``per / rate`` seconds; each
call takes one. A caller allowed to wait *reserves* its token (the bucket goes into
debt) and then sleeps until the token is due, so waiting callers are served in order
and the rate holds exactly. A reservation is a *ticket* (where it was made, and when
it is due): a caller that gives up waiting hands its token back only when nobody reserved
after it (otherwise the next newcomer would be due together with a later reservation);
else the token is lost, which never admits more than the limit. A drain records when it
ends: a waiter that wakes inside a drain queues again behind it, or fails with
RateLimited if that is further than it may wait. In Redis the same arithmetic runs as
one Lua script on the server's own clock (``TIME``), so every process sharing the key
sees one atomic bucket. redis is imported only when a Redis storage is configured.

Redis unreachable: each process serves from a local bucket of the same size and rate,
starting from the tokens Redis last reported (so the limit holds per process, never
unlimited), logs one WARNING per outage, counts it in ``stats()["storage"]``, tries Redis
again at most every ``_redis_outage.RESYNC_INTERVAL`` seconds and, when Redis answers,
draws on the shared bucket again (what was taken locally meanwhile is not merged).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from resilience import _clock
from resilience._engine import Args, Kwargs, Layer, active_deadline, call_name, check_seconds
from resilience._registry import NamedFactory, NamedRegistry
from resilience.classify import Classifier, ClassifierLike, Outcome, to_classifier
from resilience.errors import RateLimited

R = TypeVar("R")
# Where a token was taken and when it is due, on that bucket's clock: ("memory" | "local" |
# "redis", due). refund() needs it to tell whether anyone reserved after it.
Ticket = tuple[str, float]
logger = logging.getLogger("resilience")
EPSILON = 1e-9  # of a token: float sums of elapsed time must not turn "exactly due" into "not yet"
FOREVER = 1e300  # "wait as long as it takes", as a number a Lua script can read
KEY_PREFIX = "resilience:rate_limit:"
LATER = 1e-6  # of an interval: a reservation due this much after another one is "later" (also in _LUA)


class _Bucket(Protocol):
    blocking: bool  # True when take() does network I/O (async callers run it in a thread)

    def take(self, max_wait: float) -> tuple[bool, float, Ticket]:
        """Take a token: (True, 0, t) now; (True, w, t) reserved, due in w s; (False, w, t) none within
        max_wait (t: the ticket)."""
        ...

    def refund(self, ticket: Ticket) -> None:
        """Give a token back, unless someone reserved a token due after it (then it is dropped)."""
        ...

    def drain(self, seconds: float) -> None: ...
    def drained_for(self) -> float:
        """Seconds until the current drain ends (0 when none is in force)."""
        ...

    def tokens(self) -> float: ...
    def refill(self) -> None: ...
    def storage(self) -> dict[str, Any]: ...


class _MemoryBucket:
    """A token bucket in this process, on the resilience clock."""

    blocking = False

    def __init__(self, capacity: float, interval: float) -> None:
        self.capacity = capacity
        self.interval = interval
        self._tokens = capacity
        self._stamp: float | None = None  # set on first use, on whatever clock is installed then
        self._until = -math.inf  # when the last drain ends
        self._lock = threading.Lock()

    def _refill(self) -> float:
        """Bring the tokens up to now (then ``_stamp`` is now); call with the lock held."""
        now = _clock.monotonic()
        stamp = self._stamp
        if stamp is None or now < stamp:  # first use, or another clock was installed since
            if stamp is not None:
                self._until = -math.inf
            self._stamp = now
        elif now > stamp:
            self._tokens = min(self.capacity, self._tokens + (now - stamp) / self.interval)
            self._stamp = now
        return self._tokens

    def take(self, max_wait: float, source: str = "memory") -> tuple[bool, float, Ticket]:
        with self._lock:
            tokens = self._refill()
            now = self._stamp
            assert now is not None
            if tokens >= 1.0 - EPSILON:
                self._tokens = tokens - 1.0
                return True, 0.0, (source, now)
            wait = (1.0 - tokens) * self.interval
            if wait <= max_wait:
                self._tokens = tokens - 1.0
                return True, wait, (source, now + wait)
            return False, wait, (source, now + wait)

    def refund(self, ticket: Ticket) -> None:
        with self._lock:
            tokens = self._refill()
            now = self._stamp
            assert now is not None
            # tokens < 0: the last reservation is due at now - tokens * interval; if it is later
            # than this one, keep its place and drop this token (never two calls at once)
            if tokens >= 0 or now - tokens * self.interval <= ticket[1] + LATER * self.interval:
                self._tokens = min(self.capacity, tokens + 1.0)

    def drain(self, seconds: float) -> None:
        with self._lock:
            self._tokens = min(self._refill(), -seconds / self.interval)
            assert self._stamp is not None
            self._until = max(self._until, self._stamp + seconds)

    def drained_for(self) -> float:
        with self._lock:
            self._refill()
            assert self._stamp is not None
            return max(self._until - self._stamp, 0.0)

    def tokens(self) -> float:
        with self._lock:
            return self._refill()

    def refill(self) -> None:
        with self._lock:
            self._tokens = self.capacity
            self._stamp = None
            self._until = -math.inf

    def seed(self, tokens: float, stamp: float, drained_for: float = 0.0) -> None:
        """Hold ``tokens`` as of ``stamp`` (a monotonic time), drained for ``drained_for`` s more
        from then: it refills from then on."""
        with self._lock:
            self._tokens = min(self.capacity, tokens)
            self._stamp = stamp
            self._until = stamp + drained_for if drained_for > 0 else -math.inf

    def storage(self) -> dict[str, Any]:
        return {"backend": "memory"}


# KEYS[1]: the bucket (a hash: tokens, stamp, until). ARGV: capacity, interval, cost, max_wait,
# drain, due. cost > 0 takes (or reserves within max_wait); cost < 0 gives back the token due
# at ``due`` (server time) unless a reservation due later exists; cost = 0 reads; drain >= 0
# empties the bucket for that many seconds. Replies: granted, wait, tokens, seconds the drain
# still holds, and when the token is due. Numbers travel as strings: Lua numbers become
# integer replies.
_LUA = """
local capacity = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local drain = tonumber(ARGV[5])
local due = tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'until')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
local drained_until = tonumber(state[3]) or 0
if tokens == nil or stamp == nil then
  tokens = capacity
  stamp = now
end
if now > stamp then
  tokens = math.min(capacity, tokens + (now - stamp) / interval)
  stamp = now
end
local granted = 1
local wait = 0
if drain >= 0 then
  tokens = math.min(tokens, -drain / interval)
  drained_until = math.max(drained_until, now + drain)
elseif cost < 0 then
  if tokens >= 0 or now - tokens * interval <= due + 1e-6 * interval then
    tokens = math.min(capacity, tokens - cost)
  else
    granted = 0
  end
elseif cost > 0 then
  if tokens >= cost - 1e-9 then
    tokens = tokens - cost
  else
    wait = (cost - tokens) * interval
    if wait <= max_wait then
      tokens = tokens - cost
    else
      granted = 0
    end
  end
end
local held = math.max(drained_until - now, 0)
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'stamp', string.format('%.17g', stamp),
  'until', string.format('%.17g', drained_until))
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max((capacity - tokens) * interval, held) * 1000) + 1000)
return {granted, string.format('%.17g', wait), string.format('%.17g', tokens), string.format('%.17g', held),
  string.format('%.17g', now + wait)}
"""


class _RedisBucket:
    """A token bucket in Redis: one Lua script per operation, timed by the server's clock.

    While Redis is unreachable, a local bucket of the same size and rate serves instead,
    starting from the tokens Redis last reported (full if it never answered).
    """

    blocking = True

    def __init__(self, client: Any, key: str, name: str, capacity: float, interval: float) -> None:
        from resilience import _redis_outage  # imports redis: only once a Redis storage is configured

        self.client = client
        self.key = key
        self.capacity = capacity
        self.interval = interval
        self._script = client.register_script(_LUA)
        self._errors = _redis_outage.REDIS_ERRORS
        self._outage = _redis_outage.Outage("rate_limit", name)
        self._local = _MemoryBucket(capacity, interval)
        # tokens and seconds of drain left in the last reply, and when (monotonic)
        self._seen: tuple[float, float, float] | None = None

    def _run(
        self, cost: float, max_wait: float = 0.0, drain: float = -1.0, due: float = 0.0
    ) -> tuple[bool, float, float, float, float] | None:
        """One script call: (granted, wait, tokens, drained_for, due); None when Redis is unreachable
        (serve locally)."""
        outage = self._outage
        if outage.down and not outage.probe_due():
            return None
        try:
            granted, wait, tokens, held, due_at = self._script(
                keys=[self.key],
                args=[repr(self.capacity), repr(self.interval), repr(cost), repr(max_wait), repr(drain), repr(due)],
            )
        except self._errors as exc:
            outage.lost(exc, self._seed)
            return None
        reply = int(granted) == 1, float(wait), float(tokens), float(held), float(due_at)
        now = _clock.monotonic()
        with outage.lock:
            self._seen = (reply[2], now, reply[3])
            back = outage.end(now)
        if back is not None:
            outage.log_back(back, f"back to the shared bucket ({reply[2]:.3g} tokens)")
        return reply

    def _seed(self, now: float) -> str:
        """An outage begins (the outage lock held): the local bucket starts from the last reply."""
        tokens, stamp, held = (self.capacity, now, 0.0) if self._seen is None else self._seen
        self._local.seed(tokens, stamp, held)
        return f"a local bucket ({self._local.tokens():.3g} of {self.capacity:g} tokens)"

    def take(self, max_wait: float) -> tuple[bool, float, Ticket]:
        reply = self._run(1.0, min(max_wait, FOREVER))
        if reply is None:
            return self._local.take(max_wait, "local")
        return reply[0], reply[1], ("redis", reply[4])

    def refund(self, ticket: Ticket) -> None:
        """A token taken from Redis goes back to Redis (dropped if it does not answer); one taken locally, locally."""
        if ticket[0] == "redis":
            self._run(-1.0, due=ticket[1])
        else:
            self._local.refund(ticket)

    def drain(self, seconds: float) -> None:
        if self._run(0.0, drain=seconds) is None:
            self._local.drain(seconds)

    def drained_for(self) -> float:
        reply = self._run(0.0)
        return self._local.drained_for() if reply is None else reply[3]

    def tokens(self) -> float:
        reply = self._run(0.0)
        return self._local.tokens() if reply is None else reply[2]

    def refill(self) -> None:
        """Left alone: other processes share this bucket."""

    def storage(self) -> dict[str, Any]:
        return self._outage.stats()


def _is_async_client(client: object) -> bool:
    """Whether ``client`` is a ``redis.asyncio`` client (its commands are coroutines)."""
    try:
        from resilience._redis_outage import is_async_client
    except ImportError:  # no redis package: a stand-in client, judged the same way
        return inspect.iscoroutinefunction(getattr(type(client), "execute_command", None))
    return is_async_client(client)


def _redis_client(storage: object) -> Any:
    """A redis client for a ``redis://`` URL (redis imported only now), or the client given."""
    if not isinstance(storage, str):
        return storage
    try:
        import redis  # noqa: F401  # optional: imported only when a Redis storage is configured
    except ImportError as exc:
        raise ImportError(
            "rate_limit(storage='redis://...') needs the redis package: pip install 'resilience[redis]'"
        ) from exc
    from resilience._redis_outage import sync_client

    return sync_client(storage)  # short timeouts: an outage must not hold every caller for long


@dataclass(frozen=True, slots=True)
class LimitConfig:
    """A rate limit's configuration (compared when two sites declare the same name)."""

    rate: float
    per: float = 1.0
    burst: float = 1.0
    wait: float = 0.0  # seconds a caller may wait for a token: 0 never, FOREVER as long as it takes
    storage: str = "memory"


class Limiter:
    """The shared state of one rate limit; get a named one with ``rs.rate_limit.get(name)``.

    ``drain(seconds)`` empties the bucket (a 429 from the dependency: back off),
    ``tokens`` reads it and ``stats()`` counts admitted, waited, limited and drained calls.
    """

    def __init__(self, name: str, config: LimitConfig, bucket: _Bucket, storage: object = None) -> None:
        self.name = name
        self.config = config
        self._bucket = bucket
        self._storage = storage
        self._lock = threading.Lock()
        self._admitted = 0
        self._waited = 0
        self._limited = 0
        self._drained = 0

    def __repr__(self) -> str:
        return f"<Limiter {self.name!r} {self.config.rate:g}/{self.config.per:g} s burst={self.config.burst:g}>"

    @property
    def interval(self) -> float:
        """Seconds between two tokens (``per / rate``)."""
        return self.config.per / self.config.rate

    @property
    def tokens(self) -> float:
        """Tokens in the bucket now (negative while callers hold reservations or after a drain)."""
        return self._bucket.tokens()

    def drain(self, seconds: float = 0.0) -> None:
        """Back off: empty the bucket and admit nothing for ``seconds`` more.

        Use it when the dependency says it is overloaded (a 429 and its Retry-After):
        every process sharing the limit then waits ``seconds``, after which tokens come
        back at the normal rate, from empty (the next call goes through after
        ``seconds + per / rate``). Callers already waiting for a reserved token queue
        again behind the drain when they wake, or fail with RateLimited if they may not
        wait that long. ``rs.rate_limit(..., drain_on=...)`` calls it for you.
        """
        check_seconds("seconds", seconds, allow_zero=True)
        self._bucket.drain(float(seconds))
        with self._lock:
            self._drained += 1

    def stats(self) -> dict[str, Any]:
        """A JSON-ready view: name, rate, per, burst, storage, tokens, admitted, waited
        (admitted after waiting for their token), limited (rejected) and drained.

        ``storage`` is ``{"backend": "memory"}`` or, in Redis, ``{"backend": "redis",
        "connected": bool, "outages": n}`` (outages this process has seen).
        """
        tokens = self._bucket.tokens()
        storage = self._bucket.storage()
        with self._lock:
            return {
                "name": self.name,
                "rate": self.config.rate,
                "per": self.config.per,
                "burst": self.config.burst,
                "storage": storage,
                "tokens": round(tokens, 6),
                "admitted": self._admitted,
                "waited": self._waited,
                "limited": self._limited,
                "drained": self._drained,
            }

    def reset(self) -> None:
        """Zero the counters and refill a memory bucket (a Redis bucket, shared with other
        processes, is left as it is)."""
        with self._lock:
            self._admitted = self._waited = self._limited = self._drained = 0
        self._bucket.refill()

    # admission
    def _patience(self, start: float) -> tuple[float, str]:
        """How long a caller that arrived at ``start`` may still wait for a token: what is
        left of ``wait``, cut short by the deadline."""
        wait = self.config.wait
        if wait <= 0:
            return 0.0, ""
        now = _clock.monotonic()
        wait = max(wait - (now - start), 0.0)
        deadline = active_deadline()
        if deadline is not None:
            left = deadline - now
            if left < wait:
                return max(left, 0.0), f"the deadline leaves {max(left, 0.0):.3g} s"
        return wait, ""

    def _limited_unless(self, granted: bool, wait: float, reason: str) -> None:
        if granted:
            return
        with self._lock:
            self._limited += 1
        raise RateLimited(self.name, wait, reason)

    def _admit(self, waited: bool) -> None:
        with self._lock:
            self._admitted += 1
            if waited:
                self._waited += 1

    def acquire_sync(self) -> None:
        """Take a token, sleeping for a reserved one if allowed; raise RateLimited otherwise.

        A caller that wakes inside a drain made while it slept queues again behind the drain."""
        start = _clock.monotonic()
        patience, reason = self._patience(start)
        if patience > 0 and asyncio._get_running_loop() is not None:
            patience, reason = 0.0, "a def call inside a running event loop cannot wait without blocking it"
        bucket = self._bucket
        granted, wait, ticket = bucket.take(patience)
        self._limited_unless(granted, wait, reason)
        waited = wait > 0
        while wait > 0:
            try:
                _clock.sleep(wait)
                drained = bucket.drained_for()
            except BaseException:
                bucket.refund(ticket)  # back to whoever comes next, unless someone reserved after it
                raise
            if drained <= 0:
                break
            patience, reason = self._patience(start)
            granted, wait, ticket = bucket.take(patience)  # the old reservation is void: the drain took it
            self._limited_unless(granted, wait, reason or "the bucket was drained while this call waited")
        self._admit(waited)

    async def acquire_async(self) -> None:
        """Take a token, awaiting a reserved one if allowed; raise RateLimited otherwise.

        A caller that wakes inside a drain made while it slept queues again behind the drain."""
        start = _clock.monotonic()
        patience, reason = self._patience(start)
        bucket = self._bucket
        granted, wait, ticket = await self._take_async(patience)
        self._limited_unless(granted, wait, reason)
        waited = wait > 0
        while wait > 0:
            try:
                await _clock.asleep(wait)
                drained = await asyncio.to_thread(bucket.drained_for) if bucket.blocking else bucket.drained_for()
            except BaseException:
                await self._refund_async(ticket)
                raise
            if drained <= 0:
                break
            patience, reason = self._patience(start)
            granted, wait, ticket = await self._take_async(patience)
            self._limited_unless(granted, wait, reason or "the bucket was drained while this call waited")
        self._admit(waited)

    async def _take_async(self, patience: float) -> tuple[bool, float, Ticket]:
        """``bucket.take``; in a thread for a blocking bucket, where a cancelled caller waits
        for the take to finish and gives back what it took."""
        bucket = self._bucket
        if not bucket.blocking:
            return bucket.take(patience)
        taking = asyncio.ensure_future(asyncio.to_thread(bucket.take, patience))
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:
            await _finish(taking)
            if not taking.cancelled() and taking.exception() is None:
                granted, _, ticket = taking.result()
                if granted:
                    await self._refund_async(ticket)
            raise

    async def _refund_async(self, ticket: Ticket) -> None:
        bucket = self._bucket
        if not bucket.blocking:
            bucket.refund(ticket)
            return
        if await _finish(asyncio.ensure_future(asyncio.to_thread(bucket.refund, ticket))):
            raise asyncio.CancelledError


async def _finish(task: asyncio.Future[Any]) -> bool:
    """Wait for ``task`` to be done, through any cancellation (``task`` runs in a thread, so
    it ends on its own, within the Redis client's timeouts); True if cancelled meanwhile."""
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    return cancelled


@dataclass(frozen=True, slots=True, eq=False)
class RateLimit(Layer):
    """A rate-limit layer; build it with :func:`rs.rate_limit`. ``limiter`` is its state."""

    limiter: Limiter
    drain_on: Classifier | None = None
    anonymous: bool = False

    def __repr__(self) -> str:
        config = self.limiter.config
        wait = "True" if config.wait >= FOREVER else f"{config.wait:g}" if config.wait else "False"
        storage = "" if config.storage == "memory" else ", storage='redis'"
        return (
            f"rate_limit({self.limiter.name!r}, {config.rate:g}/{config.per:g} s, burst={config.burst:g}, "
            f"wait={wait}{storage})"
        )

    def bind(self, fn: Callable[..., Any]) -> None:
        if self.anonymous and self.limiter.name == "<anonymous>":
            self.limiter.name = call_name(fn)

    def _drain_seconds(self, outcome: Outcome) -> float | None:
        """Seconds to drain for when ``drain_on`` flags the outcome, else None."""
        assert self.drain_on is not None
        try:
            verdict = self.drain_on(outcome)
        except Exception:  # a classifier that raises must not change the call's outcome
            logger.exception("rate_limit %r: drain_on classifier raised; ignored", self.limiter.name)
            return None
        if verdict is None or not verdict.failed:
            return None
        return max(verdict.retry_after or 0.0, 0.0)

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        self.limiter.acquire_sync()
        if self.drain_on is None:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            seconds = self._drain_seconds(Outcome(None, exc))
            if seconds is not None:
                self.limiter.drain(seconds)
            raise
        seconds = self._drain_seconds(Outcome(result))
        if seconds is not None:
            self.limiter.drain(seconds)
        return result

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        await self.limiter.acquire_async()
        if self.drain_on is None:
            return await fn(*args, **kwargs)
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            seconds = self._drain_seconds(Outcome(None, exc))
            if seconds is not None:
                await self._drain_async(seconds)
            raise
        seconds = self._drain_seconds(Outcome(result))
        if seconds is not None:
            await self._drain_async(seconds)
        return result

    async def _drain_async(self, seconds: float) -> None:
        if self.limiter._bucket.blocking:
            await asyncio.to_thread(self.limiter.drain, seconds)
        else:
            self.limiter.drain(seconds)


limiters: NamedRegistry[Limiter] = NamedRegistry("rate_limit")


def _check_rate(parameter: str, value: object, minimum: float, strict: bool) -> float:
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{parameter} must be a number {bound}, got {value!r}")
    if not math.isfinite(value) or (value <= minimum if strict else value < minimum):
        raise ValueError(f"{parameter} must be a finite number {bound}, got {value!r}")
    return float(value)


class _RateLimitFactory(NamedFactory[Limiter]):
    """``rs.rate_limit(rate, per=1.0, *, burst=None, wait=False, name=None, storage=None,
    drain_on=None)``: at most ``rate`` calls per ``per`` seconds (a token bucket).

    - ``burst``: how many calls may go at once after a quiet spell (the bucket's size;
      default ``max(1, rate)``). Tokens come back one every ``per / rate`` seconds.
    - ``wait=False``: a call without a token fails at once with :class:`rs.RateLimited`
      (``retry_after`` says when a token is due); it never started. ``wait=True``: it
      waits for its token (callers are served in order), unless the token is not due
      before the enclosing deadline, in which case it fails at once without waiting.
      A drain made while it waits holds it until the drain ends (or fails it with
      RateLimited if that is further than it may wait).
      ``wait=2.5``: waits at most 2.5 s. A ``def`` call inside a running event loop
      never waits (it would block the loop).
    - ``name``: limits are shared by name (``rs.rate_limit.get(name)`` returns the
      :class:`Limiter`); ``None`` gives the layer object a bucket of its own.
    - ``storage="redis://host:6379/0"`` (or a sync ``redis.Redis`` client; a
      ``redis.asyncio`` one is a TypeError) keeps the bucket in
      Redis under ``resilience:rate_limit:<name>``: every process using the name shares one
      limit, updated atomically by a Lua script on the Redis server's clock. Needs
      ``name``. Redis unreachable: each process limits from a local bucket of the same
      configuration (one WARNING per outage, ``stats()["storage"]["outages"]``), tries
      Redis again at most once a second and shares the Redis bucket again once it answers.
    - ``drain_on``: outcomes (exception classes, predicates, classifiers) that mean
      "slow down", such as a 429: the bucket is drained for the verdict's
      ``retry_after`` (or just emptied), so the next calls back off. By hand:
      ``limiter.drain(seconds)``.

    The memory bucket runs on the resilience clock, so a fake clock drives it in tests.

    >>> import resilience as rs
    >>> @rs.rate_limit(10, per=1.0, name="search-api")
    ... def search(q: str) -> list[str]:
    ...     return [q]
    >>> search("x"), rs.rate_limit.get("search-api").stats()["admitted"]
    (['x'], 1)
    """

    def __call__(
        self,
        rate: float,
        per: float = 1.0,
        *,
        burst: float | None = None,
        wait: bool | float = False,
        name: str | None = None,
        storage: object = None,
        drain_on: ClassifierLike | Sequence[ClassifierLike] | None = None,
    ) -> RateLimit:
        rate = _check_rate("rate", rate, 0.0, strict=True)
        check_seconds("per", per)
        burst = max(1.0, rate) if burst is None else _check_rate("burst", burst, 1.0, strict=False)
        if isinstance(wait, bool):
            patience = FOREVER if wait else 0.0
        else:
            if not isinstance(wait, (int, float)):
                raise TypeError(f"wait must be True, False or a number of seconds >= 0, got {wait!r}")
            check_seconds("wait", wait, allow_zero=True)
            patience = float(wait)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, got {name!r}")
        if name == "":
            raise ValueError("name must not be empty (None gives the layer a bucket of its own)")
        if storage is not None:
            if isinstance(storage, str):
                if not storage.startswith(("redis://", "rediss://", "unix://")):
                    raise ValueError(f"storage must be a redis://, rediss:// or unix:// URL, got {storage!r}")
            elif not hasattr(storage, "register_script"):
                raise TypeError(f"storage must be a redis:// URL or a redis.Redis client, got {storage!r}")
            elif _is_async_client(storage):
                raise TypeError(
                    "storage must be a redis:// URL or a sync redis.Redis client, got the asyncio client "
                    f"{type(storage).__module__}.{type(storage).__qualname__}: "
                    "the limit serves def and async def calls alike (async ones run the round trip in a thread)"
                )
            if name is None:
                raise ValueError("storage= needs name=: the name is the key every process shares")
        classifier = to_classifier(drain_on, parameter="drain_on") if drain_on not in (None, (), []) else None
        config = LimitConfig(float(rate), float(per), burst, patience, "memory" if storage is None else "redis")
        interval = config.per / config.rate

        def build(limiter_name: str) -> Limiter:
            bucket: _Bucket
            if storage is None:
                bucket = _MemoryBucket(burst, interval)
            else:
                bucket = _RedisBucket(_redis_client(storage), KEY_PREFIX + limiter_name, limiter_name, burst, interval)
            return Limiter(limiter_name, config, bucket, storage)

        if name is None:
            return RateLimit(build("<anonymous>"), classifier, anonymous=True)

        def conflict(limiter: Limiter) -> str | None:
            if limiter.config != config or (storage is not None and limiter._storage != storage):
                return f"with {limiter.config}; a second declaration must match it (got {config})"
            return None

        limiter = limiters.declare(
            name,
            lambda: build(name),
            lambda parked: parked.config == config and parked._storage == storage,
            conflict,
        )
        return RateLimit(limiter, classifier)


rate_limit = _RateLimitFactory(limiters)
