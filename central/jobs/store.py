"""The jobs table: submitting, claiming, progress, the end of a job, and the sweep.

Every function takes the engine and does its own short transaction, so any number of processes
(serve processes, `central jobs work`, the CLI) share one queue without a lock of their own:

- a claim is one UPDATE of the oldest queued row, guarded by `state = 'queued'` and returning the
  row (on PostgreSQL the row is picked with FOR UPDATE SKIP LOCKED, so two workers never wait on
  each other; SQLite has one writer at a time, which is as atomic);
- a claim holds a lease; each progress report renews it and is written only while this worker
  still holds the job (`worker = token AND state = 'running'`), so a worker that lost its job
  (lease lapsed and another took it up, or a user cancelled it) learns so at its next report;
- `expire_leases` (called by every worker before it claims) puts a job whose worker went silent
  back in the queue, or fails it after `max_attempts`.

Times are naive UTC, like every time in the store.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, and_, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from central.db.schema import jobs

State = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: tuple[str, ...] = ("done", "failed", "cancelled")
ERROR_MAX = 2_000

# Error codes the pages translate; a detail may follow after ": ".
LEASE_LAPSED = "lease_lapsed"  # the worker stopped reporting (process killed, machine down)
WORKER_DIED = "worker_died"  # the job's process ended without finishing it
FAILED = "failed"  # the handler raised; the detail is in the server log
TIMED_OUT = "timed_out"


def utc_naive(value: datetime | None = None) -> datetime:
    value = value or datetime.now(UTC)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def new_worker_token() -> str:
    """Who holds a claim: readable in the table (host, pid), unique by its random tail."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(6)}"


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    params: dict[str, Any]
    state: str
    done: int
    total: int | None
    stage: str
    started_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    lease_until: datetime | None
    attempts: int
    result_file: str | None
    result_name: str | None
    result_bytes: int | None
    result_expired_at: datetime | None
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def downloadable(self) -> bool:
        return self.state == "done" and bool(self.result_file) and self.result_expired_at is None

    @property
    def error_code(self) -> str:
        return (self.error or "").split(":", 1)[0]


def _job(row: Any) -> Job:
    m = row._mapping
    return Job(
        job_id=m["job_id"],
        kind=m["kind"],
        params=json.loads(m["params"] or "{}"),
        state=m["state"],
        done=m["progress_done"] or 0,
        total=m["progress_total"],
        stage=m["stage"] or "",
        started_by=m["started_by"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        worker=m["worker"],
        lease_until=m["lease_until"],
        attempts=m["attempts"] or 0,
        result_file=m["result_file"],
        result_name=m["result_name"],
        result_bytes=m["result_bytes"],
        result_expired_at=m["result_expired_at"],
        summary=json.loads(m["summary"] or "{}"),
        error=m["error"],
    )


def submit(
    engine: Engine,
    kind: str,
    params: dict[str, Any],
    started_by: str,
    *,
    request_key: str | None = None,
    total: int | None = None,
    now: datetime | None = None,
) -> tuple[Job, bool]:
    """Queue a job; returns (job, created). The same `request_key` from the same starter gives
    back the job it made the first time (a form sent twice), with created False."""
    job_id = secrets.token_hex(16)
    values = {
        "job_id": job_id,
        "kind": kind,
        "params": json.dumps(params, ensure_ascii=False, sort_keys=True),
        "state": "queued",
        "progress_done": 0,
        "progress_total": total,
        "stage": "queued",
        "started_by": started_by,
        "request_key": request_key or None,
        "created_at": utc_naive(now),
        "attempts": 0,
        "summary": "{}",
    }
    try:
        with engine.begin() as conn:
            conn.execute(jobs.insert().values(**values))
    except IntegrityError:
        if not request_key:
            raise
        with engine.connect() as conn:
            row = conn.execute(
                select(jobs).where(
                    jobs.c.started_by == started_by, jobs.c.request_key == request_key
                )
            ).first()
        if row is None:
            raise
        return _job(row), False
    found = get(engine, job_id)
    assert found is not None
    return found, True


def get(engine: Engine | Connection, job_id: str) -> Job | None:
    query = select(jobs).where(jobs.c.job_id == job_id)
    if isinstance(engine, Connection):
        row = engine.execute(query).first()
    else:
        with engine.connect() as conn:
            row = conn.execute(query).first()
    return _job(row) if row is not None else None


def recent(
    engine: Engine, started_by: str | None = None, kinds: Sequence[str] = (), limit: int = 20
) -> list[Job]:
    """The newest jobs, of one starter (None: everyone's) and of some kinds (empty: all)."""
    query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.job_id).limit(limit)
    if started_by is not None:
        query = query.where(jobs.c.started_by == started_by)
    if kinds:
        query = query.where(jobs.c.kind.in_(list(kinds)))
    with engine.connect() as conn:
        return [_job(row) for row in conn.execute(query)]


