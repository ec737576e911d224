"""The public surface: ``__all__``, lazy heavy imports, docstrings, and the typing check."""

# House style (STYLE.md rule 8) reads `assert expected == actual`, which ruff calls a Yoda condition.

from __future__ import annotations
import __future__

import inspect
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

import resilience as rs
from resilience import deadline, errors, http, monitor, testing

PUBLIC_MODULES = {
    "resilience": rs,
    "deadline": deadline,
    "errors": errors,
    "http": http,
    "monitor": monitor,
    "testing": testing,
}


def is_future_feature(name: str, value: object) -> bool:
    """``from __future__ import annotations`` leaves a feature object behind; it is not API."""
    return getattr(__future__, name, None) is value


def test_every_name_in_all_exists() -> None:
    """Each name listed in ``resilience.__all__`` is an attribute of the package."""
    assert [] == [name for name in rs.__all__ if not hasattr(rs, name)]


def test_all_has_no_duplicates() -> None:
    """``__all__`` lists each name once."""
    assert len(set(rs.__all__)) == len(rs.__all__)


def test_every_public_attribute_is_in_all() -> None:
    """Every public, non-module attribute of ``resilience`` is exported in ``__all__``."""
    public = [
        name
        for name, value in vars(rs).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and not is_future_feature(name, value)
    ]
    assert [] == sorted(set(public) - set(rs.__all__))


def test_every_public_http_attribute_is_in_all() -> None:
    """Every public, non-module attribute of ``resilience.http`` is exported in its ``__all__``."""
    public = [
        name
        for name, value in vars(http).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and not is_future_feature(name, value)
    ]
    assert [] == sorted(set(public) - set(http.__all__))
    assert [] == [name for name in http.__all__ if not hasattr(http, name)]


@pytest.mark.parametrize("module", ["requests", "redis", "prometheus_client"])
def test_import_does_not_import_heavy_dependencies(tmp_path: Path, module: str) -> None:
    """``import resilience`` in a fresh interpreter leaves requests, redis and prometheus_client unimported.

    An empty stand-in package of that name is put first on the path, so the check holds
    whether or not the real one is installed here: anything that tries to import it,
    even inside ``try: ... except ImportError``, leaves it in ``sys.modules``.
    """
    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text("")
    code = f"import json, sys; import resilience; print(json.dumps({module!r} in sys.modules))"
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert False is json.loads(completed.stdout)


def exported(module: types.ModuleType) -> list[tuple[str, Any]]:
    names = getattr(module, "__all__", ())
    return [(name, getattr(module, name)) for name in names if not isinstance(getattr(module, name), types.ModuleType)]


@pytest.mark.parametrize("module_name", list(PUBLIC_MODULES))
def test_public_objects_have_docstrings(module_name: str) -> None:
    """Every public module and every object it exports has a docstring."""
    module = PUBLIC_MODULES[module_name]
    assert inspect.getdoc(module)
    assert [] == [name for name, value in exported(module) if not (inspect.getdoc(value) or "").strip()]


def test_policy_methods_have_docstrings() -> None:
    """Policy's public methods and properties say what they do."""
    members = ["layers", "describe", "call", "acall"]
    assert [] == [name for name in members if not inspect.getdoc(getattr(rs.Policy, name))]


def test_mypy_catches_a_lost_signature(tmp_path: Path) -> None:
    """The typing check can fail: mypy flags a wrong use of a decorated function's result."""
    snippet = tmp_path / "wrong.py"
    snippet.write_text(
        textwrap.dedent(
            """\
            import resilience as rs


            @rs.retry_on(ConnectionError)
            def add(a: int, b: int) -> int:
                return a + b


            total: str = add(1, 2)
            """
        )
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            snippet.name,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert 1 == completed.returncode, completed.stdout + completed.stderr
    assert [
        "wrong.py:9: error: Incompatible types in assignment (expression has type "
        '"int", variable has type "str")  [assignment]'
    ] == completed.stdout.splitlines()
