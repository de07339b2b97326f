"""The sandbox is a stand-in third party: it shares no code with Paygate and needs no Django.

A shared module would let one bug hide on both sides of the protocol, so every file under
sandbox/ (its tests too) is checked for imports of Paygate's packages, and the sandbox's
own modules (all but `tests/`) for anything beyond the standard library,
requests and defusedxml.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SANDBOX = Path(__file__).resolve().parents[1]
PROJECT_ROOT = SANDBOX.parent
PAYGATE_PACKAGES = frozenset({"payments", "callbacks", "gateways", "paygate", "core", "ops", "bench", "chaos"})
ALLOWED_THIRD_PARTY = frozenset({"requests", "defusedxml"})
# Only the tests may use test tools.
NOT_THE_SANDBOX_ITSELF = ("tests",)

ALL_FILES = sorted(SANDBOX.rglob("*.py"))
OWN_FILES = [path for path in ALL_FILES if path.relative_to(SANDBOX).parts[0] not in NOT_THE_SANDBOX_ITSELF]


def label(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


def imported_packages(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level package) for each absolute import; relative ones stay inside sandbox/."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.partition(".")[0]


def test_the_split_modules_are_all_checked() -> None:
    names = {path.name for path in OWN_FILES}
    assert {"store.py", "scheduler.py", "gateway.py", "soap.py", "server.py", "signing.py", "cli.py"} <= names


@pytest.mark.parametrize("path", ALL_FILES, ids=label)
def test_nothing_under_sandbox_imports_paygate(path: Path) -> None:
    offending = [
        f"{label(path)}:{line} imports {package}"
        for line, package in imported_packages(path)
        if package in PAYGATE_PACKAGES
    ]
    assert offending == []


@pytest.mark.parametrize("path", OWN_FILES, ids=label)
def test_the_sandbox_uses_only_the_standard_library_requests_and_defusedxml(path: Path) -> None:
    allowed = sys.stdlib_module_names | ALLOWED_THIRD_PARTY | {"sandbox"}
    outside = [
        f"{label(path)}:{line} imports {package}" for line, package in imported_packages(path) if package not in allowed
    ]
    assert outside == []


def test_importing_every_sandbox_module_loads_neither_django_nor_paygate() -> None:
    """At run time too (an import hidden in a function or via importlib would escape the AST check)."""
    modules = [".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts) for path in OWN_FILES]
    modules = [name.removesuffix(".__init__") for name in modules if not name.endswith("__main__")]
    script = (
        "import importlib, json, sys\n"
        "sys.modules['django'] = None  # any import of Django now fails\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({n.partition('.')[0] for n, m in sys.modules.items() if m is not None})))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "sandbox" in loaded
    assert loaded & (PAYGATE_PACKAGES | {"django"}) == set()
