"""Alerts: a failure rate over a window crosses a threshold, and later falls back.

Rules are evaluated under the name's lock when a call takes the slow path (every failure
does), on every call while a rule fires, and whenever the numbers are read; the callback
runs after the lock is released, in the thread that made the call.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resilience import _clock
from resilience._engine import check_seconds

if TYPE_CHECKING:
    from resilience._monitor_stats import CallEvent, Stats


@dataclass(frozen=True, slots=True)
class Alert:
    """What ``on_alert`` receives: a name's failure rate crossed its threshold, or (with
    ``recovered`` true) fell back below it.

    ``failure_rate`` = ``failures / calls`` over the last ``window`` seconds (cancelled
    calls left out; fallbacks and drops are failures); ``timeouts`` counts the failures
    that were timeouts, ``timeout_rate`` their share of ``calls``. ``recent`` holds the
    name's last five failures, oldest first (``CallEvent``: time, name, url, duration,
    status, error, trace id...). ``at`` is wall-clock seconds since the epoch.
    """

    name: str
    recovered: bool
    failure_rate: float
    timeout_rate: float
    calls: int
    failures: int
    timeouts: int
    threshold: float
    window: float
    at: float
    recent: tuple[CallEvent, ...]

    @property
    def message(self) -> str:
        """One line for a human: what crossed what, over how long."""
        if self.recovered:
            return (
                f"{self.name} recovered: failure rate {self.failure_rate:.0%} over the last {self.window:g} s "
                f"({self.calls} calls) is below {self.threshold:.0%}"
            )
        return (
            f"{self.name}: failure rate {self.failure_rate:.0%} over the last {self.window:g} s "
            f"({self.failures} of {self.calls} calls failed, {self.timeouts} timeouts) "
            f"reached {self.threshold:.0%}"
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``recent`` as a list of dicts, plus ``message``)."""
        return {
            "name": self.name,
            "recovered": self.recovered,
            "failure_rate": self.failure_rate,
            "timeout_rate": self.timeout_rate,
            "calls": self.calls,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "threshold": self.threshold,
            "window": self.window,
            "at": self.at,
            "recent": [event.as_dict() for event in self.recent],
            "message": self.message,
        }


class AlertRule:
    """One ``on_alert`` callback with its thresholds, and whether it fires for one name.

    A name holds its rules weakly; the decorated functions that declared them hold them
    strongly, so a rule goes when the last function that asked for it does.
    """

    __slots__ = ("__weakref__", "callback", "cooldown", "failure_rate", "firing", "last_fired", "min_calls", "window")

    def __init__(
        self,
        callback: Callable[[Alert], object],
        failure_rate: float,
        window: float,
        min_calls: int,
        cooldown: float,
    ) -> None:
        self.callback = callback
        self.failure_rate = failure_rate
        self.window = window
        self.min_calls = min_calls
        self.cooldown = cooldown
        self.firing = False
        self.last_fired = -math.inf

    def key(self) -> tuple[object, ...]:
        """Two declarations with the same callback and thresholds are one rule."""
        return (self.callback, self.failure_rate, self.window, self.min_calls, self.cooldown)

    def fresh(self) -> AlertRule:
        """A rule with the same callback and thresholds, and its own state (one per name)."""
        return AlertRule(self.callback, self.failure_rate, self.window, self.min_calls, self.cooldown)

    def reset(self) -> None:
        self.firing = False
        self.last_fired = -math.inf

    def evaluate(self, stats: Stats, now: float) -> Alert | None:
        """Under the name's lock: the alert or recovery notice due now, if any."""
        calls, failures, timeouts = stats.window_rates(now, self.window)
        rate = failures / calls if calls else 0.0
        if self.firing:
            if rate >= self.failure_rate:
                return None
            self.firing = False
            recovered = True
        else:
            if calls < self.min_calls or rate < self.failure_rate or now - self.last_fired < self.cooldown:
                return None
            self.firing = True
            self.last_fired = now
            recovered = False
        return Alert(
            name=stats.name,
            recovered=recovered,
            failure_rate=rate,
            timeout_rate=timeouts / calls if calls else 0.0,
            calls=calls,
            failures=failures,
            timeouts=timeouts,
            threshold=self.failure_rate,
            window=self.window,
            at=_clock.wall(),
            recent=tuple(stats.recent),
        )


def make_rule(
    on_alert: Callable[[Alert], object] | None,
    failure_rate: float,
    window: float,
    min_calls: int,
    cooldown: float,
) -> AlertRule | None:
    """Validate ``monitored()``'s alert parameters; None without a callback."""
    if on_alert is not None and (not callable(on_alert) or inspect.iscoroutinefunction(on_alert)):
        raise TypeError(f"on_alert must be a plain (not async) callable taking an Alert, got {on_alert!r}")
    if isinstance(failure_rate, bool) or not isinstance(failure_rate, (int, float)):
        raise TypeError(f"alert_failure_rate must be a number in (0, 1], got {failure_rate!r}")
    if not 0 < failure_rate <= 1:
        raise ValueError(f"alert_failure_rate must be in (0, 1], got {failure_rate!r}")
    check_seconds("alert_window", window)
    check_seconds("alert_cooldown", cooldown, allow_zero=True)
    if isinstance(min_calls, bool) or not isinstance(min_calls, int) or min_calls < 1:
        raise ValueError(f"alert_min_calls must be an int >= 1, got {min_calls!r}")
    if on_alert is None:
        return None
    return AlertRule(on_alert, float(failure_rate), float(window), min_calls, float(cooldown))
