"""What the exporters share (without importing any metrics library)."""

from __future__ import annotations

from collections.abc import Iterator

from resilience._circuit import circuit

# Upper bounds of the duration histograms, in seconds (prometheus_client's defaults).
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
CIRCUIT_STATES = ("closed", "open", "half-open")


def circuit_states() -> Iterator[tuple[str, str, int]]:
    """``(name, state, 0 or 1)`` for every registered breaker: one-hot over its states."""
    for name in circuit.names():
        try:
            current = circuit.get(name).state
        except KeyError:  # cleared meanwhile
            continue
        states = CIRCUIT_STATES if current in CIRCUIT_STATES else (*CIRCUIT_STATES, current)
        for state in states:
            yield name, state, 1 if state == current else 0
