"""OpenTelemetry metrics of what ``@monitored`` recorded (``pip install resilience[otel]``).

>>> from opentelemetry.sdk.metrics import MeterProvider
>>> from resilience.exporters import otel
>>> exporter = otel.register(MeterProvider())
>>> exporter.close()

Instruments (meter ``resilience``), with the same meaning as the Prometheus series:

- ``resilience.calls`` (observable counter, ``{call}``): attributes ``resilience.name``,
  ``resilience.outcome``, and ``error.type`` (the outcome) on failures;
- ``resilience.call.duration`` (histogram, ``s``): each call's duration, attributes
  ``resilience.name``, ``resilience.outcome``, and where they apply ``error.type``,
  ``http.response.status_code`` and ``http.request.resend_count`` (retries made: the
  OpenTelemetry semantic conventions' attribute, set only when the call was retried);
- ``resilience.retries`` (observable counter, ``{retry}``): ``resilience.name``,
  ``resilience.retry.reason``;
- ``resilience.timeouts`` (observable counter, ``{timeout}``): ``resilience.name``,
  ``resilience.timeout.kind``;
- ``resilience.circuit.state`` (observable gauge): 1 for each breaker's current state, 0
  for the others; ``resilience.name``, ``resilience.circuit.state``.

Counters are read from the monitor at each collection (lifetime totals). Durations
reach the histogram through a monitor listener, successes in batches (within ~50 ms
while calls come, or at the next collection); the SDK's ``record()`` costs a few
microseconds per call, so ``durations=False`` leaves the histogram out.

With ``trace_ids=True`` (default), failures carry the current span's trace id when
``rs.monitor.trace_id`` is not set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from resilience import __version__, monitor
from resilience._monitor_stats import FAILURE_FREE, CallEvent
from resilience.exporters._common import DEFAULT_BUCKETS, circuit_states

__all__ = ["OtelExporter", "register"]

NAME, OUTCOME = "resilience.name", "resilience.outcome"
Attributes = dict[str, Any]


def _current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


class OtelExporter(monitor.Listener):
    """The instruments and the monitor listener behind :func:`register`."""

    def __init__(self, meter: metrics.Meter, source: monitor.Registry, *, durations: bool, trace_ids: bool) -> None:
        self.source = source
        self.closed = False
        self.trace_ids = trace_ids
        self.calls = meter.create_observable_counter(
            "resilience.calls", [self._observe_calls], unit="{call}", description="Monitored calls by outcome."
        )
        self.retries = meter.create_observable_counter(
            "resilience.retries", [self._observe_retries], unit="{retry}", description="Retries by reason."
        )
        self.timeouts = meter.create_observable_counter(
            "resilience.timeouts", [self._observe_timeouts], unit="{timeout}", description="Timeouts by kind."
        )
        self.circuit_state = meter.create_observable_gauge(
            "resilience.circuit.state",
            [self._observe_circuits],
            unit="1",
            description="Circuit breaker state: 1 for the current state, 0 for the others.",
        )
        self.duration = (
            meter.create_histogram(
                "resilience.call.duration",
                unit="s",
                description="Duration of monitored calls.",
                explicit_bucket_boundaries_advisory=DEFAULT_BUCKETS,
            )
            if durations
            else None
        )
        if self.duration is not None:
            source.add_listener(self)
        if trace_ids:
            monitor.trace_id.provider = _current_trace_id

    def close(self) -> None:
        """Stop reporting: observations stop, the listener and trace id provider go."""
        self.closed = True
        self.source.remove_listener(self)
        if self.trace_ids and monitor.trace_id.provider is _current_trace_id:
            monitor.trace_id.provider = None

    # the listener: durations
    def on_calls(self, name: str, durations: Sequence[float]) -> None:
        """Record a batch of successful calls."""
        if self.duration is None or self.closed:
            return
        attributes = {NAME: name, OUTCOME: "ok"}
        record = self.duration.record
        for seconds in durations:
            record(seconds, attributes)

    def on_call(self, event: CallEvent) -> None:
        """Record any other call, with its error type, status and resend count."""
        if self.duration is None or self.closed:
            return
        attributes: Attributes = {NAME: event.name, OUTCOME: event.outcome}
        if event.outcome not in FAILURE_FREE:
            attributes["error.type"] = event.outcome
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.attempts > 1:
            attributes["http.request.resend_count"] = event.attempts - 1
        self.duration.record(event.duration, attributes)

    # the observable instruments: totals read at collection
    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        if self.closed:
            return []
        found = []
        for view in self.source.export():
            for outcome, count in sorted(view.outcomes.items()):
                attributes: Attributes = {NAME: view.name, OUTCOME: outcome}
                if outcome not in FAILURE_FREE:
                    attributes["error.type"] = outcome
                found.append(Observation(count, attributes))
        return found

    def _observe_retries(self, options: CallbackOptions) -> Iterable[Observation]:
        if self.closed:
            return []
        return [
            Observation(count, {NAME: view.name, "resilience.retry.reason": reason})
            for view in self.source.export()
            for reason, count in sorted(view.retry_reasons.items())
        ]

    def _observe_timeouts(self, options: CallbackOptions) -> Iterable[Observation]:
        if self.closed:
            return []
        return [
            Observation(count, {NAME: view.name, "resilience.timeout.kind": kind})
            for view in self.source.export()
            for kind, count in sorted(view.timeouts.items())
        ]

    def _observe_circuits(self, options: CallbackOptions) -> Iterable[Observation]:
        if self.closed:
            return []
        return [
            Observation(value, {NAME: name, "resilience.circuit.state": state})
            for name, state, value in circuit_states()
        ]


def register(
    meter_provider: MeterProvider | None = None,
    *,
    source: monitor.Registry | None = None,
    durations: bool = True,
    trace_ids: bool = True,
) -> OtelExporter:
    """Create the instruments on ``meter_provider`` (the global one when None) for
    ``source`` (the default monitor registry). ``exporter.close()`` stops them."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = provider.get_meter("resilience", __version__)
    return OtelExporter(meter, source or monitor.default, durations=durations, trace_ids=trace_ids)
