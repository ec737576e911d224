"""The Prometheus exporter: the series parse back with prometheus_client's own parser, in a single
process and in multi-process mode across two real processes."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

import resilience as rs
from resilience.exporters import prometheus

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of the registry's text exposition, parsed back: {(name, sorted labels): value}."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, series: str, /, **labels: str) -> float:
    """One sample's value (KeyError naming what is there if missing)."""
    key = (series, tuple(sorted(labels.items())))
    if key not in samples:
        raise KeyError(f"{key} not in {sorted(k for k in samples if k[0] == series)}")
    return samples[key]


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``, returning the exception it raised instead of raising it."""
    try:
        return fn(*args)
    except Exception as exc:
        return exc


def exercise(clock: rs.testing.FakeClock) -> None:
    """Known traffic on "users": 3 ok (0.003 s, 0.2 s, 3 s), 1 connection failure after 2 retries,
    1 timeout, 1 rejection by the open breaker "users-cb"."""
    durations = iter([0.003, 0.2, 3.0])
    ok = rs.monitored("users")(lambda: clock.advance(next(durations)))
    failing = rs.monitored("users")(
        rs.retry_on(ConnectionError, attempts=3, wait_initial=0)(lambda: (_ for _ in ()).throw(ConnectionError("down")))
    )
    timing_out = rs.monitored("users")(rs.timeout(1, mode="signal")(lambda: clock.sleep(2)))
    rejected = rs.monitored("users")(rs.circuit("users-cb")(lambda: None))
    for _ in range(3):
        ok()
    call(failing)
    call(timing_out)
    rs.circuit.get("users-cb").open()
    call(rejected)


def test_series_parse_back_with_their_values(clock: rs.testing.FakeClock) -> None:
    """calls by outcome, duration histogram, retries by reason, timeouts by kind and one-hot circuit state."""
    registry = CollectorRegistry()
    prometheus.register(registry)
    exercise(clock)
    samples = scrape(registry)
    assert 3 == value(samples, "resilience_calls_total", name="users", outcome="ok")
    assert 1 == value(samples, "resilience_calls_total", name="users", outcome="connection")
    assert 1 == value(samples, "resilience_calls_total", name="users", outcome="timeout")
    assert 1 == value(samples, "resilience_calls_total", name="users", outcome="circuit_open")
    assert 2 == value(samples, "resilience_retries_total", name="users", reason="ConnectionError")
    assert 1 == value(samples, "resilience_timeouts_total", name="users", kind="timeout")
    assert 1 == value(samples, "resilience_circuit_state", name="users-cb", state="open")
    assert 0 == value(samples, "resilience_circuit_state", name="users-cb", state="closed")
    assert 0 == value(samples, "resilience_circuit_state", name="users-cb", state="half-open")
    bucket = "resilience_call_duration_seconds_bucket"
    assert 6 == value(samples, "resilience_call_duration_seconds_count", name="users")
    assert pytest.approx(0.003 + 0.2 + 3.0 + 1.0) == value(
        samples, "resilience_call_duration_seconds_sum", name="users"
    )
    # the failure and the rejection take 0 s, the timeout 1 s
    assert 3 == value(samples, bucket, name="users", le="0.005")
    assert 4 == value(samples, bucket, name="users", le="0.25")
    assert 5 == value(samples, bucket, name="users", le="1.0")
    assert 6 == value(samples, bucket, name="users", le="5.0")
    assert 6 == value(samples, bucket, name="users", le="+Inf")


def test_every_family_is_there_with_no_calls_yet() -> None:
    """The five families are exposed (empty) before any call, with their types."""
    registry = CollectorRegistry()
    prometheus.register(registry)
    families = {f.name: f.type for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert {
        "resilience_calls": "counter",
        "resilience_call_duration_seconds": "histogram",
        "resilience_retries": "counter",
        "resilience_timeouts": "counter",
        "resilience_circuit_state": "gauge",
    } == families


def test_register_is_idempotent_and_uses_the_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """``register()`` twice gives the same collector; with no registry it goes to prometheus_client's default."""
    default = CollectorRegistry()
    monkeypatch.setattr(prometheus, "REGISTRY", default)
    first = prometheus.register()
    assert first is prometheus.register()
    rs.monitored("svc")(lambda: None)()
    assert 1 == value(scrape(default), "resilience_calls_total", name="svc", outcome="ok")


