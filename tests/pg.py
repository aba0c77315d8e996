"""The central store under test, on SQLite and on PostgreSQL.

Use from a conftest.py: `from tests.pg import central_engine, postgres_url  # noqa: F401`. A test
that takes `central_engine` runs twice: on a fresh SQLite file (WAL) and in a fresh schema of
the PostgreSQL database named by $CADRE_TEST_POSTGRES_URL (`make test` starts one with
scripts/start-test-postgres.sh). Without that variable, or when the server does not answer, the
PostgreSQL runs are skipped with the reason, unless $CADRE_REQUIRE_POSTGRES=1 (set by `make test`
when it runs as root, as CI does), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from central.db.engine import create_schema, make_engine

POSTGRES_ENV = "CADRE_TEST_POSTGRES_URL"
REQUIRE_ENV = "CADRE_REQUIRE_POSTGRES"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"PostgreSQL required ({REQUIRE_ENV}=1) but {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        _unavailable(
            f"{POSTGRES_ENV} is not set (`make test` sets it by running "
            "scripts/start-test-postgres.sh)"
        )
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the same thing here: no server to use
        _unavailable(f"cannot connect to {POSTGRES_ENV}: {exc}")
    finally:
        engine.dispose()
    return url


def _postgres_engine(url: str) -> Iterator[Engine]:
    """A schema of its own per test, so test sessions running at once never meet."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        create_schema(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def central_engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    """An engine on an empty central store with every table created."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'central.db'}")
        create_schema(engine)
        yield engine
        engine.dispose()
    else:
        yield from _postgres_engine(request.getfixturevalue("postgres_url"))