def claim(
    engine: Engine,
    worker: str,
    lease_s: float,
    *,
    kinds: Sequence[str] = (),
    job_id: str | None = None,
    now: datetime | None = None,
) -> Job | None:
    """Take the oldest queued job (or the one named) for `worker`; None when there is none."""
    moment = utc_naive(now)
    pick = select(jobs.c.job_id).where(jobs.c.state == "queued")
    if job_id is not None:
        pick = pick.where(jobs.c.job_id == job_id)
    if kinds:
        pick = pick.where(jobs.c.kind.in_(list(kinds)))
    pick = pick.order_by(jobs.c.created_at, jobs.c.job_id).limit(1)
    if engine.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    statement = (
        update(jobs)
        # The state test again: on PostgreSQL a row picked by the subquery may have been claimed
        # by a transaction that committed since; the UPDATE re-reads it and leaves it alone.
        .where(jobs.c.job_id == pick.scalar_subquery(), jobs.c.state == "queued")
        .values(
            state="running",
            worker=worker,
            lease_until=moment + timedelta(seconds=lease_s),
            attempts=jobs.c.attempts + 1,
            started_at=func.coalesce(jobs.c.started_at, moment),
            stage="starting",
        )
        .returning(*jobs.c)
    )
    with engine.begin() as conn:
        row = conn.execute(statement).first()
    return _job(row) if row is not None else None


class JobLost(Exception):
    """This worker no longer holds the job: it was cancelled, or its lease lapsed and the job
    went to another worker. The work done so far must be dropped."""


def report(
    engine: Engine,
    job: Job,
    worker: str,
    lease_s: float,
    *,
    done: int | None = None,
    total: int | None = None,
    stage: str | None = None,
    now: datetime | None = None,
) -> None:
    """Write progress and renew the lease; JobLost when the job is no longer this worker's."""
    moment = utc_naive(now)
    values: dict[str, Any] = {"lease_until": moment + timedelta(seconds=lease_s)}
    if done is not None:
        values["progress_done"] = done
    if total is not None:
        values["progress_total"] = total
    if stage is not None:
        values["stage"] = stage
    with engine.begin() as conn:
        changed = conn.execute(
            update(jobs)
            .where(jobs.c.job_id == job.job_id, jobs.c.worker == worker, jobs.c.state == "running")
            .values(**values)
        ).rowcount
    if changed != 1:
        raise JobLost(job.job_id)


def finish(
    engine: Engine,
    job: Job,
    worker: str,
    *,
    result_file: str | None,
    result_name: str | None,
    result_bytes: int | None,
    summary: dict[str, Any],
    now: datetime | None = None,
) -> bool:
    """Mark the job done with its result; False when the worker no longer held it."""
    with engine.begin() as conn:
        changed = conn.execute(
            update(jobs)
            .where(jobs.c.job_id == job.job_id, jobs.c.worker == worker, jobs.c.state == "running")
            .values(
                state="done",
                stage="done",
                finished_at=utc_naive(now),
                lease_until=None,
                result_file=result_file,
                result_name=result_name,
                result_bytes=result_bytes,
                summary=json.dumps(summary, ensure_ascii=False, sort_keys=True, default=str),
                error=None,
            )
        ).rowcount
    return changed == 1


