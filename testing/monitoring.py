"""The monitoring tools the tests run for real: promtool, amtool, prometheus (Debian packages).

A missing tool skips the test on a developer's machine; in CI (PAYGATE_REQUIRE_SERVICES=1),
which installs them, it fails it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import ROOT

RULES_DIR = ROOT / "ops" / "prometheus"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
RULE_TESTS = RULES_DIR / "tests" / "alerts.test.yml"
ALERTMANAGER_CONFIG = ROOT / "ops" / "alertmanager" / "alertmanager.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"


def require_tool(*names: str) -> str:
    """The path of the first of `names` installed; skip (fail in CI) when none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    message = f"{' or '.join(names)} is not installed (Debian: apt-get install prometheus prometheus-alertmanager)"
    if os.environ.get("PAYGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def run_tool(argv: list[str | Path], *, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion; fail the test with its output unless it exits 0."""
    result = subprocess.run(
        [str(arg) for arg in argv], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result
