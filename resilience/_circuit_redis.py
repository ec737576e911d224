"""A breaker whose state lives in Redis, shared by every process using the same name.

``rs.circuit(name, storage="redis://host:port/db")`` (or a ``redis.Redis`` client, or a
``redis.asyncio.Redis`` client for async functions). Imported only when a Redis storage is
asked for: ``import resilience`` never imports redis.

Why not pybreaker's ``CircuitRedisStorage``: it reads and writes the state, the failure
counter and the opening time as separate commands, so two processes can both see
"closed, 4 failures" and both open the breaker, or both take the only half-open trial;
and it stores the opening time from each host's own clock. Here every decision (admit a
call, record an outcome, change the state by hand) is one Lua script, so it is atomic;
the scripts read the time from Redis (``TIME``), never from the hosts; every key expires
a day after the breaker was last used (plus any open time left).

Keys, with a hash tag so a cluster keeps them in one slot::

    resilience:circuit:{name}          hash: state, generation, open-until, consecutive
                                       failures, re-openings, half-open trial slots and results
    resilience:circuit:{name}:window   hash: window totals and time buckets (or the ring position)
    resilience:circuit:{name}:calls    string: the count window's ring, one byte per call

The generation lives in Redis too, so an outcome admitted before any transition made by
any process is ignored. Each process keeps a *mirror* of the last state it saw; its
listeners hear every change it sees, once.

Redis unreachable: the breaker serves from local state (seeded from the mirror: an open
breaker stays open for the time it had left), logs one WARNING per outage, counts it in
``stats()["storage"]``, tries Redis again at most every ``RESYNC_INTERVAL`` seconds and,
when Redis answers, takes the shared state back (what happened locally meanwhile is not
merged).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from resilience import _clock
from resilience._circuit import (
    IGNORED,
    STATE_CLOSED,
    STATE_FORCED_OPEN,
    STATE_HALF_OPEN,
    STATE_OPEN,
    SUCCESS,
    TRIALS_BUSY_RETRY_AFTER,
    Breaker,
    logger,
)
from resilience._circuit_rules import BUCKETS, MAX_OPEN, BreakerConfig, window_stats
from resilience._engine import is_async_callable
from resilience._pybreaker import pybreaker
from resilience._redis_outage import REDIS_ERRORS, RESYNC_INTERVAL, Outage, async_client, is_async_client, sync_client
from resilience.classify import Classifier, Outcome
from resilience.errors import CircuitOpenError

KEY_PREFIX = "resilience:circuit:"
KEY_TTL = 24 * 3600.0  # seconds an untouched breaker's keys live (plus its window and open time left)

# One script for every operation: ARGV[1] is the operation, ARGV[2..15] the configuration,
# the rest the operation's arguments. It returns the status the process mirrors:
# {state, generation, open time left (us; -1 forced open), consecutive failures,
#  window calls, failures, slow, times opened, trials admitted, trials succeeded,
#  admitted (acquire), wait (us, when rejected; -1 forever), trials were hung (acquire)}.
# The trip rules are BreakerConfig.tripped and .trial_verdict, in Lua: keep them in step.
SCRIPT = """
local S, W, RING = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]
local HALF, RESET, BACKOFF, MAXOPEN = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local FAILMAX, FRATE, SRATE, MINCALLS = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local NCALLS, BUCKET, NB, BUSY = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local TTL, WINDOWED = tonumber(ARGV[14]), ARGV[15] == '1'

if redis.replicate_commands then redis.replicate_commands() end  -- Redis < 5: TIME before writes
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function int(n) return string.format('%d', math.floor(n)) end

local h = redis.call('HMGET', S, 'st', 'gen', 'until', 'fails', 'opened', 'reopens',
  'tr', 'tok', 'tfail', 'tslow', 'hs', 'ta')
