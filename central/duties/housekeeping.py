"""The housekeeping duty: rows that only ever expire, deleted once they have.

Ended staff sessions, login-throttle windows that have passed and old records of duty runs (the
one-time form tokens prune themselves, central/web/once.py). Nothing here is needed once expired
(an expired session or window is ignored when read); deleting keeps the tables small. Runs under
its lease like every duty, every `interval_s`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete

from central.db.schema import duty_runs, login_throttle, staff_sessions
from central.duties.lease import database_now
from central.duties.runner import Duty
from central.timefix import to_utc_naive

DUTY_NAME = "housekeeping"
DUTY_RUNS_KEEP = timedelta(days=7)


def housekeeping_duty(
    now: Callable[[], datetime], login_window_s: float, interval_s: float = 600.0
) -> Duty:
    """now: the clock sessions and throttle windows are written by (real time, aware UTC)."""

    def step(conn: Connection) -> int:
        at = to_utc_naive(now())
        deleted = conn.execute(delete(staff_sessions).where(staff_sessions.c.expires_at <= at))
        total = deleted.rowcount
        window_ended = at - timedelta(seconds=login_window_s)
        total += conn.execute(
            delete(login_throttle).where(login_throttle.c.window_start <= window_ended)
        ).rowcount
        total += conn.execute(
            delete(duty_runs).where(duty_runs.c.started_at <= database_now(conn) - DUTY_RUNS_KEEP)
        ).rowcount
        return total

    return Duty(name=DUTY_NAME, step=step, idle_s=interval_s)
