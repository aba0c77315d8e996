"""central/users.py: staff accounts, hashed passwords, roles."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from central import users
from central.db import schema
from central.db.engine import make_engine
from central.db.schema import metadata


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'users.db'}")
    metadata.create_all(engine, tables=[schema.staff_users])
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


def test_password_change_changes_the_session_stamp(engine):
    before = users.add_user(engine, "lin", "correct horse battery", "viewer")
    users.set_password(engine, "lin", "a brand new password")
    after = users.get_user(engine, before.id)
    assert after is not None and after.stamp != before.stamp
    assert users.authenticate(engine, "lin", "a brand new password") is not None
