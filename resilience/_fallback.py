"""``rs.fallback``: answer with a value instead of an error."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from resilience._engine import Args, Kwargs, Layer, call_name, current_record, error_kind, is_async_callable
from resilience.classify import Classifier, ClassifierLike, Outcome, to_classifier

R = TypeVar("R")
logger = logging.getLogger("resilience")


@dataclass(frozen=True, slots=True, eq=False)
class Fallback(Layer):
    """A fallback layer; build it with :func:`fallback`."""

    value: Any
    classifier: Classifier
    factory: Callable[[BaseException], Any] | None

    def __repr__(self) -> str:
        return f"fallback({'factory' if self.factory else repr(self.value)})"

    def bind(self, fn: Callable[..., Any]) -> None:
        if self.factory is not None and inspect.iscoroutinefunction(self.factory) and not is_async_callable(fn):
            raise TypeError(
                f"fallback factory= is an async function but {call_name(fn)} is not: its coroutine "
                "would never be awaited; give a plain function"
            )

    def _matches(self, exc: Exception) -> bool:
        return self.classifier(Outcome.of_exception(exc)) is not None

    def _answered(self, fn: Callable[..., Any], exc: Exception) -> None:
        """Tell the monitor and the logs, once the fallback has produced its answer."""
        answered_instead(fn, "fallback", error_kind(exc), type(exc).__name__, exc)

    # A factory that raises surfaces its own error, and the call is not counted as answered.
    def run_sync(self, fn: Callable[..., R], args: Args, kwargs: Kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not self._matches(exc):
                raise
            answer = self.factory(exc) if self.factory is not None else self.value
            self._answered(fn, exc)
            return answer  # type: ignore[no-any-return]

    async def run_async(self, fn: Callable[..., Awaitable[R]], args: Args, kwargs: Kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if not self._matches(exc):
                raise
            answer = self.factory(exc) if self.factory is not None else self.value
            if inspect.isawaitable(answer):
                answer = await answer
            self._answered(fn, exc)
            return answer  # type: ignore[no-any-return]


def answered_instead(fn: Callable[..., Any], outcome: str, kind: str, error_type: str, message: object) -> None:
    """A layer answered instead of the failed call (``outcome`` "fallback" or "dropped"):
    mark the call record for the monitor and log one WARNING."""
    record = current_record.get()
    if record is not None:
        if outcome == "fallback":
            record.fallback = True
        else:
            record.dropped = True
        record.error_kind = kind
    name = call_name(fn)
    how = "answered by its fallback" if outcome == "fallback" else "dropped (best effort)"
    logger.warning(
        "%s failed (%s: %s); %s",
        name,
        error_type,
        message,
        how,
        extra={"call_name": name, "outcome": outcome, "error_type": error_type, "error_kind": kind},
    )


def fallback(
    value: Any = None,
    *,
    on: ClassifierLike | Sequence[ClassifierLike] = Exception,
    factory: Callable[[BaseException], Any] | None = None,
) -> Fallback:
    """Return ``value`` (or ``factory(exc)``) when the call fails with one of ``on``.

    ``on`` takes exception classes, predicates or classifiers (default: any
    ``Exception``; cancellation is never swallowed). An async ``factory`` is awaited for
    ``async def`` functions. An enclosing ``@monitored`` counts the call as outcome
    "fallback" and still counts the original error kind.

    >>> import resilience as rs
    >>> @rs.fallback([])
    ... def recommendations() -> list[str]:
    ...     raise ConnectionError("down")
    >>> recommendations()
    []
    """
    if factory is not None and not callable(factory):
        raise TypeError(f"factory must be a callable taking the exception, got {factory!r}")
    if factory is not None and value is not None:
        raise TypeError("give fallback a value or a factory=, not both")
    return Fallback(value, to_classifier(on), factory)
