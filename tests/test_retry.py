"""``rs.retry_on``: what is retried, how long it waits, when it stops and what it reports."""

# House style reads `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import tenacity

import resilience as rs
from resilience import _clock, _retry
from resilience.classify import FATAL, Classifier, Outcome, Verdict, on_exception, on_result

WAIT_FIELDS = ("call_name", "attempt", "wait", "error_type")
# On the fake clock a body's sleep is instant in real time, so a thread-mode worker always
# finishes before its caller wakes; the alarm fires inside the sleep instead (async ignores it).
SYNC_MODE = "signal"


class Throttled(Exception):
    """A 429-like failure that a classifier reads a Retry-After from."""


def throttled_after(seconds: float) -> Classifier:
    """A classifier for Throttled asking to wait ``seconds`` (as a server's Retry-After would)."""

    def classify(outcome: Outcome) -> Verdict | None:
        if isinstance(outcome.exception, Throttled):
            return Verdict(failed=True, retryable=True, counts=False, reason="status_429", retry_after=seconds)
        return None

    return Classifier(classify, "throttled")


class Script:
    """Plays ``outcomes`` one per call (the last one repeats).

    Exception classes are raised as fresh instances, exception instances are raised as
    they are, anything else is returned. ``advance`` seconds of fake time pass in each call.
    """

    __name__ = "flaky"

    def __init__(self, *outcomes: Any, clock: rs.testing.FakeClock | None = None, advance: float = 0.0) -> None:
        self.outcomes = outcomes
        self.clock = clock
        self.advance = advance
        self.calls = 0
        self.raised: list[BaseException] = []
        self.started: list[float] = []

    def __call__(self) -> Any:
        item = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        self.started.append(_clock.monotonic())
        if self.clock is not None and self.advance:
            self.clock.advance(self.advance)
        if isinstance(item, type) and issubclass(item, BaseException):
            item = item(f"attempt {self.calls}")
        if isinstance(item, BaseException):
            self.raised.append(item)
            raise item
        return item


