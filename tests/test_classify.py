"""Outcomes, verdicts and classifiers: the answer retry, breaker and monitor share."""

# House style reads `assert expected == actual`; ruff's SIM300 calls that a Yoda condition.

from __future__ import annotations

import dataclasses

import pytest

import resilience as rs
from resilience.classify import (
    FATAL,
    IGNORED,
    RETRYABLE,
    SUCCESS,
    Classifier,
    Outcome,
    Verdict,
    on_exception,
    on_result,
    to_classifier,
)

ERROR = Outcome.of_exception(ConnectionError("refused"))
VALUE = Outcome("503")


def fatal_on(*matchers):
    return on_exception(*matchers, verdict=FATAL)


# --- Outcome -------------------------------------------------------------------------------


def test_outcome_of_value():
    """An outcome built from a value has no exception and has not failed."""
    outcome = Outcome(42)
    assert (42, None, False) == (outcome.value, outcome.exception, outcome.failed)


def test_outcome_of_exception():
    """``Outcome.of_exception`` holds the exception, no value, and has failed."""
    exc = ValueError("bad")
    outcome = Outcome.of_exception(exc)
    assert (None, exc, True) == (outcome.value, outcome.exception, outcome.failed)


def test_outcome_default_is_none_value():
    """``Outcome()`` is a successful ``None``."""
    assert Outcome(None, None) == Outcome()
    assert False is Outcome().failed


def test_outcome_is_frozen():
    """Outcomes are immutable."""
    with pytest.raises(AttributeError):
        Outcome(1).value = 2  # type: ignore[misc]


def test_outcome_exported():
    """``rs.Outcome`` and ``rs.Verdict`` are the classify module's classes."""
    assert (Outcome, Verdict) == (rs.Outcome, rs.Verdict)


# --- Verdict -------------------------------------------------------------------------------


def test_verdict_defaults():
    """Only ``failed`` is required; the rest default to a plain, non-retryable verdict."""
    verdict = Verdict(failed=True)
    assert (True, False, False, False, "", None, None) == (
        verdict.failed,
        verdict.retryable,
        verdict.counts,
        verdict.ignored,
        verdict.reason,
        verdict.retry_after,
        verdict.detail,
    )


def test_verdict_keyword_fields():
    """Every field can be given by keyword (as a 429 classifier would)."""
    verdict = Verdict(failed=True, retryable=True, counts=False, reason="status_429", retry_after=4.0, detail="slow")
    assert ("status_429", 4.0, "slow", True, False) == (
        verdict.reason,
        verdict.retry_after,
        verdict.detail,
        verdict.retryable,
        verdict.counts,
    )


def test_verdict_with_reason_keeps_other_fields():
    """``with_reason`` changes only the reason."""
    verdict = Verdict(True, True, False, True, "old", 3.0, "detail")
    assert Verdict(True, True, False, True, "new", 3.0, "detail") == verdict.with_reason("new")


