"""Fixtures for the centre's roster and badge tests.

`central_engine` (tests/pg.py) runs a test on SQLite and on PostgreSQL; `store` is SQLite only,
for the tests whose subject is the PDF rather than the store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from central.db.engine import create_schema, make_engine
from central.fonts import DEFAULT_FONT_FILE, FontSpec, require_font
from tests.pg import central_engine, postgres_url  # noqa: F401


@pytest.fixture
def store(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'central.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def cjk_font() -> FontSpec:
    return require_font(Path(DEFAULT_FONT_FILE))
