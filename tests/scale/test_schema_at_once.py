"""Several `central serve` processes restarted together after an upgrade that adds tables: each
makes the missing tables at start, and on PostgreSQL they take turns instead of failing."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect

from central.db.engine import create_schema, make_engine
from central.db.schema import metadata
from tests.scale.cluster import fresh_database

pytestmark = pytest.mark.postgres


def test_processes_making_the_tables_at_once_all_succeed(postgres_url):
    with fresh_database(postgres_url) as database:
        engines = [make_engine(database.url) for _ in range(4)]
        start = threading.Barrier(len(engines))
        failures: list[BaseException] = []

        def start_up(engine) -> None:
            start.wait(30)
            try:
                create_schema(engine)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=start_up, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert failures == []
        assert set(inspect(engines[0]).get_table_names()) == set(metadata.tables)
        for engine in engines:
            engine.dispose()
