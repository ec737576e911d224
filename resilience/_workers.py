"""A bounded pool of daemon worker threads, for sync timeouts and sync hedged attempts.

Timeouts use ``submit`` (a full pool queues the call, whose wait counts against its own
deadline); hedges use ``try_submit``, which never queues (see ``resilience._hedge``).
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from resilience import _clock
from resilience._engine import Args, Kwargs


class Job:
    """One call handed to a worker thread, with the caller's contextvars.

    ``done`` is set when it finishes; several jobs may share one event (a hedged call
    waits for whichever attempt ends first).
    """

    __slots__ = ("args", "context", "done", "ended", "error", "fn", "kwargs", "result", "started", "state")

    def __init__(self, fn: Callable[..., Any], args: Args, kwargs: Kwargs, done: threading.Event | None = None) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.context = contextvars.copy_context()
        self.done = done if done is not None else threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        # queued -> running -> finished; or "abandoned" (running, nobody waits) / "dropped" (never ran)
        self.state = "queued"
        self.started = _clock.monotonic()
        self.ended = math.inf


class WorkerPool:
    """A bounded pool of daemon threads for ``mode="thread"`` timeouts.

    Daemon threads, unlike ``ThreadPoolExecutor``'s, never keep the interpreter from
    exiting while an abandoned call hangs. When every worker is busy, calls queue, and
    the time they wait counts against their own deadline; a call abandoned while still
    queued leaves the queue at once, with everything it held. So the queue never holds
    more than the callers currently waiting, and nothing waits forever.
    """

    def __init__(
        self,
        max_workers: int = 32,
        idle_seconds: float = 60.0,
        *,
        thread_name: str = "resilience-worker",
        discard: Callable[[Any], None] | None = None,
    ) -> None:
        self.max_workers = max_workers
        self.idle_seconds = idle_seconds
        self.thread_name = thread_name
        self.discard = discard  # called on the result of a job that ends after it was abandoned
        self._jobs: deque[Job] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._threads = 0
        self._idle = 0
        self._abandoned_running = 0
        self._abandoned_total = 0
        self._completed = 0

    def submit(self, job: Job) -> None:
        with self._ready:
            self._jobs.append(job)
            spawn = len(self._jobs) > self._idle and self._threads < self.max_workers
            if spawn:
                self._threads += 1
            self._ready.notify()
        if spawn:
            threading.Thread(target=self._work, name=self.thread_name, daemon=True).start()

    def try_submit(self, job: Job, admit: Callable[[], bool] | None = None) -> bool | None:
        """Hand ``job`` to a worker that starts it at once (an idle one, or a new one within
        ``max_workers``), if ``admit()`` -- asked only then, under the pool's lock -- agrees.

        True when started; None when every worker is busy; False when ``admit()`` refused.
        Nothing is queued unless True. A job submitted this way never waits in the queue, so
        a caller waiting for it never waits for another caller's job to end: jobs that wait
        for jobs cannot deadlock the pool.
        """
        with self._ready:
            spawn = len(self._jobs) >= self._idle  # every idle worker already has a job to take
            if spawn and self._threads >= self.max_workers:
                return None
            if admit is not None and not admit():
                return False
            self._jobs.append(job)
            if spawn:
                self._threads += 1
            self._ready.notify()
        if spawn:
            threading.Thread(target=self._work, name=self.thread_name, daemon=True).start()
        return True

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

    def _run(self, job: Job) -> None:
        try:
            job.result = job.context.run(job.fn, *job.args, **job.kwargs)
        except BaseException as exc:  # noqa: BLE001 -- handed to the waiting caller
            job.error = exc
        job.ended = _clock.monotonic()
        with self._ready:
            abandoned = job.state == "abandoned"
            if abandoned:
                self._abandoned_running -= 1
            job.state = "finished"
            self._completed += 1
        if abandoned:  # nobody will read it: free what it holds
            if job.error is None and self.discard is not None:
                self.discard(job.result)
            job.result = job.error = None

    def abandon(self, job: Job) -> bool:
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
        """max_workers, workers, busy, queued, abandoned (still running after their caller
        gave up), abandoned_total, completed."""
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
