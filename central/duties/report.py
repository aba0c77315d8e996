"""Reading `duty_runs`: the last run of each duty, and any two runs of one duty that overlapped.

An overlap would mean two processes did a duty's work at once, which the leases exist to
prevent: `overlapping_runs` is how a test (or an operator) checks that they did.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from central.db.schema import duty_runs
from central.duties.lease import database_now


def last_runs(conn: Connection) -> list[dict[str, Any]]:
    """Per duty: its latest run (holder, end, items) and how many runs in the last hour."""
    hour_ago = database_now(conn) - timedelta(hours=1)
    counts: dict[str, int] = dict(
        conn.execute(
            select(duty_runs.c.duty, func.count())
            .where(duty_runs.c.started_at >= hour_ago)
            .group_by(duty_runs.c.duty)
        ).all()
    )
    latest = (
        select(duty_runs.c.duty, func.max(duty_runs.c.run_id).label("run_id"))
        .group_by(duty_runs.c.duty)
        .subquery()
    )
    rows = conn.execute(
        select(duty_runs)
        .join(latest, duty_runs.c.run_id == latest.c.run_id)
        .order_by(duty_runs.c.duty)
    ).all()
    return [dict(row._mapping, runs=counts.get(row.duty, 0)) for row in rows]


def overlapping_runs(conn: Connection) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Pairs of runs of the same duty whose [started_at, ended_at] intervals overlap."""
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []
    latest_end: dict[str, dict[str, Any]] = {}
    for row in conn.execute(select(duty_runs).order_by(duty_runs.c.duty, duty_runs.c.started_at)):
        run = dict(row._mapping)
        before = latest_end.get(run["duty"])
        if before is not None and run["started_at"] < before["ended_at"]:
            found.append((before, run))
        if before is None or run["ended_at"] > before["ended_at"]:
            latest_end[run["duty"]] = run
    return found