def test_custom_buckets_and_private_registry(clock: rs.testing.FakeClock) -> None:
    """``buckets=`` sets the histogram's bounds; ``source=`` reads another monitor Registry."""
    private = rs.monitor.Registry()
    registry = CollectorRegistry()
    prometheus.register(registry, source=private, buckets=[0.1, 1])
    rs.monitored("svc", registry=private)(lambda: clock.advance(0.5))()
    samples = scrape(registry)
    bounds = sorted(dict(labels)["le"] for name, labels in samples if name == "resilience_call_duration_seconds_bucket")
    assert ["+Inf", "0.1", "1.0"] == bounds
    assert (0, 1) == (
        value(samples, "resilience_call_duration_seconds_bucket", name="svc", le="0.1"),
        value(samples, "resilience_call_duration_seconds_bucket", name="svc", le="1.0"),
    )


@pytest.mark.parametrize("buckets", [[], [0, 1], [-1.0], [1.0, 1.0]])
def test_bad_buckets_are_rejected(buckets: list[float]) -> None:
    """Bounds must be distinct positive seconds."""
    with pytest.raises(ValueError, match="buckets"):
        prometheus.register(CollectorRegistry(), buckets=buckets)


def test_multiprocess_mode_needs_the_environment() -> None:
    """Asking for multi-process mode when prometheus_client is not in it says what to set."""
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        prometheus.register(multiprocess=True)


WORKER = textwrap.dedent(
    """
    import sys
    import resilience as rs
    from resilience.exporters import prometheus

    mirror = prometheus.register(interval=0)
    worker = int(sys.argv[1])

    @rs.monitored("users")
    @rs.retry_on(ConnectionError, attempts=2, wait_initial=0)
    def get(fail):
        if fail:
            raise ConnectionError("down")
        return "ok"

    for index in range(10 * worker):
        get(False)
    try:
        get(True)
    except ConnectionError:
        pass
    prometheus.flush()
    for index in range(5):  # after a flush: pushed by the exit hook
        get(False)
    rs.circuit("users-cb")
    if worker == 2:
        rs.circuit.get("users-cb").open()
    print(type(mirror).__name__)
    """
)


def test_multiprocess_mode_with_two_processes(tmp_path: Path) -> None:
    """Two worker processes write to PROMETHEUS_MULTIPROC_DIR; prometheus_client's MultiProcessCollector sums them."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(worker)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in (1, 2)
    ]
    outputs = [worker.communicate(timeout=60)[0].strip() for worker in workers]
    assert [0, 0] == [worker.returncode for worker in workers]
    assert ["MultiprocessMirror", "MultiprocessMirror"] == outputs
    assert 2 <= len(list(tmp_path.glob("counter_*.db")))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    samples = scrape(registry)
    assert (10 + 5) + (20 + 5) == value(samples, "resilience_calls_total", name="users", outcome="ok")
    assert 2 == value(samples, "resilience_calls_total", name="users", outcome="connection")
    assert 2 == value(samples, "resilience_retries_total", name="users", reason="ConnectionError")
    assert 42 == value(samples, "resilience_call_duration_seconds_count", name="users")
    assert 42 == value(samples, "resilience_call_duration_seconds_bucket", name="users", le="+Inf")
    assert 1 == value(samples, "resilience_circuit_state", name="users-cb", state="open")
    assert 1 == value(samples, "resilience_circuit_state", name="users-cb", state="closed")  # worker 1's


def test_multiprocess_mirror_adds_only_what_changed(tmp_path: Path) -> None:
    """In one worker, flushing twice does not count twice, and calls between flushes are added."""
    script = textwrap.dedent(
        """
        import json
        import resilience as rs
        from prometheus_client import CollectorRegistry, multiprocess
        from prometheus_client.parser import text_string_to_metric_families
        from prometheus_client import generate_latest
        from resilience.exporters import prometheus

        prometheus.register(interval=0)
        fn = rs.monitored("svc")(lambda: None)

        def total():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            text = generate_latest(registry).decode()
            return [s.value for f in text_string_to_metric_families(text) for s in f.samples
                    if s.name == "resilience_calls_total"]

        fn(); fn()
        prometheus.flush(); prometheus.flush()
        first = total()
        fn()
        prometheus.flush()
        print(json.dumps([first, total()]))
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert 0 == done.returncode, done.stderr
    assert [[2.0], [3.0]] == json.loads(done.stdout)


@pytest.mark.parametrize("module", ["prometheus_client", "opentelemetry"])
def test_resilience_and_its_exporters_package_import_no_metrics_library(module: str) -> None:
    """``import resilience`` and ``import resilience.exporters`` import neither prometheus_client nor opentelemetry."""
    code = f"import sys, resilience, resilience.exporters; print({module!r} in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert "False" == done.stdout.strip()


