"""Login throttling, CSRF tokens and the session secret of the staff pages.

Hand-written rather than a plugin each: the pieces are short, and owning them keeps the rules
visible (which requests are checked, what a throttled login is told). Everything a later request
may need to see lives in the database or in the signed cookie, never in one process's memory:
the centre may run as several processes (docs/central-nginx.md).
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from flask import abort, g, request, session
from sqlalchemy import Connection, DateTime, Engine, case, literal, select, update

from central.db.bulk import dialect_insert, write_transaction
from central.db.schema import login_throttle
from central.timefix import to_utc_naive
from sync.web_security import tokens_equal

CSRF_SESSION_KEY = "csrf"
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _session_csrf() -> str | None:
    """The logged-in session's token (in its database row), if a staff session is open."""
    staff_session = g.get("staff_session")
    return None if staff_session is None else str(staff_session.csrf)


def csrf_token() -> str:
    """This session's CSRF token. Templates put it in every form.

    Logged in: the token of the session's row, so it ends with the session. Before login (the
    login form): a token in the signed cookie, made on first use.
    """
    logged_in = _session_csrf()
    if logged_in is not None:
        return logged_in
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def check_csrf() -> None:
    """Abort with 400 unless an unsafe request carries this session's token."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = _session_csrf() or session.get(CSRF_SESSION_KEY)
    sent = request.form.get(CSRF_FORM_FIELD) or request.headers.get(CSRF_HEADER) or ""
    # Compared as UTF-8 bytes: a non-ASCII token is simply not the token (not a 500).
    if not isinstance(expected, str) or not tokens_equal(expected, sent):
        abort(400, description="csrf")


class _Refused(Exception):
    """A throttle key is at its limit: the claim's transaction rolls back."""

    def __init__(self, key: str) -> None:
        self.key = key


class LoginThrottle:
    """Limits password checks per (user name, client address) and per client address.

    Per pair, so guessing one account's password from one address stops after `max_failures`
    while the account's owner, from their own address, still gets in: an address cannot lock an
    account for everyone. Per address (`address_max_failures`), so one machine cannot spray
    guesses over many names. Counts live in the database (shared by every process).

    An attempt is claimed before the password is checked, by one conditional upsert per key that
    only succeeds below the limit, in one transaction: a burst of parallel requests gets exactly
    the attempts left, never more. A login that succeeds gives its claims back. Refused attempts
    count nothing, so a flood does not stretch the window. Windows are fixed: they begin with the
    first attempt of a key and last `window_s`.
    """

    def __init__(
        self,
        engine: Engine,
        max_failures: int,
        window_s: float,
        address_max_failures: int,
        now: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_s)
        self.address_max_failures = address_max_failures
        self._now = now

    @staticmethod
    def _key(*parts: str) -> str:
        return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()

    def _keys(self, address: str, username: str) -> list[tuple[str, int]]:
        name = username.strip().lower()
        return [
            (self._key("pair", address, name), self.max_failures),
            (self._key("address", address), self.address_max_failures),
        ]

    def claim(self, address: str, username: str) -> int:
        """Claim one password check: 0 when it may go ahead (counted as a failure until
        `succeeded`), else the seconds until the blocking window ends."""
        now = to_utc_naive(self._now())
        edge = now - self.window
        try:
            with write_transaction(self.engine) as conn:
                for key, limit in self._keys(address, username):
                    if not self._claim_one(conn, key, limit, now, edge):
                        raise _Refused(key)
        except _Refused as refused:
            with self.engine.connect() as conn:
                started = conn.execute(
                    select(login_throttle.c.window_start).where(login_throttle.c.key == refused.key)
                ).scalar_one_or_none()
            ends = (started or now) + self.window
            return max(1, math.ceil((ends - now).total_seconds()))
        return 0

    @staticmethod
    def _claim_one(conn: Connection, key: str, limit: int, now: datetime, edge: datetime) -> bool:
        table = login_throttle
        stale = table.c.window_start <= edge
        claim = (
            dialect_insert(conn, table)
            .values(key=key, window_start=now, attempts=1)
            .on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "attempts": case((stale, 1), else_=table.c.attempts + 1),
                    "window_start": case(
                        (stale, literal(now, DateTime())), else_=table.c.window_start
                    ),
                },
                where=stale | (table.c.attempts < limit),
            )
            .returning(table.c.attempts)
        )
        return conn.execute(claim).first() is not None

    def succeeded(self, address: str, username: str) -> None:
        """The password was right: forget the pair's failures, give the address its claim back."""
        (pair, _), (address_key, _) = self._keys(address, username)
        with write_transaction(self.engine) as conn:
            conn.execute(login_throttle.delete().where(login_throttle.c.key == pair))
            conn.execute(
                update(login_throttle)
                .where(login_throttle.c.key == address_key, login_throttle.c.attempts > 0)
                .values(attempts=login_throttle.c.attempts - 1)
            )


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