def test_verdict_is_frozen():
    """Verdicts are immutable and comparable by value."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        SUCCESS.reason = "x"  # type: ignore[misc]
    assert Verdict(failed=False, reason="ok") == SUCCESS


@pytest.mark.parametrize(
    ("verdict", "fields"),
    [
        (SUCCESS, (False, False, False, False, "ok")),
        (RETRYABLE, (True, True, True, False, "retryable")),
        (FATAL, (True, False, True, False, "fatal")),
        (IGNORED, (True, False, False, True, "ignored")),
    ],
    ids=["SUCCESS", "RETRYABLE", "FATAL", "IGNORED"],
)
def test_named_verdicts(verdict, fields):
    """The named verdicts: (failed, retryable, counts, ignored, reason)."""
    assert fields == (verdict.failed, verdict.retryable, verdict.counts, verdict.ignored, verdict.reason)


# --- on_exception --------------------------------------------------------------------------


def test_on_exception_matches_class_and_subclass():
    """An exception of a listed class, or a subclass, is retryable, reason = its type name."""
    classifier = on_exception(OSError)
    assert RETRYABLE.with_reason("ConnectionError") == classifier(ERROR)
    assert RETRYABLE.with_reason("OSError") == classifier(Outcome.of_exception(OSError()))


def test_on_exception_no_opinion_otherwise():
    """An unlisted exception, or a returned value, gets no opinion (None)."""
    classifier = on_exception(KeyError)
    assert None is classifier(ERROR)
    assert None is classifier(VALUE)


def test_on_exception_predicate():
    """A predicate over the exception matches when it returns true."""
    classifier = on_exception(lambda exc: "refused" in str(exc))
    assert True is classifier(ERROR).retryable
    assert None is classifier(Outcome.of_exception(ConnectionError("reset")))


def test_on_exception_predicate_not_called_for_values():
    """Predicates only ever see exceptions."""
    seen = []
    classifier = on_exception(lambda exc: seen.append(exc) or True)
    assert None is classifier(VALUE)
    assert [] == seen


def test_on_exception_mixed_classes_and_predicates():
    """Classes and predicates can be mixed; either matching is enough."""
    classifier = on_exception(KeyError, lambda exc: isinstance(exc, ConnectionError))
    assert True is classifier(ERROR).failed
    assert True is classifier(Outcome.of_exception(KeyError())).failed
    assert None is classifier(Outcome.of_exception(ValueError()))


def test_on_exception_custom_verdict():
    """``verdict=`` sets what a match means; retry_after and counts are kept."""
    throttled = Verdict(failed=True, retryable=True, counts=False, reason="status_429", retry_after=4.0)
    verdict = on_exception(ConnectionError, verdict=throttled)(ERROR)
    assert (True, True, False, 4.0) == (verdict.failed, verdict.retryable, verdict.counts, verdict.retry_after)


@pytest.mark.parametrize("matcher", [int, str, object])
def test_on_exception_rejects_non_exception_class(matcher):
    """A class that is not an exception is a TypeError naming it."""
    with pytest.raises(TypeError, match=matcher.__name__):
        on_exception(matcher)


@pytest.mark.parametrize("matcher", [42, "ValueError", None])
def test_on_exception_rejects_non_callable(matcher):
    """A matcher that is neither a class nor callable is a TypeError."""
    with pytest.raises(TypeError, match="predicates"):
        on_exception(matcher)


def test_on_exception_rejects_zero_argument_predicate():
    """A predicate that cannot take the exception is rejected when the classifier is built."""
    with pytest.raises(TypeError, match="predicate"):
        on_exception(lambda: True)


# --- on_result -----------------------------------------------------------------------------


def test_on_result_flags_values():
    """A returned value the predicate flags is retryable with reason "result"."""
    classifier = on_result(lambda value: value == "503")
    assert RETRYABLE.with_reason("result") == classifier(VALUE)
    assert None is classifier(Outcome("200"))


def test_on_result_ignores_exceptions():
    """Exceptions get no opinion, and the predicate never sees them."""
    seen = []
    classifier = on_result(lambda value: seen.append(value) or True)
    assert None is classifier(ERROR)
    assert [] == seen


def test_on_result_flags_none():
    """A returned None is a value like any other."""
    assert True is on_result(lambda value: value is None)(Outcome(None)).retryable


def test_on_result_custom_verdict():
    """``verdict=`` sets what a flagged value means."""
    verdict = on_result(lambda value: True, verdict=IGNORED)(VALUE)
    assert (True, False, True) == (verdict.failed, verdict.retryable, verdict.ignored)


@pytest.mark.parametrize("predicate", [503, "503", None])
def test_on_result_rejects_non_callable(predicate):
    """A non-callable ``predicate`` is a TypeError naming result=."""
    with pytest.raises(TypeError, match="result"):
        on_result(predicate)


def test_on_result_rejects_zero_argument_predicate():
    """A predicate that cannot take the returned value is rejected when the classifier is built."""
    with pytest.raises(TypeError, match="predicate"):
        on_result(lambda: True)


# --- to_classifier -------------------------------------------------------------------------


def test_to_classifier_from_class():
    """A single exception class becomes a classifier for it."""
    classifier = to_classifier(ConnectionError)
    assert isinstance(classifier, Classifier)
    assert True is classifier(ERROR).retryable


@pytest.mark.parametrize("container", [tuple, list])
def test_to_classifier_from_sequence(container):
    """A tuple or list of matchers becomes one classifier matching any of them."""
    classifier = to_classifier(container([KeyError, lambda exc: "refused" in str(exc)]))
    assert True is classifier(ERROR).retryable
    assert True is classifier(Outcome.of_exception(KeyError())).retryable
    assert None is classifier(Outcome.of_exception(ValueError()))


def test_to_classifier_keeps_classifier():
    """A classifier passed alone is used as is."""
    classifier = on_result(lambda value: value == "503")
    assert classifier is to_classifier(classifier)


def test_to_classifier_mixes_classifiers_and_matchers():
    """Classifiers, classes and predicates combine into one classifier."""
    classifier = to_classifier([on_result(lambda value: value == "503"), KeyError])
    assert "result" == classifier(VALUE).reason
    assert "KeyError" == classifier(Outcome.of_exception(KeyError())).reason


def test_to_classifier_verdict_applies_to_plain_matchers():
    """``verdict=`` is what plain classes and predicates map to."""
    assert FATAL.with_reason("ConnectionError") == to_classifier(ConnectionError, verdict=FATAL)(ERROR)


def test_to_classifier_preserves_order():
    """The first matcher with an opinion wins, in the order given, classifiers and classes alike."""
    classifier = to_classifier([fatal_on(ConnectionError), ConnectionError])
    assert False is classifier(ERROR).retryable


def test_to_classifier_rejects_zero_argument_predicate():
    """A predicate with no argument is rejected: it cannot take the exception."""
    with pytest.raises(TypeError, match="predicate"):
        to_classifier(lambda: True)


def test_to_classifier_accepts_keyword_default_predicate():
    """A predicate whose one parameter has a default is still a predicate."""
    classifier = to_classifier(lambda exc=None: isinstance(exc, ConnectionError))
    assert True is classifier(ERROR).retryable


def test_to_classifier_accepts_varargs_predicate():
    """A ``*args`` predicate can take the exception."""
    classifier = to_classifier(lambda *args: True)
    assert True is classifier(ERROR).retryable


def test_to_classifier_rejects_keyword_only_predicate():
    """A predicate that only takes keyword arguments cannot take the exception."""

    def keyword_only(*, exc: BaseException) -> bool:
        return True

    with pytest.raises(TypeError, match="predicate"):
        to_classifier(keyword_only)


@pytest.mark.parametrize("item", [42, "KeyError", None])
def test_to_classifier_rejects_non_callable(item):
    """Anything neither a class, a callable nor a classifier is a TypeError."""
    with pytest.raises(TypeError, match="expected"):
        to_classifier([item])


def test_to_classifier_rejects_empty():
    """An empty list is a TypeError: nothing to classify."""
    with pytest.raises(TypeError, match="nothing to classify"):
        to_classifier([])


# --- combining with | ----------------------------------------------------------------------


def test_or_first_opinion_wins():
    """With ``|`` the left classifier's verdict wins when it has one."""
    assert FATAL.with_reason("ConnectionError") == (fatal_on(ConnectionError) | on_exception(ConnectionError))(ERROR)


