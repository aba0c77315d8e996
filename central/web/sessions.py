"""Staff sessions kept in the database, so every `central serve` process shares them.

The signed session cookie carries a random token; the `staff_sessions` table keeps its sha256,
the user, the session's CSRF token and when it expires. Any process finds the session by the
token; logging out deletes the row, so the cookie stops working everywhere at once (a copy of it
included), and changing or disabling a password deletes every row of that user
(central/users.py). The table holds no token itself: a copy of the database opens no session.

A session lasts `lifetime` after it was last seen; `seen_at` is written at most once a minute, so
reading pages costs no write per request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from central.db.schema import staff_sessions
from central.timefix import to_utc_naive

TOUCH_EVERY = timedelta(minutes=1)
TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters; anything far from that is not one of ours.
TOKEN_MAX = 64


@dataclass(frozen=True)
class StaffSession:
    session_hash: str
    user_id: int
    csrf: str
    expires_at: datetime  # naive UTC


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _plausible(token: object) -> bool:
    return isinstance(token, str) and 0 < len(token) <= TOKEN_MAX and token.isascii()


def open_session(
    engine: Engine, user_id: int, now: datetime, lifetime: timedelta
) -> tuple[str, StaffSession]:
    """A new session of `user_id`: (token for the cookie, the session)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    at = to_utc_naive(now)
    made = StaffSession(_hash(token), user_id, secrets.token_urlsafe(32), at + lifetime)
    with engine.begin() as conn:
        conn.execute(
            insert(staff_sessions).values(
                session_hash=made.session_hash,
                user_id=user_id,
                csrf=made.csrf,
                created_at=at,
                seen_at=at,
                expires_at=made.expires_at,
            )
        )
    return token, made


def find(engine: Engine, token: object, now: datetime, lifetime: timedelta) -> StaffSession | None:
    """The live session of `token`, extended by use; None when there is none (any more)."""
    if not _plausible(token):
        return None
    assert isinstance(token, str)
    at = to_utc_naive(now)
    key = _hash(token)
    with engine.connect() as conn:
        row = conn.execute(
            select(staff_sessions).where(staff_sessions.c.session_hash == key)
        ).first()
    if row is None or row.expires_at <= at:
        return None
    found = StaffSession(row.session_hash, row.user_id, row.csrf, row.expires_at)
    if at - row.seen_at >= TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(
                update(staff_sessions)
                .where(staff_sessions.c.session_hash == key)
                .values(seen_at=at, expires_at=at + lifetime)
            )
    return found


def end(engine: Engine, token: object) -> bool:
    """End the session of `token` on every process; False when there was none."""
    if not _plausible(token):
        return False
    assert isinstance(token, str)
    with engine.begin() as conn:
        ended = conn.execute(
            delete(staff_sessions).where(staff_sessions.c.session_hash == _hash(token))
        ).rowcount
    return bool(ended)


def count_open(engine: Engine, user_id: int, now: datetime) -> int:
    with engine.connect() as conn:
        rows = conn.execute(
            select(staff_sessions.c.session_hash).where(
                staff_sessions.c.user_id == user_id,
                staff_sessions.c.expires_at > to_utc_naive(now),
            )
        ).all()
    return len(rows)
