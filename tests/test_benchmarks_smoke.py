"""The benchmark scripts run (``--quick``) and print every row; no timing is asserted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stamina")
pytest.importorskip("backoff")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

HAPPY_ROWS = [
    "bare f(x)",
    "tenacity @retry",
    "stamina.retry",
    "backoff.on_exception",
    "pybreaker.CircuitBreaker",
    "rs.retry_on",
    "rs.circuit",
    "rs.monitored",
    "rs stack (monitored+retry_on+circuit)",
    "http.policy (all its layers)",
]
FAILURE_ROWS = [
    "hand-written try/except loop",
    "tenacity @retry wait_none()",
    "tenacity wait_none(), sleep=no-op",
    "stamina.retry waits=0",
    "stamina.retry set_testing(attempts=3)",
    "backoff constant interval=0",
    "rs.retry_on wait_initial=0",
]
THREAD_ROWS = ["no breaker", "rs.circuit", "pybreaker.CircuitBreaker"]


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def row_names(output: str) -> list[str]:
    """First column of the table rows: text before a run of 2+ spaces and a number."""
    return [m.group(1) for m in re.finditer(r"^\s*(\S.*?)\s{2,}[\d.]+\s", output, re.MULTILINE)]


def test_overhead_table() -> None:
    output = run("overhead.py")
    names = row_names(output)
    assert names == HAPPY_ROWS + FAILURE_ROWS + FAILURE_ROWS
    assert re.search(r"^TARGET stack <= 0.25x tenacity .* -> (PASS|FAIL)$", output, re.MULTILINE)
    assert re.search(r"^MONITORED @monitored adds <= 1000 ns .* -> (PASS|FAIL)$", output, re.MULTILINE)
    assert "overhead ratio" in output
    assert "Failure path, logging quiet" in output
    assert "Failure path, logging default" in output


def test_overhead_json() -> None:
    result: dict[str, Any] = json.loads(run("overhead.py", "--json"))
    assert [row["name"] for row in result["happy_path"]["rows"]] == HAPPY_ROWS
    assert set(result["failure_path"]) == {"quiet", "default"}
    for block in result["failure_path"].values():
        assert [row["name"] for row in block["rows"]] == FAILURE_ROWS
        assert all(row["us_best"] > 0 for row in block["rows"])
    assert isinstance(result["target"]["pass"], bool)
    assert result["target"]["limit"] == 0.25
    assert isinstance(result["monitored_target"]["pass"], bool)
    assert result["meta"]["quick"] is True


def test_circuit_threads_table() -> None:
    output = run("circuit_threads.py")
    assert row_names(output) == THREAD_ROWS
    assert "8 threads x 3 calls" in output


def test_circuit_threads_json() -> None:
    result: dict[str, Any] = json.loads(run("circuit_threads.py", "--json"))
    assert [row["name"] for row in result["rows"]] == THREAD_ROWS
    assert result["threads"] == 8
    assert all(row["seconds"] > 0 for row in result["rows"])
