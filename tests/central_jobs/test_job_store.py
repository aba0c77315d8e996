"""The jobs table on SQLite and PostgreSQL: claims, leases, progress, ends, idempotent starts."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from central.db.engine import make_engine
from central.jobs import store
from central.jobs.runner import JobContext, JobRefused, JobResult, run_claimed
from central.settings import CentralSettings

T0 = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)


def test_a_job_goes_from_queued_to_done_with_its_progress(central_engine):
    job, created = store.submit(central_engine, "export", {"a": 1}, "lin", now=T0)
    assert created and job.state == "queued" and job.params == {"a": 1}
    claimed = store.claim(central_engine, "w1", 60, now=T0)
    assert claimed is not None and claimed.job_id == job.job_id
    assert (claimed.state, claimed.worker, claimed.attempts) == ("running", "w1", 1)
    assert claimed.lease_until == (T0 + timedelta(seconds=60)).replace(tzinfo=None)
    assert store.claim(central_engine, "w2", 60, now=T0) is None  # nothing else queued

    store.report(central_engine, claimed, "w1", 60, done=5, total=10, stage="drawing", now=T0)
    seen = store.get(central_engine, job.job_id)
    assert (seen.done, seen.total, seen.stage) == (5, 10, "drawing")
    assert store.finish(
        central_engine,
        claimed,
        "w1",
        result_file="x/attempt1.pdf",
        result_name="b.pdf",
        result_bytes=3,
        summary={"badges": 10},
        now=T0,
    )
    done = store.get(central_engine, job.job_id)
    assert (done.state, done.summary, done.downloadable) == ("done", {"badges": 10}, True)


def test_the_same_form_sent_twice_makes_one_job(central_engine):
    first, created = store.submit(central_engine, "badges", {}, "lin", request_key="k1")
    again, created_again = store.submit(central_engine, "badges", {}, "lin", request_key="k1")
    other, _ = store.submit(central_engine, "badges", {}, "wang", request_key="k1")
    assert created and not created_again
    assert again.job_id == first.job_id
    assert other.job_id != first.job_id  # another person's key is theirs


def test_a_worker_that_lost_its_job_cannot_report_or_finish(central_engine):
    job, _ = store.submit(central_engine, "export", {}, "lin", now=T0)
    claimed = store.claim(central_engine, "w1", 10, now=T0)
    assert claimed is not None
    assert store.cancel(central_engine, job.job_id, now=T0)
    with pytest.raises(store.JobLost):
        store.report(central_engine, claimed, "w1", 10, done=1, now=T0)
    finished = store.finish(
        central_engine,
        claimed,
        "w1",
        result_file="f",
        result_name="f",
        result_bytes=1,
        summary={},
        now=T0,
    )
    assert not finished
    assert store.get(central_engine, job.job_id).state == "cancelled"


def test_a_lapsed_lease_requeues_the_job_then_fails_it_after_max_attempts(central_engine):
    job, _ = store.submit(central_engine, "export", {}, "lin", now=T0)
    first = store.claim(central_engine, "dead-1", 30, now=T0)
    assert first is not None
    # Within the lease nothing moves; after it the job is queued again for anyone.
    assert store.expire_leases(central_engine, 2, now=T0 + timedelta(seconds=29)) == 0
    assert store.expire_leases(central_engine, 2, now=T0 + timedelta(seconds=31)) == 1
    assert store.get(central_engine, job.job_id).state == "queued"
    # The dead worker comes back: it no longer holds the job.
    with pytest.raises(store.JobLost):
        store.report(central_engine, first, "dead-1", 30, done=1, now=T0 + timedelta(seconds=32))

    later = T0 + timedelta(minutes=1)
    second = store.claim(central_engine, "dead-2", 30, now=later)
    assert second is not None and second.attempts == 2
    assert store.expire_leases(central_engine, 2, now=later + timedelta(seconds=31)) == 1
    failed = store.get(central_engine, job.job_id)
    assert failed.state == "failed"
    assert failed.error_code == store.LEASE_LAPSED and "dead-2" in failed.error


def _claim_all(url: str, search_path: str | None, name: str, out: multiprocessing.Queue) -> None:
    args = {"connect_args": {"options": f"-csearch_path={search_path}"}} if search_path else {}
    engine = make_engine(url, **args)
    mine = []
    while (job := store.claim(engine, name, 60)) is not None:
        mine.append(job.job_id)
    engine.dispose()
    out.put(mine)


def test_processes_claiming_at_once_take_each_job_exactly_once(central_engine):
    """Four processes race for 60 jobs: every job is claimed once, none twice, none left."""
    ids = {store.submit(central_engine, "export", {"n": n}, "lin")[0].job_id for n in range(60)}
    url = central_engine.url.render_as_string(hide_password=False)
    search_path = None
    if central_engine.dialect.name == "postgresql":
        with central_engine.connect() as conn:
            search_path = conn.exec_driver_sql("SHOW search_path").scalar()
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    workers = [
        context.Process(target=_claim_all, args=(url, search_path, f"w{n}", results))
        for n in range(4)
    ]
    for worker in workers:
        worker.start()
    claimed = [job_id for _ in workers for job_id in results.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(claimed) == sorted(ids)
    with central_engine.connect() as conn:
        states = conn.exec_driver_sql("SELECT state, count(*) FROM jobs GROUP BY state").all()
    assert dict(states) == {"running": 60}


def _settings(tmp_path: Path) -> CentralSettings:
    return CentralSettings(jobs_folder=str(tmp_path / "jobs"))


def test_a_handler_refusal_fails_the_job_with_its_code_and_keeps_no_file(central_engine, tmp_path):
    def refuse(ctx: JobContext) -> JobResult:
        ctx.partial_path("pdf").write_bytes(b"half")
        raise JobRefused("nothing_to_print", summary={"why": "empty"})

    job, _ = store.submit(central_engine, "refuse", {}, "lin")
    claimed = store.claim(central_engine, "w1", 60)
    state = run_claimed(
        claimed, central_engine, _settings(tmp_path), tmp_path, "w1", {"refuse": refuse}
    )
    assert state == "failed"
    failed = store.get(central_engine, job.job_id)
    assert (failed.error, failed.summary) == ("nothing_to_print", {"why": "empty"})
    assert not list((tmp_path / "jobs").rglob("*"))  # the half-written file is gone too


def test_a_cancelled_job_stops_at_its_next_report_and_drops_its_file(central_engine, tmp_path):
    def long_job(ctx: JobContext) -> JobResult:
        out = ctx.partial_path("csv")
        out.write_text("rows")
        store.cancel(ctx.engine, ctx.job.job_id)  # someone presses Cancel meanwhile
        ctx.progress(1, total=2, force=True)
        raise AssertionError("not reached: the report finds the job cancelled")

    job, _ = store.submit(central_engine, "long", {}, "lin")
    claimed = store.claim(central_engine, "w1", 60)
    state = run_claimed(
        claimed, central_engine, _settings(tmp_path), tmp_path, "w1", {"long": long_job}
    )
    assert state == "cancelled"
    assert store.get(central_engine, job.job_id).state == "cancelled"
    assert not list((tmp_path / "jobs").rglob("*.csv*"))


def test_a_result_file_is_owner_only_and_outside_the_job_folder_is_not_served(
    central_engine, tmp_path
):
    def writes(ctx: JobContext) -> JobResult:
        out = ctx.partial_path("csv")
        out.write_text("a,b\n")
        return JobResult(out, "rows.csv", {"rows": 1})

    job, _ = store.submit(central_engine, "writes", {}, "lin")
    claimed = store.claim(central_engine, "w1", 60)
    assert (
        run_claimed(
            claimed, central_engine, _settings(tmp_path), tmp_path, "w1", {"writes": writes}
        )
        == "done"
    )
    done = store.get(central_engine, job.job_id)
    path = tmp_path / "jobs" / done.result_file
    assert path.read_text() == "a,b\n" and done.result_bytes == 4
    assert path.stat().st_mode & 0o077 == 0
    assert (tmp_path / "jobs").stat().st_mode & 0o077 == 0
