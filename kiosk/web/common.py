"""Small helpers the blueprints share."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from flask import current_app, url_for

if TYPE_CHECKING:
    from kiosk.app import KioskServices

STATIC = Path(__file__).resolve().parent / "static"


def services() -> KioskServices:
    return current_app.extensions["kiosk"]


@cache
def _fingerprint(filename: str) -> str:
    # Content hash in the URL: after an upgrade the browser fetches the new file, not its cache.
    return hashlib.sha256((STATIC / filename).read_bytes()).hexdigest()[:10]


def asset_url(filename: str) -> str:
    return url_for("static", filename=filename, v=_fingerprint(filename))
