"""The site lead's login: a PIN, a lockout after too many wrong ones, a session, CSRF tokens.

Guessing is what a PIN has to survive: after `lead_max_failures` wrong PINs in a row the login is
locked for `lead_lockout_s`, and each further lockout before a good login lasts twice as long (up to
a day), so a four-digit PIN cannot be walked through in an afternoon. The lock is for the whole
kiosk, not per address: on a shared site network addresses are cheap to change.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flask import abort, request, session

from kiosk.store.diskio import DiskIO, atomic_write_bytes, make_dirs

MAX_LOCKOUT_S = 24 * 3600.0
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = "secret_key"


@dataclass(frozen=True)
class LoginResult:
    status: Literal["ok", "wrong", "locked", "no_pin"]
    attempts_left: int = 0
    locked_for_s: float = 0.0


class PinGate:
    """Checks PINs and keeps the count of wrong ones. Thread-safe; time is injectable."""

    def __init__(
        self,
        max_failures: int,
        lockout_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failures = 0
        self._lockouts = 0
        self._locked_until = 0.0

    def locked_for_s(self) -> float:
        with self._lock:
            return max(0.0, self._locked_until - self._monotonic())

    def attempt(self, expected_pin: str, entered: str) -> LoginResult:
        if not expected_pin:
            return LoginResult("no_pin")
        with self._lock:
            now = self._monotonic()
            if now < self._locked_until:
                return LoginResult("locked", locked_for_s=self._locked_until - now)
            # compare_digest on equal-length digests: the answer time tells nothing of the PIN.
            good = hmac.compare_digest(_digest(expected_pin), _digest(entered))
            if good:
                self._failures = 0
                self._lockouts = 0
                return LoginResult("ok")
            self._failures += 1
            if self._failures >= self.max_failures:
                duration = min(self.lockout_s * 2**self._lockouts, MAX_LOCKOUT_S)
                self._lockouts += 1
                self._failures = 0
                self._locked_until = now + duration
                return LoginResult("locked", locked_for_s=duration)
            return LoginResult("wrong", attempts_left=self.max_failures - self._failures)


def _digest(pin: str) -> bytes:
    return hashlib.sha256(pin.encode("utf-8", "replace")).digest()


def pin_fingerprint(secret_key: bytes, pin: str) -> str:
    """Kept in the session: changing the PIN logs every phone out."""
    return hmac.new(secret_key, b"lead-pin:" + pin.encode(), hashlib.sha256).hexdigest()[:32]


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
    if not expected or not hmac.compare_digest(str(expected), sent):
        abort(400, description="csrf")


def screen_token(secret_key: bytes) -> str:
    """The kiosk screen's token for its POSTs; stable across restarts (derived from the key)."""
    return hmac.new(secret_key, b"kiosk-screen", hashlib.sha256).hexdigest()[:32]
