"""The read API's tests use the staff pages' fixtures: an app on a fresh SQLite store with two
staff accounts and a fixed clock (tests/central_web/conftest.py)."""

from __future__ import annotations

from tests.central_web.conftest import (  # noqa: F401
    admin,
    app,
    clock,
    engine,
    make_app,
    template_db,
    viewer,
)
