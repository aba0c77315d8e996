"""Pooled PostgreSQL connections: pinged before use only after sitting idle, a dead idle one
replaced before anyone uses it, and reads outside a transaction keep the prepared statements."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from central.db.engine import make_engine, reading

pytestmark = pytest.mark.postgres


@pytest.fixture
def pings(monkeypatch) -> list[object]:
    made: list[object] = []

    def counting(self, dbapi_connection):
        made.append(dbapi_connection)
        return real(self, dbapi_connection)

    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    real = PGDialect_psycopg.do_ping
    monkeypatch.setattr(PGDialect_psycopg, "do_ping", counting)
    return made


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_in_use_a_moment_ago_is_not_pinged(postgres_url, pings):
    engine = make_engine(postgres_url, ping_after_idle_s=30, pool_size=1, max_overflow=0)
    try:
        first = backend_pid(engine)
        for _ in range(5):
            assert backend_pid(engine) == first
        assert pings == []
    finally:
        engine.dispose()


def test_an_idle_connection_that_died_is_replaced_before_use(postgres_url, pings):
    engine = make_engine(postgres_url, ping_after_idle_s=0.2, pool_size=1, max_overflow=0)
    admin = make_engine(postgres_url)
    try:
        first = backend_pid(engine)
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar()
        time.sleep(0.3)
        # The pooled connection is dead: the ping finds it and the pool hands out a new one,
        # so the statement never sees the dead connection.
        second = backend_pid(engine)
        assert second != first
        assert len(pings) == 1
        # Used a moment ago: not pinged again.
        assert backend_pid(engine) == second
        assert len(pings) == 1
    finally:
        engine.dispose()
        admin.dispose()


def test_a_read_takes_no_transaction_and_the_connection_keeps_its_prepared_statements(
    postgres_url,
):
    from psycopg.pq import TransactionStatus

    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    lookup = text("SELECT count(*) FROM pg_class WHERE relname = :name")
    try:
        for _ in range(8):  # psycopg prepares a statement on its fifth use
            with reading(engine) as conn:
                conn.execute(lookup, {"name": "pg_class"}).scalar_one()
                status = conn.connection.dbapi_connection.info.transaction_status
                assert status == TransactionStatus.IDLE  # no BEGIN was sent
        with reading(engine) as conn:
            prepared = conn.execute(
                text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :s"),
                {"s": "%relname = $1%"},
            ).scalar_one()
        # A read that ended in ROLLBACK (engine.connect() returned to the pool) made psycopg
        # forget its prepared statements every time.
        assert prepared == 1
    finally:
        engine.dispose()
