"""Fixtures of the peer tests: the central store on SQLite and PostgreSQL (tests/pg.py)."""

from __future__ import annotations

from tests.pg import central_engine, postgres_url  # noqa: F401