def notes(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", []))


# --- what is retried ---------------------------------------------------------------------


def test_retries_listed_exception_class(twin, clock):
    """An exception class in ``on`` is retried until the call succeeds."""
    script = Script(ConnectionError, ConnectionError, "ok")
    fn = rs.retry_on(ConnectionError, jitter=False)(twin.wrap(script))
    assert "ok" == twin.run(fn)
    assert 3 == script.calls


def test_retries_subclass_of_listed_exception(twin, clock):
    """A subclass of a class in ``on`` is retried too."""
    script = Script(ConnectionResetError, "ok")
    fn = rs.retry_on(ConnectionError)(twin.wrap(script))
    assert "ok" == twin.run(fn)
    assert 2 == script.calls


def test_unlisted_exception_propagates_at_once(twin, clock):
    """An exception not named by ``on`` is raised from the first attempt, without a note."""
    script = Script(ValueError, "ok")
    fn = rs.retry_on(ConnectionError)(twin.wrap(script))
    with pytest.raises(ValueError) as excinfo:
        twin.run(fn)
    assert 1 == script.calls
    assert [] == notes(excinfo.value)
    assert [] == clock.sleeps


def test_unlisted_exception_on_a_later_attempt_propagates(twin, clock):
    """A non-retryable failure after a retryable one stops retrying and surfaces as is."""
    script = Script(ConnectionError, KeyError, "ok")
    fn = rs.retry_on(ConnectionError, jitter=False)(twin.wrap(script))
    with pytest.raises(KeyError) as excinfo:
        twin.run(fn)
    assert 2 == script.calls
    assert script.raised[-1] is excinfo.value
    assert [0.5] == clock.sleeps


def test_retries_on_exception_predicate(twin, clock):
    """A predicate over the exception in ``on`` decides what is retried."""
    script = Script(RuntimeError("try again"), RuntimeError("try again"), "ok")
    fn = rs.retry_on(lambda exc: "again" in str(exc))(twin.wrap(script))
    assert "ok" == twin.run(fn)
    assert 3 == script.calls


def test_predicate_false_is_not_retried(twin, clock):
    """An exception the predicate rejects is raised from the first attempt."""
    script = Script(RuntimeError("fatal"), "ok")
    fn = rs.retry_on(lambda exc: "again" in str(exc))(twin.wrap(script))
    with pytest.raises(RuntimeError):
        twin.run(fn)
    assert 1 == script.calls


def test_retries_on_combined_classifier(twin, clock):
    """Classifiers combined with ``|`` in ``on`` retry both exceptions and returned values."""
    script = Script(KeyError, "503", "200")
    transient = on_exception(KeyError) | on_result(lambda value: value == "503")
    fn = rs.retry_on(transient, attempts=5)(twin.wrap(script))
    assert "200" == twin.run(fn)
    assert 3 == script.calls


def test_retries_on_plain_classifier_object(twin, clock):
    """A hand-written ``Classifier`` in ``on`` decides, including Retry-After."""
    script = Script(Throttled, "ok")
    fn = rs.retry_on(throttled_after(1.0))(twin.wrap(script))
    assert "ok" == twin.run(fn)
    assert [1.0] == clock.sleeps


def test_result_predicate_retries_returned_value(twin, clock):
    """``result=`` retries a returned value it flags (a returned "503")."""
    script = Script("503", "503", "200")
    fn = rs.retry_on(result=lambda value: value == "503", jitter=False)(twin.wrap(script))
    assert "200" == twin.run(fn)
    assert 3 == script.calls
    assert [0.5, 1.0] == clock.sleeps


def test_result_predicate_alongside_exceptions(twin, clock):
    """``on`` and ``result=`` together retry both kinds of failure."""
    script = Script(ConnectionError, "503", "200")
    fn = rs.retry_on(ConnectionError, result=lambda value: value == "503")(twin.wrap(script))
    assert "200" == twin.run(fn)
    assert 3 == script.calls


def test_returned_values_not_checked_without_result(twin, clock):
    """Without ``result=`` or a classifier, a returned value is never retried."""
    script = Script("503", "200")
    fn = rs.retry_on(ConnectionError)(twin.wrap(script))
    assert "503" == twin.run(fn)
    assert 1 == script.calls


def test_first_opinion_in_on_wins(twin, clock):
    """Matchers in ``on`` are consulted in the order given: a fatal classifier first is not overridden."""
    script = Script(ValueError, "ok")
    fn = rs.retry_on(on_exception(ValueError, verdict=FATAL), ValueError)(twin.wrap(script))
    with pytest.raises(ValueError):
        twin.run(fn)
    assert 1 == script.calls


def test_nothing_to_retry_on_is_type_error():
    """``rs.retry_on()`` with neither ``on`` nor ``result=`` is a TypeError."""
    with pytest.raises(TypeError, match="retry_on"):
        rs.retry_on()


# --- attempts ------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 2, 3, 5])
def test_attempts_counts_the_first_call(twin, clock, attempts):
    """``attempts=n`` makes at most n calls in all, the first one included."""
    script = Script(ConnectionError)
    fn = rs.retry_on(ConnectionError, attempts=attempts)(twin.wrap(script))
    with pytest.raises(ConnectionError):
        twin.run(fn)
    assert attempts == script.calls
    assert attempts - 1 == len(clock.sleeps)


def test_default_attempts_is_three(twin, clock):
    """By default a call is made at most three times."""
    script = Script(ConnectionError)
    fn = rs.retry_on(ConnectionError)(twin.wrap(script))
    with pytest.raises(ConnectionError):
        twin.run(fn)
    assert 3 == script.calls


def test_one_attempt_never_retries(twin, clock):
    """``attempts=1`` calls once and never sleeps."""
    script = Script(ConnectionError, "ok")
    fn = rs.retry_on(ConnectionError, attempts=1)(twin.wrap(script))
    with pytest.raises(ConnectionError):
        twin.run(fn)
    assert 1 == script.calls
    assert [] == clock.sleeps


def test_arguments_passed_to_every_attempt(twin, clock):
    """Every attempt gets the same positional and keyword arguments."""
    seen: list[tuple[Any, ...]] = []

    def body(a: int, *, b: str) -> str:
        seen.append((a, b))
        if len(seen) < 3:
            raise ConnectionError
        return f"{a}{b}"

    fn = rs.retry_on(ConnectionError)(twin.wrap(body))
    assert "1x" == twin.run(fn, 1, b="x")
    assert [(1, "x")] * 3 == seen


# --- backoff -------------------------------------------------------------------------------


def test_backoff_without_jitter_doubles_up_to_wait_max(twin, clock):
    """With jitter=False the waits are wait_initial * 2**n, capped at wait_max."""
    fn = rs.retry_on(ConnectionError, attempts=7, jitter=False)(twin.wrap(Script(ConnectionError)))
    with pytest.raises(ConnectionError):
        twin.run(fn)
    assert [0.5, 1.0, 2.0, 4.0, 8.0, 10.0] == clock.sleeps


def test_backoff_custom_initial_and_max(twin, clock):
    """wait_initial and wait_max set the first wait and the cap."""
    fn = rs.retry_on(ConnectionError, attempts=5, jitter=False, wait_initial=0.25, wait_max=1.5)
    with pytest.raises(ConnectionError):
        twin.run(fn(twin.wrap(Script(ConnectionError))))
    assert [0.25, 0.5, 1.0, 1.5] == clock.sleeps


def test_backoff_with_jitter_stays_under_cap(twin, clock):
    """With jitter every wait lies in [0, min(wait_max, wait_initial * 2**n)], and they vary."""
    events: list[rs.RetryEvent] = []
    fn = rs.retry_on(ConnectionError, attempts=7, on_retry=events.append)(twin.wrap(Script(ConnectionError)))
    for _ in range(20):
        with pytest.raises(ConnectionError):
            twin.run(fn)
    caps = [min(10.0, 0.5 * 2**n) for n in range(6)] * 20
    waits = [event.wait for event in events]
    assert len(caps) == len(waits)
    assert [] == [(wait, cap) for wait, cap in zip(waits, caps, strict=True) if not 0 <= wait <= cap]
    assert caps != waits


def test_wait_accepts_tenacity_strategy(twin, clock):
    """``wait=`` takes a tenacity wait strategy instead of the built-in backoff."""
    fn = rs.retry_on(ConnectionError, wait=tenacity.wait_fixed(2))(twin.wrap(Script(ConnectionError)))
    with pytest.raises(ConnectionError):
        twin.run(fn)
    assert [2.0, 2.0] == clock.sleeps


def test_wait_accepts_combined_tenacity_strategy(twin, clock):
    """Composed tenacity strategies (``+``) work as ``wait=``."""
    strategy = tenacity.wait_fixed(1) + tenacity.wait_incrementing(start=0, increment=2)
    fn = rs.retry_on(ConnectionError, attempts=4, wait=strategy)(twin.wrap(Script(ConnectionError)))
    with pytest.raises(ConnectionError):
        twin.run(fn)
    assert [1.0, 3.0, 5.0] == clock.sleeps


@pytest.mark.parametrize(
    "options",
    [{"wait": tenacity.wait_none()}, {"wait_initial": 0.0, "jitter": False}, {"wait_initial": 0.0}],
    ids=["wait_none", "zero_initial", "zero_initial_jitter"],
)
def test_zero_wait_never_sleeps(twin, clock, options):
    """A zero wait retries without calling sleep at all."""
    script = Script(ConnectionError, ConnectionError, "ok")
    fn = rs.retry_on(ConnectionError, **options)(twin.wrap(script))
    assert "ok" == twin.run(fn)
    assert 3 == script.calls
    assert [] == clock.sleeps


def test_no_wait_records_backoff(twin):
    """``rs.testing.no_wait()`` makes the backoff instant and records it."""
    with rs.testing.no_wait() as fake:
        fn = rs.retry_on(ConnectionError, jitter=False)(twin.wrap(Script(ConnectionError, ConnectionError, "ok")))
        assert "ok" == twin.run(fn)
    assert [0.5, 1.0] == fake.sleeps


# --- the happy path stays cheap ------------------------------------------------------------


def _no_tenacity(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tenacity state built")

    monkeypatch.setattr(_retry, "Retrying", refuse)
    monkeypatch.setattr(_retry, "AsyncRetrying", refuse)


def test_first_success_builds_no_tenacity_state(twin, clock, monkeypatch):
    """A call whose first attempt succeeds never constructs tenacity's Retrying/AsyncRetrying."""
    _no_tenacity(monkeypatch)
    fn = rs.retry_on(ConnectionError, result=lambda value: value == "503")(twin.wrap(Script("ok")))
    assert "ok" == twin.run(fn)


def test_first_non_retryable_failure_builds_no_tenacity_state(twin, clock, monkeypatch):
    """A first attempt that fails non-retryably raises without building tenacity state."""
    _no_tenacity(monkeypatch)
    fn = rs.retry_on(ConnectionError)(twin.wrap(Script(ValueError)))
    with pytest.raises(ValueError, match="attempt 1"):
        twin.run(fn)


# --- deadlines and Retry-After -------------------------------------------------------------


def test_scope_deadline_stops_before_sleeping_past_it(twin, clock):
    """Inside ``rs.deadline.scope`` a wait that would reach the deadline is not slept."""
    script = Script(ConnectionError)
    fn = rs.retry_on(ConnectionError, attempts=10, wait_initial=1.0, jitter=False)(twin.wrap(script))
    with rs.deadline.scope(3.5), pytest.raises(ConnectionError) as excinfo:
        twin.run(fn)
    assert [1.0, 2.0] == clock.sleeps
    assert 3 == script.calls
    assert 1 == len(notes(excinfo.value))
    assert "deadline" in notes(excinfo.value)[0]


def test_scope_deadline_never_starts_attempt_after_it(twin, clock):
    """Slow attempts inside a deadline: every attempt starts, and every wait ends, before it."""
    script = Script(ConnectionError, clock=clock, advance=2.0)
    fn = rs.retry_on(ConnectionError, attempts=10, jitter=False)(twin.wrap(script))
    with rs.deadline.scope(5.0) as deadline, pytest.raises(ConnectionError):
        twin.run(fn)
    assert 2 == script.calls
    assert [0.5] == clock.sleeps
    assert all(start < deadline for start in script.started)


def test_attempt_overrunning_deadline_stops_retrying(twin, clock):
    """An attempt that ends past the deadline is not followed by another, even with no wait."""
    script = Script(ConnectionError, clock=clock, advance=6.0)
    fn = rs.retry_on(ConnectionError, attempts=10, wait=tenacity.wait_none())(twin.wrap(script))
    with rs.deadline.scope(5.0), pytest.raises(ConnectionError):
        twin.run(fn)
    assert 1 == script.calls


def test_cooperative_timeout_bounds_retries(twin, clock):
    """An enclosing cooperative ``rs.timeout`` is a deadline the retries respect."""
    script = Script(ConnectionError, clock=clock, advance=1.0)
    inner = rs.retry_on(ConnectionError, attempts=10, jitter=False)(twin.wrap(script))
    fn = rs.timeout(4.0, mode="cooperative")(inner)
    with pytest.raises(ConnectionError):
        twin.run(fn)
    # t=0 call, t=1 sleep .5, t=1.5 call, t=2.5 sleep 1, t=3.5 call, t=4.5: past the deadline.
    assert 3 == script.calls
    assert [0.5, 1.0] == clock.sleeps
    assert all(start < 1_000.0 + 4.0 for start in script.started)


def test_retry_after_replaces_shorter_backoff(twin, clock):
    """A verdict's retry_after longer than the backoff is waited instead."""
    script = Script(Throttled)
    fn = rs.retry_on(throttled_after(4.0), jitter=False)(twin.wrap(script))
    with pytest.raises(Throttled):
        twin.run(fn)
    assert [4.0, 4.0] == clock.sleeps


def test_backoff_kept_when_longer_than_retry_after(twin, clock):
    """A retry_after shorter than the backoff does not shorten it."""
    script = Script(Throttled)
    fn = rs.retry_on(throttled_after(0.1), wait_initial=1.0, jitter=False)(twin.wrap(script))
    with pytest.raises(Throttled):
        twin.run(fn)
    assert [1.0, 2.0] == clock.sleeps


def test_retry_after_above_max_stops_at_once(twin, clock):
    """A retry_after above max_retry_after stops without sleeping; the note says what was asked."""
    script = Script(Throttled)
    fn = rs.retry_on(throttled_after(120.0), max_retry_after=60.0)(twin.wrap(script))
    with pytest.raises(Throttled) as excinfo:
        twin.run(fn)
    assert 1 == script.calls
    assert [] == clock.sleeps
    assert 1 == len(notes(excinfo.value))
    note = notes(excinfo.value)[0]
    assert re.search(r"\b120\b", note)
    assert "max_retry_after" in note


def test_retry_after_equal_to_max_is_waited(twin, clock):
    """A retry_after exactly at max_retry_after is still honoured."""
    script = Script(Throttled, "ok")
    fn = rs.retry_on(throttled_after(5.0), max_retry_after=5.0)(twin.wrap(script))
    assert "ok" == twin.run(fn)
    assert [5.0] == clock.sleeps


def test_retry_after_beyond_deadline_stops_at_once(twin, clock):
    """A retry_after longer than the time left before the deadline stops without sleeping."""
    script = Script(Throttled)
    fn = rs.retry_on(throttled_after(4.0))(twin.wrap(script))
    with rs.deadline.scope(3.0), pytest.raises(Throttled) as excinfo:
        twin.run(fn)
    assert 1 == script.calls
    assert [] == clock.sleeps
    assert 1 == len(notes(excinfo.value))
    assert "asked to wait 4 s" in notes(excinfo.value)[0]


# --- exhaustion ----------------------------------------------------------------------------


def test_exhaustion_reraises_last_exception_object(twin, clock):
    """When attempts run out, the very exception the last attempt raised surfaces."""
    script = Script(ConnectionError)
    fn = rs.retry_on(ConnectionError, jitter=False)(twin.wrap(script))
    with pytest.raises(ConnectionError) as excinfo:
        twin.run(fn)
    assert 3 == len(script.raised)
    assert script.raised[-1] is excinfo.value
    assert ("attempt 3",) == excinfo.value.args


def test_exhaustion_note_says_attempts_time_and_reason(twin, clock):
    """The re-raised exception carries one PEP 678 note: attempts made, time spent, why it stopped."""
    fn = rs.retry_on(ConnectionError, jitter=False)(twin.wrap(Script(ConnectionError)))
    with pytest.raises(ConnectionError) as excinfo:
        twin.run(fn)
    assert 1 == len(notes(excinfo.value))
    note = notes(excinfo.value)[0]
    assert "3 attempt" in note
    assert "1.5 s" in note
    assert "all 3 attempts failed" in note


def test_exhaustion_note_time_includes_first_attempt(twin, clock):
    """The time in the note covers the whole call, the first attempt included."""
    script = Script(ConnectionError, clock=clock, advance=1.0)
    fn = rs.retry_on(ConnectionError, jitter=False)(twin.wrap(script))
    with pytest.raises(ConnectionError) as excinfo:
        twin.run(fn)
    # three 1 s attempts plus waits of 0.5 s and 1 s
    assert "over 4.5 s" in notes(excinfo.value)[0]


def test_earlier_exceptions_get_no_note(twin, clock):
    """Only the surfacing exception is annotated; earlier attempts' exceptions are untouched."""
    script = Script(ConnectionError)
    fn = rs.retry_on(ConnectionError)(twin.wrap(script))
    with pytest.raises(ConnectionError):
        twin.run(fn)
    assert [[], []] == [notes(exc) for exc in script.raised[:-1]]


def test_exhaustion_does_not_chain_earlier_attempts(twin, clock):
    """The surfacing exception is unchanged: no implicit ``__context__`` pointing at attempt 1."""
    script = Script(ConnectionError)
    fn = rs.retry_on(ConnectionError)(twin.wrap(script))
    with pytest.raises(ConnectionError) as excinfo:
        twin.run(fn)
    assert None is excinfo.value.__context__
    assert None is excinfo.value.__cause__


def test_exhausted_retryable_value_is_returned(twin, clock):
    """A retryable returned value that exhausts the attempts is returned as is."""
    sentinel = {"status": 503}
    script = Script(sentinel)
    fn = rs.retry_on(result=lambda value: value["status"] == 503)(twin.wrap(script))
    assert sentinel is twin.run(fn)
    assert 3 == script.calls


def test_exhaustion_reraises_last_of_mixed_failures(twin, clock):
    """Exhaustion on a mixed history re-raises the last exception, not an earlier one."""
    script = Script(ConnectionResetError, ConnectionAbortedError)
    fn = rs.retry_on(ConnectionError)(twin.wrap(script))
    with pytest.raises(ConnectionAbortedError) as excinfo:
        twin.run(fn)
    assert script.raised[-1] is excinfo.value


# --- never retried -------------------------------------------------------------------------


@pytest.mark.parametrize("abort", [KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError])
def test_aborts_never_retried(twin, clock, abort):
    """Cancellation, KeyboardInterrupt, SystemExit and GeneratorExit propagate at once, even if named."""
    script = Script(abort, "ok")
    fn = rs.retry_on(BaseException, abort)(twin.wrap(script))
    with pytest.raises(abort):
        twin.run(fn)
    assert 1 == script.calls
    assert [] == clock.sleeps


@pytest.mark.parametrize("abort", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_abort_on_later_attempt_not_retried(twin, clock, abort):
    """An abort raised by a retry attempt propagates at once, un-annotated."""
    script = Script(ConnectionError, abort, "ok")
    fn = rs.retry_on(BaseException, jitter=False)(twin.wrap(script))
    with pytest.raises(abort) as excinfo:
        twin.run(fn)
    assert 2 == script.calls
    assert [] == notes(excinfo.value)


def test_async_cancellation_during_wait_propagates(clock, monkeypatch):
    """Cancelling an async call while it waits between attempts cancels it: no further attempt."""
    script = Script(ConnectionError, "ok")

    async def flaky() -> Any:
        return script()

    fn = rs.retry_on(ConnectionError)(flaky)

    async def main() -> None:
        waiting = asyncio.Event()

        async def hang(seconds: float) -> None:
            waiting.set()
            await asyncio.Event().wait()

        monkeypatch.setattr(clock, "asleep", hang)
        task = asyncio.ensure_future(fn())
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert 1 == script.calls


def test_open_circuit_not_retried_by_exception(twin, clock):
    """``rs.CircuitOpenError`` is never retried by ``retry_on(Exception)``."""
    script = Script(rs.CircuitOpenError("payments", 3.0), "ok")
    fn = rs.retry_on(Exception)(twin.wrap(script))
    with pytest.raises(rs.CircuitOpenError):
        twin.run(fn)
    assert 1 == script.calls


def test_open_circuit_not_retried_by_predicate(twin, clock):
    """A catch-all predicate does not retry an open circuit either."""
    script = Script(rs.CircuitOpenError("payments", 3.0), "ok")
    fn = rs.retry_on(lambda exc: True)(twin.wrap(script))
    with pytest.raises(rs.CircuitOpenError):
        twin.run(fn)
    assert 1 == script.calls


def test_open_circuit_named_waits_retry_after(twin, clock):
    """Naming CircuitOpenError in ``on`` retries it, waiting the breaker's retry_after."""
    script = Script(rs.CircuitOpenError("payments", 3.0), rs.CircuitOpenError("payments", 2.0), "ok")
    fn = rs.retry_on(rs.CircuitOpenError, jitter=False)(twin.wrap(script))
    assert "ok" == twin.run(fn)
    assert [3.0, 2.0] == clock.sleeps


def test_enclosing_deadline_exceeded_not_retried(twin, clock):
    """The enclosing deadline's own DeadlineExceeded is not retried by retry_on(TimeoutError)."""

    def body() -> str:
        clock.advance(6.0)
        rs.deadline.check()
        return "late"

    calls: list[float] = []

    def counted() -> str:
        calls.append(clock.monotonic())
        return body()

    fn = rs.retry_on(TimeoutError)(twin.wrap(counted))
    with rs.deadline.scope(5.0), pytest.raises(rs.DeadlineExceeded):
        twin.run(fn)
    assert 1 == len(calls)
    assert [] == clock.sleeps


def _slow(twin: Any, seconds: float, calls: list[int]) -> Callable[..., Any]:
    """A function of twin's flavour that counts its calls, then sleeps ``seconds`` on the resilience clock."""
    sleeper = twin.sleeping(seconds, "done")
    if twin.is_async:

        async def async_slow() -> Any:
            calls.append(1)
            return await sleeper()

        return async_slow

    def sync_slow() -> Any:
        calls.append(1)
        return sleeper()

    return sync_slow


def test_inner_attempt_timeout_is_retried(twin, clock):
    """A DeadlineExceeded from an inner per-attempt ``rs.timeout`` is retried by retry_on(TimeoutError)."""
    calls: list[int] = []
    fn = rs.retry_on(TimeoutError, jitter=False)(rs.timeout(1.0, mode=SYNC_MODE)(_slow(twin, 5.0, calls)))
    with rs.deadline.scope(100.0), pytest.raises(rs.DeadlineExceeded) as excinfo:
        twin.run(fn)
    assert 3 == len(calls)
    assert "all 3 attempts failed" in notes(excinfo.value)[0]


def test_inner_timeout_clipped_to_enclosing_deadline_not_retried(twin, clock):
    """An inner timeout clipped to the enclosing deadline raises that deadline's error: not retried."""
    calls: list[int] = []
    fn = rs.retry_on(TimeoutError)(rs.timeout(10.0, mode=SYNC_MODE)(_slow(twin, 50.0, calls)))
    with rs.deadline.scope(2.0), pytest.raises(rs.DeadlineExceeded):
        twin.run(fn)
    assert 1 == len(calls)


# --- logging and hooks ---------------------------------------------------------------------


def test_each_retry_logs_one_warning_with_fields(twin, clock, caplog):
    """Each retry logs exactly one WARNING on "resilience" with call_name, attempt, wait, error_type."""
    caplog.set_level(logging.DEBUG, logger="resilience")
    fn = rs.retry_on(ConnectionError, jitter=False)(twin.wrap(Script(ConnectionError, ConnectionError, "ok")))
    assert "ok" == twin.run(fn)
    records = [r for r in caplog.records if r.name == "resilience"]
    assert [logging.WARNING, logging.WARNING] == [r.levelno for r in records]
    assert [(1, 0.5, "ConnectionError"), (2, 1.0, "ConnectionError")] == [
        (r.attempt, r.wait, r.error_type) for r in records
    ]
    assert ["flaky", "flaky"] == [r.call_name.rsplit(".", 1)[-1] for r in records]


def test_no_log_without_retry(twin, clock, caplog):
    """A first-attempt success logs nothing."""
    caplog.set_level(logging.DEBUG, logger="resilience")
    fn = rs.retry_on(ConnectionError)(twin.wrap(Script("ok")))
    assert "ok" == twin.run(fn)
    assert [] == [r for r in caplog.records if r.name == "resilience"]


def test_retry_logs_result_failure(twin, clock, caplog):
    """A retried returned value is logged with error_type "result"."""
    caplog.set_level(logging.WARNING, logger="resilience")
    fn = rs.retry_on(result=lambda value: value == "503")(twin.wrap(Script("503", "200")))
    assert "200" == twin.run(fn)
    assert ["result"] == [r.error_type for r in caplog.records if r.name == "resilience"]


def test_log_fields_do_not_collide_with_logrecord():
    """The ``extra`` keys never overwrite LogRecord attributes (logging would raise KeyError)."""
    event = rs.RetryEvent("mod.fn", 1, 3, 0.5, "ConnectionError", "ConnectionError", ConnectionError())
    reserved = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
    assert set() == set(event.log_fields()) & reserved
    record = logging.getLogger("resilience").makeRecord(
        "resilience", logging.WARNING, __file__, 1, "msg", (), None, extra=event.log_fields()
    )
    assert "mod.fn" == record.call_name


def test_on_retry_receives_events(twin, clock):
    """``on_retry`` gets one RetryEvent per retry, carrying the logged data and the exception."""
    events: list[rs.RetryEvent] = []
    script = Script(ConnectionError, TimeoutError, "ok")
    fn = rs.retry_on(ConnectionError, TimeoutError, jitter=False, on_retry=events.append)(twin.wrap(script))
    assert "ok" == twin.run(fn)
    assert [(1, 3, 0.5, "ConnectionError"), (2, 3, 1.0, "TimeoutError")] == [
        (e.attempt, e.attempts, e.wait, e.error_type) for e in events
    ]
    assert script.raised == [e.exception for e in events]
    assert ["flaky", "flaky"] == [e.call_name.rsplit(".", 1)[-1] for e in events]


def test_on_retry_event_matches_log_record(twin, clock, caplog):
    """The hook's event and the log record carry the same call_name, attempt, wait and error_type."""
    caplog.set_level(logging.WARNING, logger="resilience")
    events: list[rs.RetryEvent] = []
    fn = rs.retry_on(ConnectionError, jitter=False, on_retry=events.append)(twin.wrap(Script(ConnectionError)))
    with pytest.raises(ConnectionError):
        twin.run(fn)
    records = [r for r in caplog.records if r.name == "resilience"]
    assert [tuple(getattr(e, f) for f in WAIT_FIELDS) for e in events] == [
        (r.call_name, r.attempt, r.wait, r.error_type) for r in records
    ]


def test_on_retry_event_for_returned_value(twin, clock):
    """For a retried value the event has no exception and carries the value."""
    events: list[rs.RetryEvent] = []
    fn = rs.retry_on(result=lambda value: value == "503", on_retry=events.append)(twin.wrap(Script("503", "200")))
    assert "200" == twin.run(fn)
    assert [(None, "503", "result")] == [(e.exception, e.value, e.error_type) for e in events]


def test_raising_on_retry_does_not_change_success(twin, clock, caplog):
    """An on_retry hook that raises is ignored: the call still retries and succeeds."""
    caplog.set_level(logging.WARNING, logger="resilience")

    def hook(event: rs.RetryEvent) -> None:
        raise RuntimeError("hook broke")

    script = Script(ConnectionError, "ok")
    fn = rs.retry_on(ConnectionError, on_retry=hook)(twin.wrap(script))
    assert "ok" == twin.run(fn)
    assert 2 == script.calls


def test_raising_on_retry_does_not_change_failure(twin, clock):
    """An on_retry hook that raises does not replace the exception that surfaces."""

    def hook(event: rs.RetryEvent) -> None:
        raise RuntimeError("hook broke")

    script = Script(ConnectionError)
    fn = rs.retry_on(ConnectionError, on_retry=hook)(twin.wrap(script))
    with pytest.raises(ConnectionError) as excinfo:
        twin.run(fn)
    assert 3 == script.calls
    assert script.raised[-1] is excinfo.value


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [0, -1, 1.5, True, "3", None])
def test_bad_attempts_rejected(attempts):
    """attempts must be an int >= 1 (not a bool); the message names the parameter."""
    with pytest.raises((TypeError, ValueError), match="attempts"):
        rs.retry_on(ConnectionError, attempts=attempts)


@pytest.mark.parametrize("parameter", ["wait_initial", "wait_max", "max_retry_after"])
@pytest.mark.parametrize("value", [-1.0, -0.001, math.nan, math.inf, "1", True])
def test_bad_durations_rejected(parameter, value):
    """Durations must be finite numbers >= 0; the message names the parameter."""
    with pytest.raises((TypeError, ValueError), match=parameter):
        rs.retry_on(ConnectionError, **{parameter: value})


@pytest.mark.parametrize("parameter", ["wait_initial", "wait_max", "max_retry_after"])
def test_zero_durations_accepted(parameter):
    """A zero duration is valid configuration."""
    rs.retry_on(ConnectionError, **{parameter: 0})


@pytest.mark.parametrize("jitter", [1, 0, "yes", None])
def test_jitter_must_be_bool(jitter):
    """jitter must be True or False."""
    with pytest.raises(TypeError, match="jitter"):
        rs.retry_on(ConnectionError, jitter=jitter)


@pytest.mark.parametrize("wait", [2, 0.5, "fixed"])
def test_wait_must_be_strategy(wait):
    """wait= must be a tenacity wait strategy."""
    with pytest.raises(TypeError, match=r"^wait "):
        rs.retry_on(ConnectionError, wait=wait)


@pytest.mark.parametrize("hook", [1, "log"])
def test_on_retry_must_be_callable(hook):
    """on_retry must be callable."""
    with pytest.raises(TypeError, match="on_retry"):
        rs.retry_on(ConnectionError, on_retry=hook)


@pytest.mark.parametrize("matcher", [int, str, 42, "ConnectionError", ConnectionError()])
def test_bad_on_rejected(matcher):
    """``on`` takes exception classes, predicates or classifiers; the message names ``on``."""
    with pytest.raises(TypeError, match=r"\bon\b"):
        rs.retry_on(ConnectionError, matcher)


def test_zero_argument_predicate_in_on_rejected():
    """A predicate that cannot take the exception is rejected at decoration time."""
    with pytest.raises(TypeError, match="predicate"):
        rs.retry_on(lambda: True)


def test_zero_argument_result_predicate_rejected():
    """A ``result=`` predicate that cannot take the value is rejected at decoration time."""
    with pytest.raises(TypeError, match="result"):
        rs.retry_on(result=lambda: True)


def test_non_callable_result_rejected():
    """``result=`` must be a predicate."""
    with pytest.raises(TypeError, match="result"):
        rs.retry_on(result=503)


def test_repr_names_what_is_retried():
    """The layer's repr lists ``on`` and the attempts."""
    assert "retry_on(ConnectionError, TimeoutError, attempts=4)" == repr(
        rs.retry_on(ConnectionError, TimeoutError, attempts=4)
    )


def test_decorated_keeps_metadata_and_flavour(twin):
    """The decorated function keeps its name and stays a coroutine function for async."""

    def fetch() -> str:
        return "ok"

    fn = rs.retry_on(ConnectionError)(twin.wrap(fetch))
    assert "fetch" == fn.__name__
    assert twin.is_async == asyncio.iscoroutinefunction(fn)


def test_async_on_retry_hook_is_rejected() -> None:
    """An async on_retry hook (which would never be awaited) is a TypeError naming on_retry."""

    async def hook(event: rs.RetryEvent) -> None:
        return None

    with pytest.raises(TypeError, match="on_retry"):
        rs.retry_on(ConnectionError, on_retry=hook)


# --- retry budget and rate limits -----------------------------------------------------------


def test_retry_without_a_budget_does_no_budget_work():
    """retry_on without budget= builds the plain layer: its first attempt does nothing more than before."""
    assert _retry.Retry is type(rs.retry_on(ConnectionError))
    assert _retry.BudgetedRetry is type(rs.retry_on(ConnectionError, budget=rs.RetryBudget()))


def test_budget_is_asked_only_for_a_retry_that_would_happen(twin, clock):
    """When the deadline already stops the retry, the budget is neither spent nor counted as denying."""
    budget = rs.RetryBudget(ratio=0.0, min_per_second=1.0)
    script = Script(ConnectionError, "ok")
    fn = rs.timeout(0.1, mode="cooperative")(
        rs.retry_on(ConnectionError, wait_initial=1.0, jitter=False, budget=budget)(twin.wrap(script))
    )
    with pytest.raises(ConnectionError) as excinfo:
        twin.run(fn)
    assert "deadline" in notes(excinfo.value)[0]
    assert (0, 0) == (budget.stats()["allowed"], budget.stats()["denied"])


def test_rate_limited_named_in_on_waits_its_retry_after(twin, clock):
    """An rs.RateLimited that ``on`` covers is retried after its retry_after, not the backoff."""
    script = Script(rs.RateLimited("api", 3.0), "ok")
    fn = rs.retry_on(rs.RateLimited, wait_initial=0.1, jitter=False)(twin.wrap(script))
    assert "ok" == twin.run(fn)
    assert [3.0] == clock.sleeps