def fail(
    engine: Engine,
    job: Job,
    worker: str | None,
    error: str,
    *,
    summary: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Mark the job failed (by its worker, or by anyone when `worker` is None)."""
    condition = [jobs.c.job_id == job.job_id, jobs.c.state.in_(("queued", "running"))]
    if worker is not None:
        condition.append(jobs.c.worker == worker)
    values: dict[str, Any] = {
        "state": "failed",
        "stage": "failed",
        "finished_at": utc_naive(now),
        "lease_until": None,
        "error": error[:ERROR_MAX],
    }
    if summary is not None:
        values["summary"] = json.dumps(summary, ensure_ascii=False, sort_keys=True, default=str)
    with engine.begin() as conn:
        return conn.execute(update(jobs).where(*condition).values(**values)).rowcount == 1


def cancel(engine: Engine, job_id: str, now: datetime | None = None) -> bool:
    """Stop a queued or running job; its worker drops the work at its next report."""
    with engine.begin() as conn:
        changed = conn.execute(
            update(jobs)
            .where(jobs.c.job_id == job_id, jobs.c.state.in_(("queued", "running")))
            .values(
                state="cancelled", stage="cancelled", finished_at=utc_naive(now), lease_until=None
            )
        ).rowcount
    return changed == 1


def expire_leases(engine: Engine, max_attempts: int, now: datetime | None = None) -> int:
    """Jobs whose lease lapsed: back to the queue, or failed after `max_attempts` claims.

    Safe to call from every worker at once: each UPDATE is guarded by the lapsed lease, so a job
    is requeued once, and a worker that comes back to life finds it no longer holds the job.
    """
    moment = utc_naive(now)
    lapsed = and_(jobs.c.state == "running", jobs.c.lease_until < moment)
    with engine.begin() as conn:
        failed = conn.execute(
            update(jobs)
            .where(lapsed, jobs.c.attempts >= max_attempts)
            .values(
                state="failed",
                stage="failed",
                finished_at=moment,
                lease_until=None,
                error=literal(f"{LEASE_LAPSED}: no report from ")
                + func.coalesce(jobs.c.worker, ""),
            )
        ).rowcount
        requeued = conn.execute(
            update(jobs)
            .where(lapsed, jobs.c.attempts < max_attempts)
            .values(state="queued", stage="queued", worker=None, lease_until=None)
        ).rowcount
    return int(failed) + int(requeued)


def expired_results(
    engine: Engine, retention: timedelta, now: datetime | None = None
) -> list[tuple[str, str]]:
    """(job id, result file) of finished jobs older than `retention` whose file is still kept."""
    cutoff = utc_naive(now) - retention
    with engine.connect() as conn:
        rows = conn.execute(
            select(jobs.c.job_id, jobs.c.result_file).where(
                jobs.c.state.in_(FINISHED),
                jobs.c.finished_at < cutoff,
                jobs.c.result_file.is_not(None),
                jobs.c.result_expired_at.is_(None),
            )
        )
        return [(r.job_id, r.result_file) for r in rows]


def mark_expired(engine: Engine, job_ids: Sequence[str], now: datetime | None = None) -> None:
    """The rows stay (who printed which badges, when, is worth keeping); only the file goes."""
    if not job_ids:
        return
    with engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.job_id.in_(list(job_ids)))
            .values(result_expired_at=utc_naive(now))
        )


def kept_files(engine: Engine) -> set[str]:
    """Result files the table still points at (finished or not)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(jobs.c.result_file).where(
                jobs.c.result_file.is_not(None), jobs.c.result_expired_at.is_(None)
            )
        )
        return {r.result_file for r in rows}


def active_job_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(jobs.c.job_id).where(or_(jobs.c.state == "queued", jobs.c.state == "running"))
        )
        return {r.job_id for r in rows}
