"""``rs.timeout``: bound a call by a deadline (async cancellation, a worker thread, SIGALRM,
or cooperatively)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from resilience import _clock
from resilience._engine import (
    Args,
    DeadlineScope,
    Kwargs,
    Layer,
    active_deadline,
    call_name,
    check_seconds,
    current_deadline,
    current_record,
)
from resilience._workers import Job, WorkerPool
from resilience.errors import DeadlineExceeded

_Job = Job  # the names tests and older code know

R = TypeVar("R")
Mode = Literal["thread", "signal", "cooperative"]
MODES = ("thread", "signal", "cooperative")
MAX_SECONDS = 365 * 86_400.0  # beyond this, thread waits and itimers overflow


pool = WorkerPool(thread_name="resilience-timeout")


@dataclass(frozen=True, slots=True, repr=False)
class Timeout(Layer):
    """A timeout layer; build it with :func:`timeout`."""

    seconds: float
    mode: Mode = "thread"
    kind: str = "timeout"  # what @monitored records: "timeout", or "total"/"attempt" in a Policy

    def __repr__(self) -> str:
        label = "" if self.kind == "timeout" else f" {self.kind}"
        return f"timeout({self.seconds:g} s{label}, mode={self.mode!r})"

    def _enter(self) -> tuple[float, float, float]:
        """Start the clock: (now, deadline, limit), the deadline never past an enclosing one."""
        now = _clock.monotonic()
        own = now + self.seconds
        outer = active_deadline()
        if outer is not None and outer < own:
            return now, outer, outer - now
        return now, own, self.seconds

    def _expired(self, fn: Callable[..., Any], start: float, deadline: float, limit: float) -> DeadlineExceeded:
        record = current_record.get()
        if record is not None:
            record.timeout_kind = self.kind
        now = _clock.monotonic()
        if limit <= 0:  # an enclosing deadline had already passed: say by how much
            return DeadlineExceeded(None, now - deadline, deadline=deadline, kind=self.kind, what=call_name(fn))
        return DeadlineExceeded(limit, now - start, deadline=deadline, kind=self.kind, what=call_name(fn))

    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        start, deadline, limit = self._enter()
        if limit <= 0:
            raise self._expired(fn, start, deadline, limit)
        scope = DeadlineScope(deadline, current_deadline.get())
        token = current_deadline.set(scope)
        try:
            if self.mode != "thread":
                try:
                    if self.mode == "cooperative":
                        return fn(*args, **kwargs)
                    return self._run_with_alarm(fn, args, kwargs, start, deadline, limit)
                finally:
                    scope.active = False
            job = Job(fn, args, kwargs)  # copies the context, deadline included
        finally:
            current_deadline.reset(token)
        pool.submit(job)
        try:
            finished = _clock.current.wait(job.done, deadline - _clock.monotonic())
        except BaseException:  # e.g. KeyboardInterrupt while waiting: nobody waits for it now
            pool.abandon(job)
            raise
        abandoned = not finished and pool.abandon(job)
        if not abandoned:
            scope.active = False  # an abandoned worker keeps its (passed) deadline on purpose
        if abandoned or job.ended > deadline:
            # Abandoned, or finished only after the deadline (a fake clock can make a late
            # job finish before its caller wakes): either way the call ran out of time.
            raise self._expired(fn, start, deadline, limit)
        if job.error is not None:
            error, job.error = job.error, None  # drop the job's reference: no cycle via the traceback
            raise error
        return job.result  # type: ignore[no-any-return]

    def _run_with_alarm(
        self, fn: Callable[..., R], args: Args, kwargs: Kwargs, start: float, deadline: float, limit: float
    ) -> R:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                f"rs.timeout(mode='signal') needs the main thread (SIGALRM), but {call_name(fn)} "
                f"was called in thread {threading.current_thread().name!r}; use mode='thread' "
                "or mode='cooperative'"
            )
        fired = False

        def on_alarm() -> None:
            nonlocal fired
            if not fired:
                fired = True
                raise self._expired(fn, start, deadline, limit)

        disarm = _clock.current.alarm(limit, on_alarm)
        try:
            return fn(*args, **kwargs)
        finally:
            fired = True  # an alarm that lands now must not raise out of the finally
            disarm()

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        start, deadline, limit = self._enter()
        if limit <= 0:
            raise self._expired(fn, start, deadline, limit)
        scope = DeadlineScope(deadline, current_deadline.get())
        token = current_deadline.set(scope)
        try:
            if self.mode == "cooperative":
                return await fn(*args, **kwargs)
            task = asyncio.current_task()
            assert task is not None, "an async timeout runs inside a task"
            cancelling = task.cancelling()
            fired = False

            def on_deadline() -> None:
                nonlocal fired
                fired = True
                task.cancel()

            timer = _clock.current.call_later(limit, on_deadline)
            try:
                result = await fn(*args, **kwargs)
            except asyncio.CancelledError:
                # Ours only if we fired and no one else also cancelled the task.
                if fired and task.uncancel() <= cancelling:
                    raise self._expired(fn, start, deadline, limit) from None
                raise
            except BaseException:
                if fired:  # the callee turned our cancellation into another error: give it back
                    task.uncancel()
                raise
            finally:
                timer.cancel()
            if fired:  # the callee swallowed our cancellation and finished: keep its result
                task.uncancel()
            return result
        finally:
            scope.active = False
            current_deadline.reset(token)


class _TimeoutFactory:
    """``rs.timeout(seconds, *, mode="thread")``: fail a call that runs past ``seconds``.

    - ``async def``: the coroutine is cancelled at the deadline; once the cancellation has
      finished, :class:`rs.DeadlineExceeded` is raised. ``mode`` is ignored except
      ``"cooperative"``, which only sets the deadline.
    - ``def``, ``mode="thread"`` (default): the call runs in a shared, bounded pool of
      worker threads, with the caller's contextvars. At the deadline the caller gets
      ``DeadlineExceeded`` and the worker is abandoned (Python cannot kill a thread); it
      is counted in ``rs.timeout.stats()`` until it finishes.
    - ``mode="signal"``: SIGALRM interrupts the call; main thread only.
    - ``mode="cooperative"``: no thread, nothing interrupted: the deadline is set for
      deadline-aware code (retries, ``resilience.http.Session``, ``rs.deadline.check()``).

    Nested timeouts never extend an enclosing deadline. ``seconds`` is float seconds > 0.

    >>> import resilience as rs
    >>> @rs.timeout(2.5)
    ... def fetch() -> str:
    ...     return "done"
    >>> fetch()
    'done'
    """

    def __call__(self, seconds: float, *, mode: Mode = "thread") -> Timeout:
        check_seconds("seconds", seconds)
        if seconds > MAX_SECONDS:
            raise ValueError(f"seconds must be at most {MAX_SECONDS:.0f} (about a year), got {seconds!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
        return Timeout(float(seconds), mode)

    def stats(self) -> dict[str, int]:
        """The worker pool: max_workers, workers, busy, queued, abandoned (still running
        after their caller gave up), abandoned_total, completed."""
        return pool.stats()

    def configure(self, *, max_workers: int) -> None:
        """Set the worker pool's bound (default 32 threads)."""
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        pool.max_workers = max_workers

    def __repr__(self) -> str:
        return "rs.timeout"


timeout = _TimeoutFactory()
