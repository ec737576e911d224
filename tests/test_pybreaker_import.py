"""pybreaker is imported without its eager redis import, and gets Redis support back on first use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_redis_storage_works_after_import_without_redis(tmp_path: Path) -> None:
    """import resilience leaves redis unimported; building a CircuitRedisStorage then loads it."""
    stub = tmp_path / "redis"
    stub.mkdir()
    (stub / "__init__.py").write_text("class Redis:\n    pass\n")
    (stub / "client.py").write_text("class Pipeline:\n    pass\n")
    (stub / "exceptions.py").write_text("class RedisError(Exception):\n    pass\n")
    code = """
import json, sys
import resilience, pybreaker
before = "redis" in sys.modules
class FakeRedis:
    def setnx(self, key, value):
        return True
storage = pybreaker.CircuitRedisStorage("closed", redis_object=FakeRedis())
print(json.dumps([before, "redis" in sys.modules, pybreaker.HAS_REDIS_SUPPORT]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
    )
    assert [False, True, True] == json.loads(done.stdout)
