"""Small helpers the blueprints share."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import cast

from flask import current_app, url_for

from kiosk.services import KioskServices

STATIC = Path(__file__).resolve().parent / "static"


def services() -> KioskServices:
    """The services of the app serving this request (kiosk.app.create_app put them there)."""
    return cast(KioskServices, current_app.extensions["kiosk"])


@cache
def _fingerprint(filename: str) -> str:
    # Content hash in the URL: after an upgrade the browser fetches the new file, not its cache.
    return hashlib.sha256((STATIC / filename).read_bytes()).hexdigest()[:10]


def asset_url(filename: str) -> str:
    return url_for("static", filename=filename, v=_fingerprint(filename))
