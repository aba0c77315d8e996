"""Fixtures of the scale-out tests: the PostgreSQL server of tests/pg.py."""

from __future__ import annotations

from tests.pg import central_engine, postgres_url  # noqa: F401
