"""Fixtures for the centre's roster and badge tests.

`central_engine` (tests/pg.py) runs a test on SQLite and on PostgreSQL; `store` is SQLite only,
for the tests whose subject is the PDF rather than the store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from central.db.engine import create_schema, make_engine
from central.fonts import (
    DEFAULT_FALLBACK_FILES,
    DEFAULT_FONT_FILE,
    FontSet,
    FontSpec,
    font_set,
    require_font,
)
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


@pytest.fixture(scope="session")
def all_fonts() -> FontSet:
    """Zen Hei with the HanaMin fallbacks, as printing uses them (fonts-hanazono)."""
    fonts, notes = font_set(Path(DEFAULT_FONT_FILE), 0, DEFAULT_FALLBACK_FILES)
    assert not notes, notes
    return fonts