def test_or_order_matters():
    """Swapping the operands swaps whose verdict wins."""
    assert RETRYABLE.with_reason("ConnectionError") == (on_exception(ConnectionError) | fatal_on(ConnectionError))(
        ERROR
    )


def test_or_falls_through_on_no_opinion():
    """When the left has no opinion the right decides; with neither, None."""
    classifier = on_exception(KeyError) | on_result(lambda value: value == "503")
    assert "result" == classifier(VALUE).reason
    assert None is classifier(ERROR)
    assert None is classifier(Outcome("200"))


def test_or_with_class_on_the_right():
    """``classifier | ExceptionClass`` adds that class."""
    classifier = on_result(lambda value: value == "503") | ConnectionError
    assert True is classifier(ERROR).retryable


def test_ror_with_class_on_the_left():
    """``ExceptionClass | classifier`` builds a classifier (via ``__ror__``) with the class first."""
    classifier = ConnectionError | fatal_on(ConnectionError)
    assert isinstance(classifier, Classifier)
    assert True is classifier(ERROR).retryable
    assert "result" == (ConnectionError | on_result(lambda value: value == "503"))(VALUE).reason


def test_ror_with_predicate_on_the_left():
    """``predicate | classifier`` builds a classifier with the predicate first."""
    classifier = (lambda exc: "refused" in str(exc)) | fatal_on(ConnectionError)
    assert True is classifier(ERROR).retryable


def test_or_rejects_zero_argument_predicate():
    """A zero-argument predicate on either side of ``|`` is a TypeError."""
    with pytest.raises(TypeError, match="predicate"):
        on_exception(KeyError) | (lambda: True)
    with pytest.raises(TypeError, match="predicate"):
        (lambda: True) | on_exception(KeyError)


def test_or_chains_left_to_right():
    """A chain of ``|`` asks each classifier in turn."""
    calls: list[str] = []

    def spy(name: str, verdict: Verdict | None) -> Classifier:
        return Classifier(lambda outcome: calls.append(name) or verdict, name)

    classifier = spy("a", None) | spy("b", FATAL) | spy("c", RETRYABLE)
    assert FATAL == classifier(ERROR)
    assert ["a", "b"] == calls


def test_classifier_repr_shows_parts():
    """A combined classifier's repr lists its parts in order."""
    assert "Classifier(KeyError | ConnectionError)" == repr(on_exception(KeyError) | ConnectionError)


def test_classifier_wraps_function():
    """``Classifier(fn)`` calls ``fn`` with the outcome."""
    classifier = Classifier(lambda outcome: SUCCESS if not outcome.failed else None, "ok")
    assert SUCCESS == classifier(VALUE)
    assert None is classifier(ERROR)
    assert "Classifier(ok)" == repr(classifier)
