"""API tokens of the read API: one per integration, each with the scopes it may read.

An admin makes a token (staff page "API tokens" or `central api-token add`); the token is shown
once and only its sha256 is stored, so a copy of the database opens nothing. A token is long and
random (256 bits), so a plain hash is enough: no password stretching is needed to stop guessing.
Revoking takes effect on the next request to any process: every request looks the hash up.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from central.db.schema import api_tokens

# What each scope lets a token read (the OpenAPI document names the scope of each path).
SCOPES: tuple[str, ...] = ("events", "stays", "attendance", "anomalies", "kiosks")
TOKEN_PREFIX = "cit_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# last_used_at is written at most this often, so a busy integration does not write on every read.
USE_WRITE_EVERY = timedelta(minutes=1)


class TokenError(ValueError):
    """A token could not be made or revoked; the message says why, for a person."""


@dataclass(frozen=True)
class ApiToken:
    token_id: int
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _of_row(row: Any) -> ApiToken:
    return ApiToken(
        token_id=row.token_id,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The scopes in their documented order; refuses an unknown one or none at all."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise TokenError(f"unknown scope(s) {', '.join(unknown)}: choose from {', '.join(SCOPES)}")
    if not scopes:
        raise TokenError(f"choose at least one scope of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in scopes)


def add_token(
    engine: Engine, name: str, scopes: list[str] | tuple[str, ...], by: str, now: datetime
) -> tuple[ApiToken, str]:
    """Make a token; returns it with its clear text, which is never stored nor shown again."""
    if not NAME_PATTERN.match(name):
        raise TokenError("token name: 1-64 letters, digits or . _ - (no spaces)")
    chosen = check_scopes(scopes)
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(api_tokens).values(
                    name=name,
                    token_hash=hash_token(clear),
                    scopes=" ".join(chosen),
                    created_at=now,
                    created_by=by,
                )
            )
            row = conn.execute(select(api_tokens).where(api_tokens.c.name == name)).one()
    except IntegrityError as exc:
        raise TokenError(f"a token named {name!r} already exists") from exc
    return _of_row(row), clear


def list_tokens(conn: Connection) -> list[ApiToken]:
    rows = conn.execute(select(api_tokens).order_by(api_tokens.c.name))
    return [_of_row(r) for r in rows]


def revoke_token(engine: Engine, name: str, by: str, now: datetime) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by=by)
        ).rowcount
    if not done:
        raise TokenError(f"no active token named {name!r}")


def authenticate(engine: Engine, clear: str, now: datetime) -> ApiToken | None:
    """The active token of this clear text, or None; notes its use (at most once a minute)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(api_tokens).where(api_tokens.c.token_hash == hash_token(clear))
        ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= USE_WRITE_EVERY:
        with engine.begin() as conn:
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.token_id == row.token_id)
                .values(last_used_at=now)
            )
    return _of_row(row)
