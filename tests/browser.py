"""Debian's chromium driven by Playwright, as every browser test launches it.

Playwright cannot download its own browser here, so the tests use /usr/bin/chromium (installed by
scripts/install-system-packages.sh test) with the flags a closed network needs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def chromium() -> Iterator[Any]:
    """Body of a `browser` fixture: yields a launched browser, closes it afterwards."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (scripts/install-system-packages.sh test)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def shot(page: Any, name: str, **options: Any) -> Path:
    """Save a screenshot to tests/artifacts/NAME.png (gitignored) for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **options)
    return path
