"""Fixtures of the robustness tests: a kiosk app, a centre with a logged-in admin, a kiosk token.

Each app is built the way the other suites build it (tests/kiosk_web/helpers.py,
tests/central_web/helpers.py), but without TESTING's exception propagation where a test wants
to see what a client would see: a status code, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from central import keys, kiosks
from central.app import create_app
from central.settings import CentralSettings
from tests.central_web.helpers import NOW, Clock, add_staff_accounts, log_in
from tests.kiosk_web.helpers import Kit, make_kit
from tests.pg import central_engine, postgres_url  # noqa: F401


@pytest.fixture
def kit(tmp_path: Path, issuing_key) -> Iterator[Kit]:
    made = make_kit(tmp_path, issuing_key)
    # A client sees what a browser would: a status and a body, not a re-raised exception.
    made.app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False)
    yield made
    made.services.stop()


@dataclass
class Centre:
    app: Flask
    admin: FlaskClient
    kiosk_token: str
    kiosk_id: str
    site_id: str
    clock: Clock


def make_centre(instance: Path, engine: Engine | None = None, **settings: object) -> Flask:
    """A centre over `instance` (and `engine`: default SQLite in the instance), with an issuing
    key and the staff accounts of tests/central_web/helpers.py."""
    instance.mkdir(parents=True, exist_ok=True)
    centre_settings = CentralSettings(**settings)  # type: ignore[arg-type]
    # What `central init` makes: without it printing badges is a server fault, rightly a 500.
    keys.create_issuing_key(centre_settings.issuing_key_path(instance))
    app = create_app(
        instance,
        centre_settings,
        engine=engine,
        now=Clock(NOW),
        config={"TESTING": True},
    )
    # TESTING keeps the stays refresher in the request thread; exceptions must still become
    # answers, as in production.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    engine = app.extensions["central"].engine
    with engine.begin() as conn:
        add_staff_accounts(conn)
    return app


def enrol_kiosk(app: Flask, site_id: str) -> tuple[str, str]:
    """(kiosk_id, bearer token) of a kiosk enrolled for `site_id` (which must exist), the day
    before NOW: a kiosk's records are never older than its enrolment."""
    engine = app.extensions["central"].engine
    enrolled = NOW - timedelta(days=1)
    code = kiosks.add_kiosk(engine, site_id, enrolled, timedelta(hours=1), name="gate")
    identity, _site_name, token = kiosks.enrol(engine, code.code, enrolled)
    return identity.kiosk_id, token


def seeded_centre(instance: Path, engine: Engine | None = None) -> Centre:
    """A centre with one site, one cadre and an enrolled kiosk, an admin logged in."""
    from central import roster
    from central.roster_file import RosterRow

    app = make_centre(instance, engine)
    roster.import_roster(
        app.extensions["central"].engine,
        [RosterRow(2, "C001", "宋昕", "城管一队", "S01", "东湖站")],
    )
    kiosk_id, token = enrol_kiosk(app, "S01")
    admin = app.test_client()
    log_in(admin, "admin")
    return Centre(app, admin, token, kiosk_id, "S01", app.extensions["central"].now)


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    """A seeded centre on SQLite."""
    made = seeded_centre(tmp_path / "central")
    yield made
    made.app.extensions["central"].engine.dispose()


@pytest.fixture
def any_store_centre(tmp_path: Path, central_engine: Engine) -> Centre:  # noqa: F811
    """A seeded centre on SQLite, then on PostgreSQL, whose text cannot hold what SQLite
    takes (NUL characters, values over a column's length, integers over 64 bits)."""
    return seeded_centre(tmp_path / "central", central_engine)
