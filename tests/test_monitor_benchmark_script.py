"""``benchmarks/monitor_accuracy.py`` runs (``--quick``) and reports both acceptance figures."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "monitor_accuracy.py"


def test_accuracy_and_memory_figures() -> None:
    """The quick run prints p50/p95/p99 errors within 1 % and RSS growth for 100 names, as JSON."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"], capture_output=True, text=True, timeout=300, check=False
    )
    assert 0 == done.returncode, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    accuracy = result["accuracy"]
    assert ["p50", "p95", "p99"] == list(accuracy["quantiles"])
    assert all(row["relative_error"] <= 0.01 for row in accuracy["quantiles"].values())
    assert 100_000 == accuracy["samples"]
    assert [100_000, 100_000] == [block["counted"] for block in result["memory"]]
    assert all(isinstance(block["growth_bytes"], int) for block in result["memory"])
