"""central/users.py: staff accounts, hashed passwords, roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from central import users
from central.db import schema
from central.db.engine import make_engine
from central.db.schema import metadata
from central.web import sessions


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'users.db'}")
    metadata.create_all(engine, tables=[schema.staff_users, schema.staff_sessions])
    yield engine
    engine.dispose()


def test_password_is_stored_hashed_and_checked(engine):
    users.add_user(engine, "lin", "correct horse battery", "admin")
    with engine.connect() as conn:
        stored = conn.execute(select(schema.staff_users.c.password_hash)).scalar_one()
    assert "correct horse" not in stored
    assert stored.startswith(("scrypt:", "pbkdf2:"))
    assert users.authenticate(engine, "lin", "correct horse battery").role == "admin"
    assert users.authenticate(engine, "lin", "correct horse batterY") is None
    assert users.authenticate(engine, "nobody", "correct horse battery") is None


def test_duplicate_name_bad_role_and_short_password_are_refused(engine):
    users.add_user(engine, "lin", "correct horse battery", "viewer")
    with pytest.raises(users.UserError, match="already exists"):
        users.add_user(engine, "lin", "another long password", "admin")
    with pytest.raises(users.UserError, match="role"):
        users.add_user(engine, "wang", "another long password", "root")
    with pytest.raises(users.UserError, match="too short"):
        users.add_user(engine, "wang", "short", "viewer")
    with pytest.raises(users.UserError, match="user name"):
        users.add_user(engine, "wang li", "another long password", "viewer")
    assert [u.username for u in users.list_users(engine)] == ["lin"]


def test_disabled_user_cannot_log_in(engine):
    users.add_user(engine, "lin", "correct horse battery", "viewer")
    users.set_active(engine, "lin", False)
    assert users.authenticate(engine, "lin", "correct horse battery") is None


def test_password_change_and_disabling_end_every_session_of_the_user(engine):
    lin = users.add_user(engine, "lin", "correct horse battery", "viewer")
    wang = users.add_user(engine, "wang", "another horse battery", "viewer")
    now, day = datetime(2026, 11, 29, tzinfo=UTC), timedelta(days=1)
    for user in (lin, lin, wang):
        sessions.open_session(engine, user.id, now, day)
    assert users.set_password(engine, "lin", "a brand new password") == 2
    assert sessions.count_open(engine, lin.id, now) == 0
    assert sessions.count_open(engine, wang.id, now) == 1, "another user's session is kept"
    assert users.authenticate(engine, "lin", "a brand new password") is not None
    assert users.set_active(engine, "wang", False) == 1
    assert sessions.count_open(engine, wang.id, now) == 0


def test_a_session_lasts_its_lifetime_after_its_last_use(engine):
    lin = users.add_user(engine, "lin", "correct horse battery", "viewer")
    start, hour = datetime(2026, 11, 29, tzinfo=UTC), timedelta(hours=1)
    token, _ = sessions.open_session(engine, lin.id, start, hour)
    assert sessions.find(engine, token, start + hour - timedelta(seconds=1), hour) is not None
    # That use extended it: an hour from then, not from the start.
    assert sessions.find(engine, token, start + 2 * hour - timedelta(seconds=2), hour) is not None
    assert sessions.find(engine, token, start + 3 * hour, hour) is None, "unused for an hour"
    assert sessions.find(engine, "not-a-token", start, hour) is None
    assert sessions.find(engine, "x" * 1000, start, hour) is None
