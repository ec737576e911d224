"""pytest fixtures, loaded automatically where resilience is installed (entry point ``pytest11``).

- ``resilience_no_wait``: every resilience wait is instant and recorded (``.sleeps``);
  breakers and monitored names start empty.
- ``resilience_fake_clock``: a virtual clock starting at 1000.0; ``.advance(s)`` moves it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilience import testing


@pytest.fixture
def resilience_no_wait() -> Iterator[testing.FakeClock]:
    """Instant, recorded waits and fresh registries for one test."""
    testing.reset()
    with testing.no_wait() as clock:
        yield clock
    testing.reset()


@pytest.fixture
def resilience_fake_clock() -> Iterator[testing.FakeClock]:
    """A virtual clock and fresh registries for one test."""
    testing.reset()
    with testing.fake_clock() as clock:
        yield clock
    testing.reset()
