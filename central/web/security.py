"""Login throttling, CSRF tokens and the session secret of the staff pages.

Hand-written rather than a plugin each: the three pieces are short, and owning them keeps the
rules visible (which requests are checked, what a throttled login is told).
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from flask import abort, request, session

CSRF_SESSION_KEY = "csrf"
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token() -> str:
    """This session's CSRF token, created on first use. Templates put it in every form."""
    token = session.get(CSRF_SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def check_csrf() -> None:
    """Abort with 400 unless an unsafe request carries this session's token."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = session.get(CSRF_SESSION_KEY)
    sent = request.form.get(CSRF_FORM_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected), sent):
        abort(400, description="csrf")


class LoginThrottle:
    """Refuses logins after too many failures from one address or for one user name.

    Both keys count: per address stops one machine guessing many names, per name stops many
    machines guessing one password. In memory, as the centre runs as one process (waitress
    threads); a restart forgets the counts, which only helps someone who can restart the server.
    """

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, address: str, username: str) -> tuple[str, str]:
        return (f"addr:{address}", f"user:{username.strip().lower()}")

    def _prune(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, address: str, username: str) -> int:
        """Seconds until a login may be tried again; 0 when it may be tried now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(address, username):
                times = self._prune(key, now)
                if len(times) >= self.max_failures:
                    wait = max(wait, times[0] + self.window_s - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, address: str, username: str) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(address, username):
                self._prune(key, now)
                self._failures.setdefault(key, deque()).append(now)
                # Bound memory: only the newest max_failures matter for the decision.
                while len(self._failures[key]) > self.max_failures:
                    self._failures[key].popleft()

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._failures.pop(self._keys(address, username)[1], None)


SECRET_FILE = "session_secret"


def load_or_create_secret(path: Path) -> bytes:
    """The session-signing secret at `path`, created (mode 0600) on first start.

    A file in the instance folder rather than a setting, so central.toml can be shown and shared
    without it; kept across restarts, so staff stay logged in when the server restarts.
    """
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        data = b""
    if data:
        if len(data) < 32:
            raise ValueError(f"{path}: session secret shorter than 32 bytes; delete it to renew")
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process made it between our read and open: use theirs.
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
        out.flush()
        os.fsync(out.fileno())
    return secret
