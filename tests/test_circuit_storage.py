"""``rs.circuit(storage=...)``: which storages are accepted, and redis imported only when asked for."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations

import json
import subprocess
import sys

import pybreaker
import pytest

import resilience as rs

URL = "redis://127.0.0.1:1/0"  # never contacted by these tests


def test_redis_is_imported_only_when_a_redis_storage_is_declared() -> None:
    """Memory and pybreaker storages leave redis unimported; the first redis:// storage imports it."""
    pytest.importorskip("redis")
    code = f"""
import json, sys
import resilience as rs
import pybreaker  # after resilience, which imports it without its eager `import redis`
rs.circuit("a", failure_rate=0.5, slow_call=1.0, slow_rate=0.5)
rs.circuit("b", storage=pybreaker.CircuitMemoryStorage("closed"))
before = "redis" in sys.modules
rs.circuit("c", storage={URL!r})
print(json.dumps([before, "redis" in sys.modules]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert [False, True] == json.loads(done.stdout)


def test_same_url_is_the_same_storage() -> None:
    """A second declaration with an equal URL string is the same breaker; another URL is a conflict."""
    pytest.importorskip("redis")
    first = rs.circuit("shared", storage=URL)
    assert first.breaker is rs.circuit("shared", storage="redis://127.0.0.1:1/0").breaker
    assert first.breaker is rs.circuit("shared").breaker
    with pytest.raises(ValueError, match="storage"):
        rs.circuit("shared", storage="redis://127.0.0.1:2/0")


def test_redis_breaker_is_a_breaker_with_storage_stats() -> None:
    """A Redis-backed breaker is an rs.Breaker; its repr and type are those of the public class."""
    pytest.importorskip("redis")
    breaker = rs.circuit("typed", storage=URL).breaker
    assert isinstance(breaker, rs.Breaker)
    assert (True, "typed") == (breaker.awaits, breaker.name)


@pytest.mark.parametrize(
    "storage", [object(), "memory", "postgres://db", pybreaker.CircuitBreaker()], ids=["object", "word", "url", "cb"]
)
def test_other_storages_are_refused_naming_the_accepted_kinds(storage: object) -> None:
    """Anything but a pybreaker storage, a redis:// URL or a redis client is a TypeError naming storage."""
    with pytest.raises(TypeError, match=r"storage must be a pybreaker.CircuitBreakerStorage, a redis:// URL"):
        rs.circuit("x", storage=storage)  # type: ignore[arg-type]
