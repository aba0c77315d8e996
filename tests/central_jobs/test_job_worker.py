"""The job worker as it runs for real: in a child process, across a crash, within its time,
and its retention sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from sqlalchemy import Engine

from central import keys, roster
from central.db.engine import create_schema, make_engine
from central.jobs import badge_job
from central.jobs import store as job_store
from central.jobs.worker import ORPHAN_AGE_S, JobWorker
from central.roster_file import RosterRow
from central.settings import CentralSettings

ROOT = Path(__file__).resolve().parents[2]


def make_instance(tmp_path: Path, cadres: int) -> tuple[Path, Engine]:
    instance = tmp_path / "central"
    instance.mkdir()
    engine = make_engine(f"sqlite:///{instance / 'central.db'}")
    create_schema(engine)
    keys.create_issuing_key(instance / "issuing_key.pem")
    rows = [
        RosterRow(n, f"C{n:05d}", f"干部{n}", "东城区", f"S{n % 3}", None) for n in range(cadres)
    ]
    roster.import_roster(engine, rows)
    return instance, engine


def queue_print(engine: Engine, scope: str = "all") -> job_store.Job:
    params = badge_job.badge_params(scope, "54x90-2x5", datetime(2026, 11, 29).date())
    job, _ = job_store.submit(engine, badge_job.KIND, params, "lin")
    return job


def pdf_pages(path: Path) -> int:
    document = pdfium.PdfDocument(str(path))
    try:
        return len(document)
    finally:
        document.close()


def test_a_job_runs_in_a_child_process_and_its_result_is_kept(tmp_path):
    instance, engine = make_instance(tmp_path, 12)
    job = queue_print(engine)
    worker = JobWorker(engine, CentralSettings(), instance, isolation="process")
    assert worker.drain() == 1
    done = job_store.get(engine, job.job_id)
    assert done.state == "done", done.error
    assert done.worker == worker.token and done.attempts == 1
    assert (done.done, done.total) == (12, 12)
    assert pdf_pages(instance / "jobs" / done.result_file) == 2


def test_a_job_over_its_time_is_stopped_and_failed(tmp_path):
    instance, engine = make_instance(tmp_path, 400)
    job = queue_print(engine)
    settings = CentralSettings(job_timeout_min=0.5 / 60)  # half a second
    JobWorker(engine, settings, instance, isolation="process").drain()
    failed = job_store.get(engine, job.job_id)
    assert (failed.state, failed.error) == ("failed", job_store.TIMED_OUT)
    assert not (instance / "jobs" / job.job_id).exists() or not any(
        path.name.endswith(".pdf") for path in (instance / "jobs" / job.job_id).iterdir()
    )


def _start_worker(instance: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CENTRAL_")},
        "CENTRAL_INSTANCE": str(instance),
        "CENTRAL_JOB_LEASE_S": "5",
        "CENTRAL_JOB_POLL_S": "0.2",
        # The work happens in this process itself, so killing it kills the work.
        "CENTRAL_JOB_ISOLATION": "thread",
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from central.cli import main; main()", "jobs", "work", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_a_job_whose_worker_is_killed_is_taken_up_again_after_its_lease(tmp_path):
    # Drawing is reported once when it starts and then once a second; a fast machine draws 600
    # badges in about a second, so the kill comes as soon as drawing is seen to have begun, and
    # the roster is large enough that no machine finishes it between two looks.
    cadres = 2000
    instance, engine = make_instance(tmp_path, cadres)
    job = queue_print(engine)
    first = _start_worker(instance)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = job_store.get(engine, job.job_id)
            if seen.stage == "drawing":
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"the job did not start drawing: {seen}")
        first.send_signal(signal.SIGKILL)  # a power cut for this process
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    cut = job_store.get(engine, job.job_id)
    assert cut.state == "running" and cut.done < cadres, "killed half-way"

    # Nobody may take the job while the dead worker's lease holds; after it, anyone does.
    time.sleep(max(0.0, (cut.lease_until - datetime.now(UTC).replace(tzinfo=None)).total_seconds()))
    second = _start_worker(instance, "--once")
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0 and b"ran 1 job" in output, output.decode()
    done = job_store.get(engine, job.job_id)
    assert done.state == "done" and done.attempts == 2, done
    assert pdf_pages(instance / "jobs" / done.result_file) == cadres // 10
    # Only the finished attempt's file is left in the job's folder.
    assert [p.name for p in (instance / "jobs" / job.job_id).iterdir()] == [
        Path(done.result_file).name
    ]


def test_retention_removes_old_results_and_stray_files_but_keeps_the_record(tmp_path):
    instance, engine = make_instance(tmp_path, 4)
    job = queue_print(engine)
    clock = [datetime.now(UTC)]
    settings = CentralSettings(job_retention_h=24)
    worker = JobWorker(engine, settings, instance, isolation="thread", now=lambda: clock[0])
    worker.drain()
    done = job_store.get(engine, job.job_id)
    result = instance / "jobs" / done.result_file
    stray = instance / "jobs" / ("0" * 32)
    stray.mkdir()
    (stray / "attempt1.pdf.partial").write_bytes(b"half")
    old = time.time() - ORPHAN_AGE_S - 60
    os.utime(stray, (old, old))

    clock[0] += timedelta(hours=23)
    assert worker.sweep() == 0 and result.exists()
    clock[0] += timedelta(hours=2)
    assert worker.sweep() == 1
    assert not result.exists() and not stray.exists()
    expired = job_store.get(engine, job.job_id)
    assert expired.state == "done" and not expired.downloadable
    assert expired.summary["badges"] == 4, "who printed what stays on record"