local st = h[1]
local function n(i) return tonumber(h[i] or '0') end
local gen, untl, fails, opened, reopens = n(2), n(3), n(4), n(5), n(6)
local tr, tok, tfail, tslow, hs = n(7), n(8), n(9), n(10), n(11)
-- admission times (us) of the half-open trials in flight, oldest first: "t1,t2,"; which
-- trial finished is unknown, so a finished one removes the oldest (never presumed hung early)
local ta = h[12] or ''
if not st then
  -- new, expired or lost in a restart: a closed breaker whose generations start at the
  -- Redis time, so they keep growing across a restart
  st, gen = 'closed', now
  redis.call('DEL', W, RING)
  redis.call('HSET', S, 'st', st, 'gen', int(gen))
end

local function move(new)
  gen = redis.call('HINCRBY', S, 'gen', 1)
  st, tr, tok, tfail, tslow, hs, ta = new, 0, 0, 0, 0, now, ''
  redis.call('HSET', S, 'st', new, 'tr', 0, 'tok', 0, 'tfail', 0, 'tslow', 0, 'hs', int(now), 'ta', '')
end

local function open_now(r)
  move('open')
  local period = RESET
  if r > 0 then period = RESET * BACKOFF ^ r end
  if period > MAXOPEN then period = MAXOPEN end
  untl, reopens = math.floor(now + period), r
  opened = redis.call('HINCRBY', S, 'opened', 1)
  redis.call('HSET', S, 'until', int(untl), 'reopens', r)
end

local function close_now()
  move('closed')
  fails, reopens = 0, 0
  redis.call('HSET', S, 'fails', 0, 'reopens', 0)
  redis.call('DEL', W, RING)
end

-- time window: forget the buckets that left it; returns the current bucket's slot
local function advance()
  local idx = math.floor(now / BUCKET)
  local head = tonumber(redis.call('HGET', W, 'h') or '-1')
  if head < 0 or idx - head >= NB then
    redis.call('DEL', W)
    redis.call('HSET', W, 'h', int(idx))
  elseif idx > head then
    local c, f, s = 0, 0, 0
    for j = head + 1, idx do
      local k = int(j % NB)
      local v = redis.call('HMGET', W, 'c' .. k, 'f' .. k, 's' .. k)
      c = c + tonumber(v[1] or '0')
      f = f + tonumber(v[2] or '0')
      s = s + tonumber(v[3] or '0')
      redis.call('HDEL', W, 'c' .. k, 'f' .. k, 's' .. k)
    end
    -- int(): Redis refuses the "-0" that Lua would send for a negated zero
    redis.call('HINCRBY', W, 'C', int(-c))
    redis.call('HINCRBY', W, 'F', int(-f))
    redis.call('HINCRBY', W, 'S', int(-s))
    redis.call('HSET', W, 'h', int(idx))
  else
    idx = head
  end
  return int(idx % NB)
end

local function add(failed, slow)
  if NCALLS > 0 then
    -- count window: one byte per call, 1 ok, 2 failed, 3 slow, 4 slow and failed
    local code = 1
    if failed then code = code + 1 end
    if slow then code = code + 2 end
    local slot = int((redis.call('HINCRBY', W, 'p', 1) - 1) % NCALLS)
    local old = redis.call('GETRANGE', RING, slot, slot)
    local o = 0
    if old ~= '' then o = string.byte(old) end
    if o > 0 then
      redis.call('HINCRBY', W, 'C', -1)
      if o == 2 or o == 4 then redis.call('HINCRBY', W, 'F', -1) end
      if o >= 3 then redis.call('HINCRBY', W, 'S', -1) end
    end
    redis.call('SETRANGE', RING, slot, string.char(code))
  else
    local k = advance()
    redis.call('HINCRBY', W, 'c' .. k, 1)
    if failed then redis.call('HINCRBY', W, 'f' .. k, 1) end
    if slow then redis.call('HINCRBY', W, 's' .. k, 1) end
  end
  redis.call('HINCRBY', W, 'C', 1)
  if failed then redis.call('HINCRBY', W, 'F', 1) end
  if slow then redis.call('HINCRBY', W, 'S', 1) end
