"""Fixtures for the staff pages: an app on a fresh SQLite store, staff accounts, a fixed clock."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central.app import create_app
from central.db.engine import create_schema, make_engine
from central.settings import CentralSettings
from tests.central_web.helpers import NOW, Clock, add_staff_accounts, log_in
from tests.pg import central_engine, postgres_url  # noqa: F401


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the schema and two staff accounts, made once and copied for each test.

    The accounts use a one-round PBKDF2 hash: logging in is checked the same way, without the
    deliberate cost of scrypt in every test (tests/central_web/test_users.py covers scrypt).
    """
    path = tmp_path_factory.mktemp("template") / "central.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    with engine.begin() as conn:
        add_staff_accounts(conn)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def make_app(tmp_path: Path, template_db: Path, clock: Clock) -> Iterator[Callable[..., Flask]]:
    engines = []

    def build(**settings: object) -> Flask:
        from central.web import init_app

        instance = tmp_path / f"instance{len(engines)}"
        instance.mkdir()
        shutil.copyfile(template_db, instance / "central.db")
        # These tests read the all-sites figures right after each change they make: worked out
        # for every request. test_shared_overview.py tests them shared, as a centre serves them.
        settings.setdefault("overview_refresh_s", 0)
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
        return app

    yield build
    for engine in engines:
        engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    # public_url: enrolment codes are made only with it (never from a request's Host).
    return make_app(public_url="http://centre.test/")


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


@pytest.fixture
def app_on(central_engine, tmp_path: Path, clock: Clock) -> Callable[[], Flask]:  # noqa: F811
    """An app on `central_engine` (SQLite, then PostgreSQL when one is configured)."""

    def build() -> Flask:
        with central_engine.begin() as conn:
            add_staff_accounts(conn)
        return create_app(
            tmp_path / "instance-on",
            CentralSettings(overview_refresh_s=0),
            engine=central_engine,
            now=clock,
            config={"TESTING": True},
        )

    return build
