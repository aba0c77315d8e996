"""The lead page's cookie secret, CSRF tokens and the screen's token.

The PIN, the lead's sessions and the count of wrong PINs live in kiosk/lead_auth.py (on disk,
beside the log); the cookie signed with `secret_key` only carries a session id that
kiosk/lead_auth.py must still list, so the key alone (on a copied SD card) makes no session.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from flask import abort, request, session

from kiosk.store.diskio import DiskIO, atomic_write_bytes, make_dirs
from sync.web_security import tokens_equal

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = "secret_key"


def load_secret_key(instance: Path) -> bytes:
    """The instance's session key, made once (mode 0600) and kept across restarts."""
    path = instance / SECRET_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    if len(key) >= 32 and any(key):
        return key
    if key:
        # Cut short or zeros (a damaged disk; zeros would be a key anyone can sign with): a new
        # key, replacing it (lead sessions start again).
        atomic_write_bytes(DiskIO(), path, secrets.token_bytes(32), mode=0o600)
        return path.read_bytes()
    make_dirs(DiskIO(), instance)
    tmp = instance / f".{SECRET_FILE}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(32))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # A link never replaces: two processes starting at once both keep the first key.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(24)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """Refuses a state-changing request without the session's token (form field or header)."""
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not isinstance(expected, str) or not tokens_equal(expected, sent):
        abort(400, description="csrf")


def screen_token(secret_key: bytes) -> str:
    """The kiosk screen's token for its POSTs; stable across restarts (derived from the key)."""
    return hmac.new(secret_key, b"kiosk-screen", hashlib.sha256).hexdigest()[:32]
