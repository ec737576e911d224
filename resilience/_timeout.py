"""``rs.timeout``: bound a call by a deadline (async cancellation, a worker thread, SIGALRM,
or cooperatively)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
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
from resilience.errors import DeadlineExceeded

R = TypeVar("R")
Mode = Literal["thread", "signal", "cooperative"]
MODES = ("thread", "signal", "cooperative")
MAX_SECONDS = 365 * 86_400.0  # beyond this, thread waits and itimers overflow


class _Job:
    """One call handed to a worker thread, with the caller's contextvars."""

    __slots__ = ("args", "context", "done", "error", "finished_at", "fn", "kwargs", "result", "state")

    def __init__(self, fn: Callable[..., Any], args: Args, kwargs: Kwargs) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.context = contextvars.copy_context()
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        # queued -> running -> finished; or "abandoned" (running, nobody waits) / "dropped" (never ran)
        self.state = "queued"
        self.finished_at = float("-inf")


class WorkerPool:
    """A bounded pool of daemon threads for ``mode="thread"`` timeouts.

    Daemon threads, unlike ``ThreadPoolExecutor``'s, never keep the interpreter from
    exiting while an abandoned call hangs. When every worker is busy, calls queue, and
    the time they wait counts against their own deadline; a call abandoned while still
    queued leaves the queue at once, with everything it held. So the queue never holds
    more than the callers currently waiting, and nothing waits forever.
    """

    def __init__(self, max_workers: int = 32, idle_seconds: float = 60.0) -> None:
        self.max_workers = max_workers
        self.idle_seconds = idle_seconds
        self._jobs: deque[_Job] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._threads = 0
        self._idle = 0
        self._abandoned_running = 0
        self._abandoned_total = 0
        self._completed = 0

    def submit(self, job: _Job) -> None:
        with self._ready:
            self._jobs.append(job)
            spawn = len(self._jobs) > self._idle and self._threads < self.max_workers
            if spawn:
                self._threads += 1
            self._ready.notify()
        if spawn:
            threading.Thread(target=self._work, name="resilience-timeout", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._idle += 1
                    notified = self._ready.wait(self.idle_seconds)
                    self._idle -= 1
                    if not notified and not self._jobs:
                        self._threads -= 1  # idle too long: let the thread go
                        return
                job = self._jobs.popleft()
                job.state = "running"
            self._run(job)
            job.done.set()

    def _run(self, job: _Job) -> None:
        try:
            job.result = job.context.run(job.fn, *job.args, **job.kwargs)
        except BaseException as exc:  # noqa: BLE001 -- handed to the waiting caller
            job.error = exc
        job.finished_at = _clock.monotonic()
        with self._ready:
            if job.state == "abandoned":
                self._abandoned_running -= 1
            job.state = "finished"
            self._completed += 1

    def abandon(self, job: _Job) -> bool:
        """Give up on ``job``; False when it finished meanwhile (its result is then used)."""
        with self._ready:
            if job.state == "finished":
                return False
            if job.state == "queued":
                self._jobs.remove(job)  # never started: it will not run at all
                job.state = "dropped"
            else:
                job.state = "abandoned"
                self._abandoned_running += 1
            self._abandoned_total += 1
            return True

    def stats(self) -> dict[str, int]:
        with self._ready:
            return {
                "max_workers": self.max_workers,
                "workers": self._threads,
                "busy": self._threads - self._idle,
                "queued": len(self._jobs),
                "abandoned": self._abandoned_running,
                "abandoned_total": self._abandoned_total,
                "completed": self._completed,
            }


pool = WorkerPool()


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
            job = _Job(fn, args, kwargs)  # copies the context, deadline included
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
        if abandoned or job.finished_at > deadline:
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