end

local function totals()
  if not WINDOWED then return 0, 0, 0 end
  local v = redis.call('HMGET', W, 'C', 'F', 'S')
  return tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0')
end

local admit, wait, hung = 0, 0, 0
if op == 'acquire' then
  if st == 'forced-open' then
    wait = -1
  elseif st == 'open' then
    if untl > now then wait = untl - now else move('half-open') end
  else
    admit = 1
  end
  if st == 'half-open' then
    admit = 0
    if tr >= HALF and now - (tonumber(string.match(ta, '^(%d+)')) or hs) >= RESET then
      -- the oldest trial in flight is presumed hung: a new generation frees the slots of
      -- those in flight and ignores their results; the finished trials' results are kept
      gen = redis.call('HINCRBY', S, 'gen', 1)
      tr, ta = tok + tfail, ''
      redis.call('HSET', S, 'tr', tr, 'ta', '')
      hung = 1
    end
    if tr >= HALF then
      wait = BUSY
    else
      tr = redis.call('HINCRBY', S, 'tr', 1)
      ta = ta .. int(now) .. ','
      redis.call('HSET', S, 'ta', ta)
      admit = 1
    end
  end
elseif op == 'record' then
  if tonumber(ARGV[16]) == gen then
    local kind, slow = ARGV[17], ARGV[18] == '1'
    if st == 'half-open' then
      ta = string.gsub(ta, '^%d+,', '', 1)
      redis.call('HSET', S, 'ta', ta)
      if kind == 'i' then
        if tr > 0 then tr = redis.call('HINCRBY', S, 'tr', -1) end
      else
        if kind == 'f' then
          tfail = redis.call('HINCRBY', S, 'tfail', 1)
        else
          tok = redis.call('HINCRBY', S, 'tok', 1)
        end
        if slow then tslow = redis.call('HINCRBY', S, 'tslow', 1) end
        local reopen
        if FRATE < 0 then reopen = tfail > 0 else reopen = tfail / HALF >= FRATE end
        if not reopen and SRATE >= 0 then reopen = tslow / HALF >= SRATE end
        if reopen then
          open_now(reopens + 1)
        else
          local rest = HALF - tok - tfail
          local close
          if FRATE < 0 then close = rest <= 0 else close = (tfail + rest) / HALF < FRATE end
          if close and SRATE >= 0 then close = (tslow + rest) / HALF < SRATE end
          if close then close_now() end
        end
      end
    elseif kind ~= 'i' and (st == 'closed' or st == 'metrics-only') then
      local failed = kind == 'f'
      local trip = false
      if failed then
        fails = redis.call('HINCRBY', S, 'fails', 1)
        trip = FAILMAX > 0 and fails >= FAILMAX
      elseif fails > 0 then
        fails = 0
        redis.call('HSET', S, 'fails', 0)
      end
      if WINDOWED then
        add(failed, slow)
        local c, f, s = totals()
        if not trip and c >= MINCALLS and c > 0 then
          trip = (FRATE >= 0 and f / c >= FRATE) or (SRATE >= 0 and s / c >= SRATE)
        end
      end
      if trip and st == 'closed' then open_now(0) end
    end
  end
elseif op == 'force' then
  local new = ARGV[16]
  if new == 'open' then
    open_now(reopens)
  elseif new == 'closed' then
    close_now()
  elseif new == 'reset' then
    close_now()
    opened = 0
    redis.call('HSET', S, 'opened', 0)
  else
    move(new)
  end
elseif op == 'read' and WINDOWED and NCALLS == 0 then
  advance()
end

local left = 0
if st == 'open' then
  left = math.max(untl - now, 0)
elseif st == 'forced-open' then
  left = -1
end
local ttl = TTL
if left > 0 then ttl = ttl + math.ceil(left / 1000) end
redis.call('PEXPIRE', S, ttl)
if WINDOWED then
  redis.call('PEXPIRE', W, ttl)
  redis.call('PEXPIRE', RING, ttl)
