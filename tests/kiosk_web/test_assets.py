"""Offline assets: nothing in the kiosk's pages points off the kiosk."""

from __future__ import annotations

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "kiosk" / "web"
# A URL with a host: http://..., https://... or protocol-relative //host/...
EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)


def test_templates_scripts_and_styles_load_nothing_from_elsewhere():
    files = [p for p in WEB.rglob("*") if p.suffix in {".html", ".js", ".css", ".svg"}]
    assert len(files) >= 8
    offenders = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        # The SVG namespace is an identifier, not something fetched.
        text = text.replace("http://www.w3.org/2000/svg", "")
        found = EXTERNAL.findall(text)
        if found:
            offenders[str(path.relative_to(WEB))] = found
    assert offenders == {}


def test_no_webfont_or_import_rules():
    for path in WEB.rglob("*.css"):
        text = path.read_text(encoding="utf-8")
        assert "@import" not in text and "@font-face" not in text, path
