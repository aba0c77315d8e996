"""Writing many rows fast, per dialect: the hot paths of ingest and of the stays.

`bulk_insert` hands rows straight to the driver (SQLite: one executemany; PostgreSQL: COPY, or
multi-row INSERTs in one pipeline when conflicts must be skipped or updated). `dialect_insert`
gives the INSERT that knows ON CONFLICT, `write_transaction` the write transaction that queues
this process's SQLite writers on a lock, and `chunks` the slices an IN (...) list is cut into.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Boolean, Connection, Date, DateTime, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

CHUNK = 500
# psycopg caches the parsed form of statements up to 4096 bytes and 50 parameters.
PG_STATEMENT_CHARS = 4000
PG_STATEMENT_PARAMS = 50
# A COPY costs two round trips and a statement of its own for each: for the one row of most
# pushes at dawn, a prepared INSERT costs less (bench/push_cost.py).
COPY_FROM_ROWS = 8
_sqlite_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_sqlite_locks_guard = threading.Lock()


def dialect_insert(conn: Connection, table: Table) -> Any:
    """INSERT of the connection's dialect, which has on_conflict_do_nothing / _do_update."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction. On SQLite, writers of this process queue on a lock instead of
    polling the database lock (busy_timeout sleeps in steps of up to 100 ms)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _sqlite_locks_guard:
        lock = _sqlite_locks.setdefault(engine, threading.Lock())
    with lock, engine.begin() as conn:
        yield conn


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sqlite_datetime(value: datetime) -> str:
    # SQLAlchemy's own SQLite storage format, so stored text sorts and compares the same.
    return value.isoformat(sep=" ", timespec="microseconds")


def _sqlite_converters(table: Table, columns: Sequence[str]) -> list[tuple[int, Any]]:
    """(position, converter) for the columns whose Python values SQLite cannot take as is."""
    fixes: list[tuple[int, Any]] = []
    for position, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, DateTime):
            fixes.append((position, _sqlite_datetime))
        elif isinstance(kind, Date):
            fixes.append((position, date.isoformat))
        elif isinstance(kind, Boolean):
            fixes.append((position, int))
    return fixes


def _insert_sql(conn: Connection, table: Table, columns: Sequence[str], tail: str = "") -> str:
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join(mark for _ in columns)
    return f'INSERT INTO "{table.name}" ({names}) VALUES ({marks}){tail}'


def bulk_insert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    ignore_conflicts: bool = False,
    tail: str = "",
) -> None:
    """Rows straight to the driver: the hot path of ingest and stays, where building each row
    through SQLAlchemy's compiler cost more than storing it. SQLite: one executemany.
    PostgreSQL: COPY for a plain insert, else multi-row INSERTs sent in one pipeline."""
    if not rows:
        return
    columns = list(rows[0])
    sql = _insert_sql(conn, table, columns, tail or (" ON CONFLICT DO NOTHING" * ignore_conflicts))
    values = itemgetter(*columns) if len(columns) > 1 else (lambda r: (r[columns[0]],))
    if conn.dialect.name != "sqlite":
        if not tail and not ignore_conflicts and len(rows) > COPY_FROM_ROWS:
            _pg_copy(conn, table, columns, [values(r) for r in rows])
        else:
            _pg_bulk_insert(conn, sql, [values(r) for r in rows])
        return
    fixes = _sqlite_converters(table, columns)
    params = []
    for row in rows:
        line = list(values(row))
        for position, convert in fixes:
            if line[position] is not None:
                line[position] = convert(line[position])
        params.append(tuple(line))
    conn.exec_driver_sql(sql, params)


def _pg_copy(
    conn: Connection, table: Table, columns: Sequence[str], params: list[tuple[Any, ...]]
) -> None:
    """COPY on the transaction's own connection: PostgreSQL's fastest way in."""
    names = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            for row in params:
                copy.write_row(row)
    except conn.dialect.dbapi.IntegrityError as exc:  # type: ignore[union-attr]
        # As SQLAlchemy raises it for a statement it ran itself, so callers catch one kind.
        raise IntegrityError(statement, None, exc) from exc


def _pg_bulk_insert(conn: Connection, sql: str, params: list[tuple[Any, ...]]) -> None:
    """Several rows per INSERT, and those INSERTs sent together (psycopg pipelines
    executemany): one statement per row costs PostgreSQL a parse-plan-execute each. Statements
    stay short enough for psycopg to cache their parsed form (it re-parses long ones)."""
    head, _, rest = sql.partition(" VALUES ")
    row_marks, _, tail = rest.partition(")")
    row_marks += ")"
    columns = row_marks.count("%s")
    per_statement = max(
        1,
        min(
            PG_STATEMENT_PARAMS // columns,
            (PG_STATEMENT_CHARS - len(head) - len(tail)) // (len(row_marks) + 2),
        ),
    )

    def statement(rows: int) -> str:
        return f"{head} VALUES {', '.join(row_marks for _ in range(rows))}{tail}"

    whole = len(params) - len(params) % per_statement
    if whole:
        grouped = [
            tuple(v for row in params[i : i + per_statement] for v in row)
            for i in range(0, whole, per_statement)
        ]
        conn.exec_driver_sql(statement(per_statement), grouped)
    if whole < len(params):
        rest_rows = params[whole:]
        conn.exec_driver_sql(statement(len(rest_rows)), tuple(v for r in rest_rows for v in r))