def test_histogram_buckets_never_decrease_between_scrapes(clock: rs.testing.FakeClock) -> None:
    """A sketch cell stays in one bucket as its cell's max moves, so cumulative buckets only grow."""
    registry = CollectorRegistry()
    prometheus.register(registry)
    fn = rs.monitored("svc")(clock.advance)
    seen = []
    for seconds in (0.049891, 0.050140, 0.0049, 0.0051, 0.74, 0.76):
        fn(seconds)
        samples = scrape(registry)
        seen.append(
            [
                value(samples, "resilience_call_duration_seconds_bucket", name="svc", le=le)
                for le in ("0.005", "0.05", "0.75", "+Inf")
            ]
        )
    assert [sorted(column) for column in zip(*seen, strict=True)] == [
        list(column) for column in zip(*seen, strict=True)
    ]
    assert [1.0, 2.0, 5.0, 6.0] == seen[-1]


def run_multiprocess(tmp_path: Path, script: str) -> Any:
    """Run ``script`` with PROMETHEUS_MULTIPROC_DIR set (bounded); returns the JSON it prints."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    prelude = textwrap.dedent(
        """
        import json, logging, os, sys
        logging.disable(logging.CRITICAL)
        import resilience as rs
        from prometheus_client import CollectorRegistry, generate_latest, multiprocess
        from prometheus_client.parser import text_string_to_metric_families
        from resilience.exporters import prometheus

        def samples(series):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            text = generate_latest(registry).decode()
            return {s.labels.get("le", s.labels.get("outcome")): s.value
                    for f in text_string_to_metric_families(text) for s in f.samples if s.name == series}

        def fail():
            raise ConnectionError("down")

        failing = rs.monitored("svc")(fail)

        def failures(n):
            for _ in range(n):
                try:
                    failing()
                except ConnectionError:
                    pass
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert 0 == done.returncode, done.stderr
    return json.loads(done.stdout)


def test_multiprocess_histogram_does_not_double_count_when_a_cell_max_moves(tmp_path: Path) -> None:
    """Two calls in one sketch cell, either side of a bound, pushed apart: the histogram counts 2."""
    script = """
        with rs.testing.fake_clock() as clock:
            fn = rs.monitored("timed")(clock.advance)
            prometheus.register(interval=0)
            fn(0.049891)
            prometheus.flush()
            fn(0.050140)
            prometheus.flush()
        buckets = samples("resilience_call_duration_seconds_bucket")
        print(json.dumps([buckets["0.075"], buckets["+Inf"], samples("resilience_call_duration_seconds_count")]))
    """
    assert [2.0, 2.0, {"null": 2.0}] == run_multiprocess(tmp_path, script)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_multiprocess_fork_child_pushes_only_its_own_calls(tmp_path: Path) -> None:
    """Calls made after the parent's last push, before fork, are pushed once (by the parent), not by the child too."""
    script = """
        prometheus.register(interval=0)
        failures(5)
        pid = os.fork()
        if pid == 0:
            failures(1)  # the worker's own call, pushed at its exit
            sys.exit(0)
        os.waitpid(pid, 0)
        prometheus.flush()
        print(json.dumps(samples("resilience_calls_total")))
    """
    assert {"connection": 6.0} == run_multiprocess(tmp_path, script)


def test_multiprocess_counts_after_reset_add_to_what_was_pushed(tmp_path: Path) -> None:
    """10 failures pushed, reset, 15 more (more than before) pushed: the counter reads 25."""
    script = """
        prometheus.register(interval=0)
        failures(10)
        prometheus.flush()
        rs.testing.reset()
        failures(15)
        prometheus.flush()
        rs.testing.reset()
        failures(3)
        prometheus.flush()
        print(json.dumps(samples("resilience_calls_total")))
    """
    assert {"connection": 28.0} == run_multiprocess(tmp_path, script)


def test_register_gives_every_new_registry_a_collector() -> None:
    """Registries freed and created again (ids reused) each get the collector; freed ones leave no entry."""
    import gc

    rs.monitored("svc")(lambda: None)()
    gc.collect()
    before = len(prometheus._collectors)
    missing = 0
    for _ in range(20):
        registry = CollectorRegistry()
        prometheus.register(registry)
        missing += b"resilience_calls_total" not in generate_latest(registry)
        del registry
        gc.collect()
    assert (0, before) == (missing, len(prometheus._collectors))
