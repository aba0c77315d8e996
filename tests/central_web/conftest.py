"""Fixtures for the staff pages: an app on a fresh SQLite store, staff accounts, a fixed clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert
from werkzeug.security import generate_password_hash

from central import users
from central.app import create_app
from central.settings import CentralSettings
from tests.central_web.helpers import NOW, PASSWORDS, Clock, log_in


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    # scrypt is slow on purpose: hash once per session, not once per test.
    return {role: generate_password_hash(pw) for role, pw in PASSWORDS.items()}


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def make_app(
    tmp_path: Path, password_hashes: dict[str, str], clock: Clock
) -> Iterator[Callable[..., Flask]]:
    engines = []

    def build(**settings: object) -> Flask:
        from central.web import init_app

        instance = tmp_path / f"instance{len(engines)}"
        app = create_app(
            instance,
            CentralSettings(**settings),
            now=clock,
            config={"TESTING": True},
        )
        if "staff" not in app.blueprints:
            init_app(app)
        engine = app.extensions["central"].engine
        engines.append(engine)
        with engine.begin() as conn:
            for role, password_hash in password_hashes.items():
                conn.execute(
                    insert(users.users).values(
                        username=role,
                        password_hash=password_hash,
                        role=role,
                        active=True,
                        created_at=NOW,
                    )
                )
        return app

    yield build
    for engine in engines:
        engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def engine(app: Flask):
    return app.extensions["central"].engine


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    log_in(client, "admin")
    return client


@pytest.fixture
def viewer(app: Flask) -> FlaskClient:
    client = app.test_client()
    log_in(client, "viewer")
    return client
