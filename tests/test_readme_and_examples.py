"""The README's code and the examples run as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)


def test_readme_python_blocks_run_in_order() -> None:
    """Every ```python block of the README runs, in order, in one namespace."""
    blocks = readme_blocks()
    assert len(blocks) >= 5
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)


def test_readme_opens_with_the_two_setup_commands() -> None:
    """The README starts with one install-and-run command and one install-and-test command."""
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    assert first_block is not None
    commands = first_block.group(1).strip().splitlines()
    assert 2 == len(commands)
    assert commands[0].endswith("python -m resilience demo")
    assert commands[1].endswith("python -m pytest")


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(example: Path) -> None:
    """Each script in examples/ exits 0 on its own."""
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=60, check=False)
    assert 0 == done.returncode, done.stderr[-2000:]


def test_pytest_plugin_fixtures(resilience_no_wait: object, resilience_fake_clock: object) -> None:
    """The installed pytest plugin provides the no-wait and fake-clock fixtures."""
    import resilience as rs

    assert isinstance(resilience_no_wait, rs.testing.FakeClock)
    assert isinstance(resilience_fake_clock, rs.testing.FakeClock)
