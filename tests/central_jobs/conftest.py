"""Fixtures for the background-job tests: `central_engine` runs a test on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.pg import central_engine, postgres_url  # noqa: F401
