"""A real browser for the pay page's tests: Debian's chromium driven by playwright.

A missing browser skips the test on a developer's machine; in CI (PAYGATE_REQUIRE_SERVICES=1),
which installs it (.ci/run), it fails it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def chromium_path() -> str:
    path = os.environ.get("PAYGATE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
    except ImportError:
        path = None
    if not path:
        message = "chromium or playwright is missing (Debian: apt-get install chromium; pip install playwright)"
        if os.environ.get("PAYGATE_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextmanager
def launched() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> None:
    """With PAYGATE_SCREENSHOT_DIR set, keep a screenshot of the page there (the README's images)."""
    folder = os.environ.get("PAYGATE_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