end
local c, f, s = totals()
return {st, gen, left, fails, c, f, s, opened, tr, tok, admit, wait, hung}
"""


class _Reply(NamedTuple):
    state: str
    generation: int
    open_left: int  # microseconds; -1 while forced open
    fails: int
    window: tuple[int, int, int]
    opened: int
    trials: int
    successes: int
    admitted: bool
    wait: int  # microseconds; -1: until changed by hand
    hung: bool


def _parse(raw: Sequence[Any]) -> _Reply:
    state = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
    n = [int(value) for value in raw[1:]]
    return _Reply(state, n[0], n[1], n[2], (n[3], n[4], n[5]), n[6], n[7], n[8], bool(n[9]), n[10], bool(n[11]))


@dataclass(slots=True)
class _Seen:
    """The last shared state this process saw."""

    state: str = STATE_CLOSED
    generation: int = -1
    open_until: float = 0.0  # on this process's monotonic clock
    fails: int = 0
    window: tuple[int, int, int] = (0, 0, 0)
    opened: int = 0
    trials: int = 0
    successes: int = 0


def _micros(seconds: float) -> str:
    return str(max(1, round(seconds * 1e6)))


def _script_args(config: BreakerConfig) -> list[str]:
    """ARGV[2..15] of the script, from the breaker's configuration."""
    rate = "-1" if config.failure_rate is None else repr(config.failure_rate)
    slow_rate = "-1" if config.slow_rate is None else repr(config.slow_rate)
    longest = MAX_OPEN if config.max_reset_timeout is None else config.max_reset_timeout
    return [
        str(config.half_open_calls),
        _micros(config.reset_timeout),
        repr(config.reset_backoff),
        _micros(longest),
        str(config.fail_max or 0),
        rate,
        slow_rate,
        str(config.min_calls),
        str(config.window_calls or 0),
        _micros(config.window / BUCKETS),
        str(BUCKETS),
        _micros(min(TRIALS_BUSY_RETRY_AFTER, config.reset_timeout)),
        str(round((KEY_TTL + config.window) * 1000)),
        "1" if config.windowed else "0",
    ]


