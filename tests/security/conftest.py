"""Fixtures of the trust-boundary tests (docs/security.md names each test and what it shows):
a kiosk app, a seeded centre on SQLite and on PostgreSQL, as the robustness suite builds them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kiosk_web.helpers import Kit, make_kit
from tests.pg import central_engine, postgres_url  # noqa: F401
from tests.robustness.conftest import Centre, seeded_centre


@pytest.fixture
def kit(tmp_path: Path, issuing_key) -> Iterator[Kit]:
    made = make_kit(tmp_path, issuing_key)
    # What a browser would see: a status and a body, never a re-raised exception.
    made.app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False)
    yield made
    made.services.stop()


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    made = seeded_centre(tmp_path / "central")
    yield made
    made.app.extensions["central"].engine.dispose()


@pytest.fixture
def any_store_centre(tmp_path: Path, central_engine) -> Centre:  # noqa: F811
    return seeded_centre(tmp_path / "central", central_engine)
