"""Update tests: the centre's engine fixture (SQLite, or PostgreSQL by URL)."""

from tests.pg import central_engine, postgres_url  # noqa: F401
