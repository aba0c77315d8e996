"""Fixtures for the centre's roster and badge tests: a fresh store per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from central.db import create_schema, make_engine
from central.fonts import DEFAULT_FONT_FILE, FontSpec, require_font


@pytest.fixture
def store(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'central.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def cjk_font() -> FontSpec:
    return require_font(Path(DEFAULT_FONT_FILE))