class RedisBreaker(Breaker):
    """A :class:`Breaker` whose state, windows and half-open trial slots live in Redis."""

    awaits = True

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        *,
        counts: Classifier | None = None,
        exclude: Classifier | None = None,
        listeners: Sequence[pybreaker.CircuitBreakerListener] = (),
        connection: Any,
    ) -> None:
        # The inherited in-memory machinery is the local state served during an outage.
        super().__init__(name, config, counts=counts, exclude=exclude, listeners=listeners)
        self._storage_arg = connection
        self._url: str | None = None
        self._sync_script: Any = None
        self._async_script: Any = None  # for a given redis.asyncio client
        self._loop_scripts: dict[asyncio.AbstractEventLoop, tuple[Any, AsyncGenerator[None, None]]] = {}
        if isinstance(connection, str):
            self._url = connection
            self._sync_script = sync_client(connection).register_script(SCRIPT)
        elif is_async_client(connection):
            self._async_script = connection.register_script(SCRIPT)
        else:
            self._sync_script = connection.register_script(SCRIPT)
        self._args = _script_args(config)
        self._outage = Outage("circuit", name, RESYNC_INTERVAL)
        self._remote_lock = self._outage.lock  # also guards the mirror
        self._seen = _Seen()
        self._background: set[asyncio.Future[_Reply]] = set()  # round trips nobody awaits any more

    # plumbing
    def _keys(self) -> list[str]:
        base = f"{KEY_PREFIX}{{{self.name}}}"
        return [base, f"{base}:window", f"{base}:calls"]

    def _run(self, op: str, *extra: str) -> _Reply:
        script = self._sync_script
        if script is None:
            raise TypeError(
                f"circuit {self.name!r} reaches Redis through a redis.asyncio client, which sync code cannot use: "
                "declare it with storage='redis://...' (both kinds) or a redis.Redis client"
            )
        return _parse(script(keys=self._keys(), args=[op, *self._args, *extra]))

    async def _arun(self, op: str, *extra: str) -> _Reply:
        script = self._async_script
        if script is None:
            script = await self._script_for_loop()
        return _parse(await script(keys=self._keys(), args=[op, *self._args, *extra]))

    async def _script_for_loop(self) -> Any:
        """The script on a client of the running event loop (redis.asyncio clients belong to one loop)."""
        if self._url is None:
            raise TypeError(
                f"circuit {self.name!r} reaches Redis through a sync redis.Redis client, which would block the "
                "event loop: declare it with storage='redis://...' (both kinds) or a redis.asyncio.Redis client"
            )
        loop = asyncio.get_running_loop()
        entry = self._loop_scripts.get(loop)
        if entry is None:
            # Loops closed without shutdown_asyncgens (new_event_loop + close) never ran the
            # closer: forget their clients (their sockets close when they are collected).
            for closed in [other for other in self._loop_scripts if other.is_closed()]:
                del self._loop_scripts[closed]
            client = async_client(self._url)
            closer = self._close_with_loop(loop, client)
            entry = self._loop_scripts[loop] = (client.register_script(SCRIPT), closer)
            await anext(closer)  # registered with the loop: asyncio.run closes the client when it ends
        return entry[0]

    async def _close_with_loop(self, loop: asyncio.AbstractEventLoop, client: Any) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            self._loop_scripts.pop(loop, None)
            await client.aclose()

    def check_callable(self, fn: Callable[..., Any]) -> None:
        if is_async_callable(fn):
            if self._url is None and self._async_script is None:
                raise TypeError(
                    f"circuit {self.name!r}: storage is a sync redis.Redis client, and {fn!r} is async; "
                    "use storage='redis://...' or a redis.asyncio.Redis client"
                )
        elif self._sync_script is None:
            raise TypeError(
                f"circuit {self.name!r}: storage is a redis.asyncio.Redis client, and {fn!r} is not async; "
                "use storage='redis://...' or a redis.Redis client"
            )

    def _observe(self, reply: _Reply) -> _Reply:
        """Mirror a reply; tell the listeners when the state this process knew has changed."""
        now = _clock.monotonic()
        with self._remote_lock:
            seen = self._seen
            outage = self._outage.end(now)
            if outage is not None:  # Redis answers again: its state replaces the local one
                known = self._storage.state
                with self._lock:
                    self._generation += 1  # outcomes of calls the local state admitted change nothing now
            elif reply.generation < seen.generation:
                return reply  # an older view that lost a race with a newer reply
            else:
                known = seen.state
            seen.state, seen.generation = reply.state, reply.generation
            seen.open_until = now + max(reply.open_left, 0) / 1e6
            seen.fails, seen.window, seen.opened = reply.fails, reply.window, reply.opened
            seen.trials, seen.successes = reply.trials, reply.successes
        if outage is not None:
            self._outage.log_back(outage, f"state from Redis: {reply.state}")
        if known != reply.state:
            self._announce([(known, reply.state)])
        return reply

    def _lost(self, exc: BaseException) -> None:
        """Redis did not answer: serve from local state, warning once per outage."""
        self._outage.lost(exc, self._seed)

    def _seed(self, now: float) -> str:
        """An outage begins (the mirror's lock held): the local state starts from the mirror."""
        seen = self._seen
        self._adopt(seen.state, max(seen.open_until - now, 0.0))
        return f"local state ({seen.state})"

    def _adopt(self, state: str, open_left: float) -> None:
        """Start the local state from the shared state last seen (no listener hears it: nothing changed)."""
        with self._lock:
            storage = self._storage
            storage.state = state
            storage.reset_counter()
            self._generation += 1
            self._trials = self._trial_successes = self._trial_failures = self._trial_slow = 0
            self._trial_starts.clear()
            self._opened_mono = _clock.monotonic() if state == STATE_OPEN else None
            if state == STATE_OPEN:
                storage.opened_at = self._opened_at = datetime.fromtimestamp(_clock.wall(), UTC)
            self._open_for = open_left
            if self._window is not None:
                self._window.clear()

    def _refresh(self) -> None:
        """Read the shared state into the mirror when Redis can be asked (sync client, no outage)."""
        if self._sync_script is None or (self._outage.down and not self._outage.probe_due()):
            return
        try:
            reply = self._run("read")
        except REDIS_ERRORS as exc:
            self._lost(exc)
            return
        self._observe(reply)

    # admission and outcomes
    def acquire(self) -> int:
        """Admit a call or raise CircuitOpenError; returns a token (negative: admitted by Redis)."""
        if self._outage.down and not self._outage.probe_due():
            return Breaker.acquire(self)
        try:
            reply = self._run("acquire")
        except REDIS_ERRORS as exc:
            self._lost(exc)
            return Breaker.acquire(self)
        return self._admit(reply)

    async def aacquire(self) -> int:
        """``acquire`` for async callers."""
        if self._outage.down and not self._outage.probe_due():
            return Breaker.acquire(self)
        # Shielded: a caller cancelled during the round trip must not leave a trial slot
        # taken by a call that never runs; the script's reply says whether to give it back.
        task = asyncio.ensure_future(self._arun("acquire"))
        try:
            reply = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._give_back)
            raise
        except REDIS_ERRORS as exc:
            self._lost(exc)
            return Breaker.acquire(self)
        return self._admit(reply)

    def _give_back(self, task: asyncio.Future[_Reply]) -> None:
        """An admission whose caller was cancelled has finished: return a trial slot it took."""
        reply = self._finished(task)
        if reply is not None and reply.admitted and reply.state == STATE_HALF_OPEN:
            args = self._record_args(-1 - reply.generation, IGNORED, False)
            background = asyncio.ensure_future(self._arun(*args))
            self._background.add(background)
            background.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[_Reply]) -> _Reply | None:
        """Mirror the reply of a round trip nobody awaits any more (None if it failed)."""
        self._background.discard(task)
        if task.cancelled():
            return None
        exc = task.exception()
        if exc is not None:
            if isinstance(exc, REDIS_ERRORS):
                self._lost(exc)
            return None
        return self._observe(task.result())

    def _admit(self, reply: _Reply) -> int:
        self._observe(reply)
        if reply.hung:
            logger.warning(
                "circuit %r: half-open trials did not finish within %.3g s; admitting new ones",
                self.name,
                self.config.reset_timeout,
                extra={"circuit": self.name},
            )
        if reply.admitted:
            return -1 - reply.generation  # local generations are >= 0: the two never mix
        with self._lock:
            self._rejected += 1
        raise CircuitOpenError(self.name, math.inf if reply.wait < 0 else reply.wait / 1e6)

    def succeeded(self, generation: int) -> None:
        """Record a success."""
        if generation >= 0:  # admitted by the local state during an outage
            if self._window is None:
                Breaker.succeeded(self, generation)
            else:
                self._apply(generation, SUCCESS, False)
            return
        if self.listeners:
            self._tell("success", self)
        if not self._outage.down:
            self._send(self._record_args(generation, SUCCESS, False))

    def record(self, generation: int, outcome: Outcome, duration: float | None = None) -> None:
        """Apply one finished call's outcome to the shared state (or the local one it was admitted by)."""
        if generation >= 0:
            Breaker.record(self, generation, outcome, duration)
            return
        kind, slow = self.classify(outcome, duration)
        self.tell_outcome(kind, outcome)
        if not self._outage.down:  # else it was admitted by Redis, which is gone: the outcome is dropped
            self._send(self._record_args(generation, kind, slow))

    async def arecord(self, generation: int, outcome: Outcome, duration: float | None = None) -> None:
        """``record`` for async callers."""
        if generation >= 0:
            Breaker.record(self, generation, outcome, duration)
            return
        kind, slow = self.classify(outcome, duration)
        self.tell_outcome(kind, outcome)
        if self._outage.down:
            return
        task = asyncio.ensure_future(self._arun(*self._record_args(generation, kind, slow)))
        try:
            reply = await asyncio.shield(task)  # a cancelled caller's outcome still reaches Redis
        except asyncio.CancelledError:
            task.add_done_callback(self._finished)
            raise
        except REDIS_ERRORS as exc:
            self._lost(exc)
            return
        self._observe(reply)

    @staticmethod
    def _record_args(token: int, kind: str, slow: bool) -> tuple[str, ...]:
        return ("record", str(-1 - token), kind[0], "1" if slow else "0")  # kind[0]: "f", "s" or "i"

    def _send(self, args: tuple[str, ...]) -> None:
        try:
            reply = self._run(*args)
        except REDIS_ERRORS as exc:
            self._lost(exc)
            return
        self._observe(reply)

    # read-only views: fresh from Redis when it answers, else the local state
    @property
    def state(self) -> str:
        """The shared state (the local one during an outage; with only a redis.asyncio client, the last seen)."""
        self._refresh()
        return self._storage.state if self._outage.down else self._seen.state

    current_state = state

    @property
    def fail_counter(self) -> int:
        """Consecutive failures counted while closed, by every process."""
        self._refresh()
        return self._storage.counter if self._outage.down else self._seen.fails

    @property
    def success_counter(self) -> int:
        """Successful trials in the current half-open period, in every process."""
        return self._trial_successes if self._outage.down else self._seen.successes

    @property
    def retry_after(self) -> float:
        """Seconds until a call would be admitted (see :attr:`Breaker.retry_after`)."""
        self._refresh()
        if self._outage.down:
            return super().retry_after
        return self._seen_retry_after()

    def _seen_retry_after(self) -> float:
        seen = self._seen
        if seen.state == STATE_OPEN:
            return max(seen.open_until - _clock.monotonic(), 0.0)
        if seen.state == STATE_FORCED_OPEN:
            return math.inf
        if seen.state == STATE_HALF_OPEN and seen.trials >= self.config.half_open_calls:
            return self._trials_busy_retry_after()
        return 0.0

    def stats(self) -> dict[str, Any]:
        """:meth:`Breaker.stats` of the shared state, plus ``storage``: backend, connected, outages.

        ``opened`` counts openings by every process; ``rejected`` this process's rejections.
        """
        self._refresh()
        if self._outage.down:
            stats = Breaker.stats(self)
        else:
            seen = self._seen
            retry_after = self._seen_retry_after()
            stats = {
                "name": self.name,
                "state": seen.state,
                "fail_counter": seen.fails,
                "fail_max": self.config.fail_max,
                "retry_after": None if math.isinf(retry_after) else round(retry_after, 6),
                "rejected": self._rejected,
                "opened": seen.opened,
            }
            if self._window is not None:
                stats["window"] = window_stats(*seen.window)
        stats["storage"] = self._outage.stats()
        return stats

    # manual control: in Redis, for every process
    def _force(self, state: str) -> None:
        try:
            reply = self._run("force", state)
        except REDIS_ERRORS as exc:
            self._lost(exc)
            Breaker._force(self, STATE_CLOSED if state == "reset" else state)
            return
        self._observe(reply)

    def reset(self) -> None:
        """Back to a new closed breaker, for every process: state, counters and statistics cleared."""
        if self._sync_script is not None:
            self._force("reset")
        else:  # only a redis.asyncio client: this process's view
            with self._remote_lock:
                self._seen = _Seen()
        with self._lock:
            if not self._outage.down:
                self._move(STATE_CLOSED)  # the local state, unseen while Redis answers
            self._rejected = 0
            self._opened = 0
