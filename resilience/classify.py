"""Outcomes, verdicts and classifiers: the one answer retry, breaker and monitor share.

An *outcome* is what a call produced: a returned value or a raised exception. A
*classifier* maps an outcome to a :class:`Verdict`, or to ``None`` when it has no
opinion. Classifiers combine with ``|``: the first one with an opinion wins.

>>> from resilience.classify import on_exception, on_result
>>> transient = on_exception(ConnectionError, TimeoutError) | on_result(lambda r: r == 503)
>>> transient(Outcome.of_exception(ConnectionError())).retryable
True
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "FATAL",
    "IGNORED",
    "RETRYABLE",
    "SUCCESS",
    "Classifier",
    "ClassifierLike",
    "Outcome",
    "Verdict",
    "on_exception",
    "on_result",
    "to_classifier",
]


class Outcome(NamedTuple):
    """A returned ``value`` or a raised ``exception`` (then ``value`` is None).

    A named tuple rather than a frozen dataclass: one is built per classified call, and
    a tuple is built three times faster.
    """

    value: Any = None
    exception: BaseException | None = None

    @classmethod
    def of_exception(cls, exc: BaseException) -> Outcome:
        """The outcome of a call that raised ``exc``."""
        return cls(None, exc)

    @property
    def failed(self) -> bool:
        """True when the call raised."""
        return self.exception is not None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an outcome means.

    - ``failed``: the call did not do its job.
    - ``retryable``: trying again may help.
    - ``counts``: a breaker counts it as a failure (server-side trouble).
    - ``ignored``: a breaker counts it as neither failure nor success.
    - ``reason``: a short label for logs and metrics ("connection", "status_503"...).
    - ``retry_after``: seconds the server asked us to wait, or None.
    - ``detail``: extra text for logs (e.g. the start of an unexpected body).
    """

    failed: bool
    retryable: bool = False
    counts: bool = False
    ignored: bool = False
    reason: str = ""
    retry_after: float | None = None
    detail: str | None = None

    def with_reason(self, reason: str) -> Verdict:
        """The same verdict with another ``reason``."""
        return Verdict(self.failed, self.retryable, self.counts, self.ignored, reason, self.retry_after, self.detail)


SUCCESS = Verdict(failed=False, reason="ok")
RETRYABLE = Verdict(failed=True, retryable=True, counts=True, reason="retryable")
FATAL = Verdict(failed=True, retryable=False, counts=True, reason="fatal")
IGNORED = Verdict(failed=True, retryable=False, counts=False, ignored=True, reason="ignored")
_GENERIC_REASONS = frozenset({"", "retryable", "fatal", "ignored", "failure"})


class Classifier:
    """A function ``Outcome -> Verdict | None`` that combines with ``|``."""

    __slots__ = ("_fn", "_label")

    def __init__(self, fn: Callable[[Outcome], Verdict | None], label: str = "classifier") -> None:
        self._fn = fn
        self._label = label

    def __call__(self, outcome: Outcome) -> Verdict | None:
        return self._fn(outcome)

    def __or__(self, other: ClassifierLike) -> Classifier:
        right = to_classifier(other)
        left = self._fn

        def either(outcome: Outcome) -> Verdict | None:
            verdict = left(outcome)
            return verdict if verdict is not None else right(outcome)

        return Classifier(either, f"{self._label} | {right._label}")

    def __ror__(self, other: ClassifierLike) -> Classifier:
        return to_classifier(other) | self

    def __repr__(self) -> str:
        return f"Classifier({self._label})"


ClassifierLike = Classifier | type[BaseException] | Callable[[BaseException], bool]


def _exception_reason(exc: BaseException) -> str:
    return type(exc).__name__


def on_exception(
    *matchers: type[BaseException] | Callable[[BaseException], bool],
    verdict: Verdict = RETRYABLE,
    parameter: str = "on",
) -> Classifier:
    """Classify exceptions that are instances of the given types, or satisfy the predicates.

    The verdict's reason becomes the exception's type name unless ``verdict`` has a
    reason of its own.
    """
    types = tuple(m for m in matchers if isinstance(m, type))
    predicates = tuple(m for m in matchers if not isinstance(m, type))
    for matcher in matchers:
        if isinstance(matcher, type) and not issubclass(matcher, BaseException):
            raise TypeError(f"{parameter}: expected exception classes or predicates, got the class {matcher.__name__}")
        if not isinstance(matcher, type):
            _check_predicate(parameter, matcher, "the exception")
    keep_reason = verdict.reason not in _GENERIC_REASONS

    def classify(outcome: Outcome) -> Verdict | None:
        exc = outcome.exception
        if exc is None:
            return None
        if isinstance(exc, types) or any(predicate(exc) for predicate in predicates):
            return verdict if keep_reason else verdict.with_reason(_exception_reason(exc))
        return None

    label = ", ".join(getattr(m, "__name__", repr(m)) for m in matchers)
    return Classifier(classify, label)


def on_result(predicate: Callable[[Any], bool], verdict: Verdict = RETRYABLE) -> Classifier:
    """Classify returned values for which ``predicate`` is true (e.g. a returned 503)."""
    _check_predicate("result", predicate, "the returned value")
    labelled = verdict if verdict.reason not in _GENERIC_REASONS else verdict.with_reason("result")

    def classify(outcome: Outcome) -> Verdict | None:
        if outcome.exception is None and predicate(outcome.value):
            return labelled
        return None

    return Classifier(classify, f"result={getattr(predicate, '__name__', repr(predicate))}")


def to_classifier(
    matchers: ClassifierLike | Iterable[ClassifierLike], *, verdict: Verdict = RETRYABLE, parameter: str = "on"
) -> Classifier:
    """Turn exception classes, predicates over exceptions and classifiers into one classifier.

    Order is kept: the first matcher with an opinion wins. ``parameter`` names the
    argument in error messages.
    """
    items: list[Any] = list(matchers) if isinstance(matchers, (tuple, list)) else [matchers]
    parts: list[Classifier] = []
    plain: list[Any] = []  # a run of classes and predicates, folded into one on_exception
    for item in items:
        if isinstance(item, Classifier):
            if plain:
                parts.append(on_exception(*plain, verdict=verdict, parameter=parameter))
                plain = []
            parts.append(item)
        else:
            plain.append(item)
    if plain:
        parts.append(on_exception(*plain, verdict=verdict, parameter=parameter))
    if not parts:
        raise TypeError(f"{parameter}: nothing to classify; give exception classes, predicates or classifiers")
    result = parts[0]
    for part in parts[1:]:
        result = result | part
    return result


def _check_predicate(parameter: str, fn: object, argument: str) -> None:
    """Reject non-callables and callables that cannot take one positional argument."""
    if not callable(fn):
        raise TypeError(f"{parameter}: expected exception classes, predicates or classifiers, got {fn!r}")
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return  # builtins without a signature: trust them
    if not any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters):
        raise TypeError(f"{parameter}: a predicate must take {argument} as its argument, got {fn!r}")
