"""The central store's engine, and making its tables.

SQLite (WAL) by default, PostgreSQL by URL. Every table is declared in central/db/schema.py;
`create_schema` makes the ones missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, inspect, text

from central.db.schema import metadata


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the pages read while kiosks push; NORMAL is durable at each checkpoint in WAL mode
    # and the kiosks keep every event until the centre acknowledges it, so a lost tail is re-sent.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# Connections a serving process needs beyond one per waitress thread: one per background duty
# thread (stays, housekeeping, and room for the jobs and alerts to come).
DUTY_CONNECTIONS = 4
# Headroom above that for a request that briefly holds a second connection.
POOL_OVERFLOW = 4


# A pooled PostgreSQL connection idle longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 5.0


def make_engine(url: str, ping_after_idle_s: float = PING_AFTER_IDLE_S, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, **kwargs)
    _ping_after_idle(engine, ping_after_idle_s)
    return engine


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads that need no transaction around them (a token, a badge proof).

    In autocommit: no BEGIN before the first statement and no ROLLBACK when the connection goes
    back to the pool, two round trips of the three a one-row read took on PostgreSQL. And the
    rollback made psycopg forget its prepared statements (DEALLOCATE ALL, a round trip more), so
    a pooled connection never kept the hot statements of ingest prepared."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def _ping_after_idle(engine: Engine, idle_s: float) -> None:
    """Ping a pooled connection before use only when it sat idle for `idle_s`.

    SQLAlchemy's pool_pre_ping pings at every checkout: a round trip more for each of a push's
    two or three checkouts, paid in the dawn surge when connections are never idle (16% of a
    push's time in bench/dawn.py, each round trip a wait for the interpreter lock too). A
    connection idle for a while (the database or a proxy may have closed it) is still pinged,
    and a dead one is replaced before anyone uses it; a connection that dies within `idle_s` of
    its last use fails its statement, which SQLAlchemy sees as a disconnect and throws away
    (the pool with it), and the request fails as any database error does: kiosks send the
    push again."""

    @event.listens_for(engine, "checkin")
    def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < idle_s:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool closes this connection and hands out another (up to three tries).
            raise exc.DisconnectionError(f"idle connection did not answer: {error}") from error


def make_serving_engine(url: str, threads: int, name: str) -> Engine:
    """The engine of a serving process: on PostgreSQL a pool sized to its threads (so N processes
    keep at most N x (threads + DUTY_CONNECTIONS + POOL_OVERFLOW) connections, the figure to
    hold under max_connections) and `name` as application_name, so pg_stat_activity tells
    which process holds which connection."""
    if url.startswith("sqlite"):
        return make_engine(url)
    return make_engine(
        url,
        pool_size=threads + DUTY_CONNECTIONS,
        max_overflow=POOL_OVERFLOW,
        connect_args={"application_name": name[:63]},
    )


# Key of the PostgreSQL advisory lock held while tables are made (any constant will do).
PG_SCHEMA_LOCK = 0x5343_4845


def create_schema(engine: Engine) -> set[tuple[str, str]]:
    """Make the missing tables, and the missing columns of tables made by an older version;
    returns the (table, column) pairs added to existing tables.

    Columns added since a table was first made are all nullable, so `ALTER TABLE ... ADD
    COLUMN` gives old rows NULL (what each new column means for a row from before it).

    Several processes starting at once after an upgrade take turns on PostgreSQL (an advisory
    lock held until the DDL commits): each would otherwise find a table or column missing and
    all but one fail to add it.
    """
    added: set[tuple[str, str]] = set()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_SCHEMA_LOCK})
        metadata.create_all(conn)
        existing = inspect(conn)
        for table in metadata.sorted_tables:
            have = {c["name"] for c in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                if not column.nullable:
                    raise RuntimeError(
                        f"table {table.name} lacks column {column.name}, which cannot be added "
                        "to an existing table (NOT NULL)"
                    )
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'))
                added.add((table.name, column.name))
        if any(table == "stays" for table, _ in added):
            # Stays paired by an older version lack what this one keeps of them: queue every
            # (cadre, day) with records, for the stays refresher to pair again.
            conn.execute(
                text(
                    'INSERT INTO "stays_dirty" ("cadre_id", "service_day", "mark") '
                    'SELECT DISTINCT "cadre_id", "service_day", 0 FROM "events" WHERE true '
                    'ON CONFLICT ("cadre_id", "service_day") DO NOTHING'  # (SQLite needs WHERE)
                )
            )
    return added
