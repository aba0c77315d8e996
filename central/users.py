"""Central staff accounts: who may log in to the staff pages, and with which role.

Two roles: "admin" may import the roster, print and revoke badges, enrol and revoke kiosks and
correct records; "viewer" may only look and export. Passwords are stored as scrypt hashes
(werkzeug.security); the clear text is never kept.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    Connection,
    Engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from central.db.schema import staff_sessions, staff_users

Role = Literal["admin", "viewer"]
ROLES: tuple[str, ...] = get_args(Role)
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_PASSWORD_LENGTH = 10


# Checked against when the name is unknown, so a wrong name costs as long as a wrong password and
# the login page does not reveal which staff names exist.
@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash("not-a-real-password-0000")


class UserError(ValueError):
    """A user could not be created or changed; the message says why, for a person."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    active: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _row_to_user(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        role=row.role,
        active=bool(row.active),
    )


def validate_new(username: str, password: str, role: str) -> None:
    if not USERNAME_PATTERN.match(username):
        raise UserError(f"user name {username!r}: 1-64 letters, digits or . _ @ - (no spaces)")
    if role not in ROLES:
        raise UserError(f"role {role!r}: use one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")


def add_user(engine: Engine, username: str, password: str, role: str) -> User:
    """Create a staff account. Raises UserError for a bad name, role, short password or a
    name already taken; nothing is written then."""
    validate_new(username, password, role)
    password_hash = generate_password_hash(password)
    try:
        with engine.begin() as conn:
            result = conn.execute(
                insert(staff_users).values(
                    username=username,
                    password_hash=password_hash,
                    role=role,
                    active=True,
                    created_at=datetime.now(UTC),
                )
            )
            assert result.inserted_primary_key is not None  # a single-row INSERT has one
            new_id = result.inserted_primary_key[0]
    except IntegrityError as exc:
        raise UserError(f"user {username!r} already exists") from exc
    return User(
        id=int(new_id),
        username=username,
        role=role,  # type: ignore[arg-type]
        active=True,
    )


def _end_sessions(conn: Connection, username: str) -> int:
    """End every staff session of `username`, on every process (the sessions are rows)."""
    user_ids = select(staff_users.c.id).where(staff_users.c.username == username)
    return conn.execute(
        delete(staff_sessions).where(staff_sessions.c.user_id.in_(user_ids.scalar_subquery()))
    ).rowcount


def set_password(engine: Engine, username: str, password: str) -> int:
    """Change the password and end every session of the user; returns the sessions ended."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    with engine.begin() as conn:
        changed = conn.execute(
            update(staff_users)
            .where(staff_users.c.username == username)
            .values(password_hash=generate_password_hash(password))
        ).rowcount
        if not changed:
            raise UserError(f"no user {username!r}")
        return _end_sessions(conn, username)


def set_active(engine: Engine, username: str, active: bool) -> int:
    """Enable or disable an account; disabling ends its sessions (returns how many)."""
    with engine.begin() as conn:
        changed = conn.execute(
            update(staff_users).where(staff_users.c.username == username).values(active=active)
        ).rowcount
        if not changed:
            raise UserError(f"no user {username!r}")
        return 0 if active else _end_sessions(conn, username)


def end_sessions(engine: Engine, username: str) -> int:
    """Log `username` out everywhere without changing anything else; returns sessions ended."""
    with engine.begin() as conn:
        known = select(staff_users.c.id).where(staff_users.c.username == username)
        if conn.execute(known).first() is None:
            raise UserError(f"no user {username!r}")
        return _end_sessions(conn, username)


def authenticate(engine: Engine, username: str, password: str) -> User | None:
    """The active user with this name and password, else None (same cost either way)."""
    with engine.connect() as conn:
        row = conn.execute(select(staff_users).where(staff_users.c.username == username)).first()
    if row is None:
        check_password_hash(_dummy_hash(), password)
        return None
    if not check_password_hash(row.password_hash, password) or not row.active:
        return None
    return _row_to_user(row)


def get_user(engine: Engine, user_id: int) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(staff_users).where(staff_users.c.id == user_id)).first()
    return None if row is None else _row_to_user(row)


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(select(staff_users).order_by(staff_users.c.username)).all()
    return [_row_to_user(r) for r in rows]


def set_role(engine: Engine, username: str, role: str) -> None:
    """Give an account another role. The last active admin keeps the role: a centre with no
    admin could not be put right from the pages."""
    if role not in ROLES:
        raise UserError(f"role {role!r}: use one of {', '.join(ROLES)}")
    with engine.begin() as conn:
        row = conn.execute(
            select(staff_users.c.role, staff_users.c.active).where(
                staff_users.c.username == username
            )
        ).first()
        if row is None:
            raise UserError(f"no user {username!r}")
        if row.role == "admin" and role != "admin" and row.active:
            admins = conn.execute(
                select(staff_users.c.id).where(
                    staff_users.c.role == "admin", staff_users.c.active.is_(True)
                )
            ).all()
            if len(admins) <= 1:
                raise UserError(f"{username!r} is the last admin")
        conn.execute(
            update(staff_users).where(staff_users.c.username == username).values(role=role)
        )
