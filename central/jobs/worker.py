"""The worker: a thread in each `central serve` process (or `central jobs work`) that takes
queued jobs from the store and runs them, one at a time.

Each job runs in a child process of its own (`job_isolation = "process"`, the default): badge
sheets and big exports are CPU work and memory (a 40,000-badge PDF is held whole until written),
and in a child neither competes with the pages for the interpreter lock, and the memory goes
back to the system when the child ends. `"thread"` runs it on the worker thread (tests, and
machines where starting a process is dear).

Between jobs the worker puts lapsed leases back in the queue (store.expire_leases) and runs its
periodic duties when they are due: removing results older than `job_retention_h` every few
minutes, and checking for alerts every `alert_check_s` (central/alerts.py). Each is safe from
every process at once (guarded UPDATEs, unique keys); under a database lease (issue 16) they
would run in one process at a time instead, for less work, not for correctness.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from central import alerts
from central.jobs import store
from central.jobs.kinds import HANDLERS
from central.jobs.runner import Handler, remove_job_files, result_folder, run_claimed
from central.settings import CentralSettings

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 300.0
# Files in the jobs folder that no job points at (a worker killed while writing) are removed
# once they are this old: a younger one may be a result being written right now.
ORPHAN_AGE_S = 6 * 3600.0


@dataclass
class Duty:
    """Periodic work a worker does between jobs."""

    name: str
    every_s: float
    run: Callable[[datetime | None], object]
    last: float = field(default=-math.inf)  # monotonic time of the last run


class JobWorker:
    def __init__(
        self,
        engine: Engine,
        settings: CentralSettings,
        instance: Path,
        *,
        handlers: dict[str, Handler] | None = None,
        now: Callable[[], datetime] | None = None,
        isolation: str | None = None,
        post: alerts.Poster | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.instance = instance
        self.handlers = handlers if handlers is not None else HANDLERS
        self.now = now
        self.isolation = isolation or settings.job_isolation
        self.token = store.new_worker_token()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.duties = [
            Duty("retention", SWEEP_EVERY_S, lambda _now: self.sweep()),
            Duty(
                "alerts",
                settings.alert_check_s,
                lambda now: alerts.check_and_send(
                    engine, settings, now or datetime.now(UTC), post or alerts.http_post()
                ),
            ),
        ]

    # --- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="jobs", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        """A job was queued by this process: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.run_once():
                    continue
            except Exception:  # the store may be away for a moment; keep the thread
                log.exception("job worker: round failed")
            self._wake.wait(self.settings.job_poll_s)
            self._wake.clear()

    # --- one round ---------------------------------------------------------------------------

    def _moment(self) -> datetime | None:
        return self.now() if self.now else None

    def run_duties(self, force: bool = False) -> None:
        """Run the duties that are due (all of them with `force`); one failing does not stop
        the others, nor the jobs."""
        for duty in self.duties:
            if not force and time.monotonic() - duty.last < duty.every_s:
                continue
            duty.last = time.monotonic()
            try:
                duty.run(self._moment())
            except Exception:
                log.exception("duty %s failed", duty.name)

    def run_once(self) -> bool:
        """Expire lapsed leases, run the duties that are due, run one job; True if it ran."""
        store.expire_leases(self.engine, self.settings.job_max_attempts, self._moment())
        self.run_duties()
        job = store.claim(
            self.engine,
            self.token,
            self.settings.job_lease_s,
            kinds=tuple(self.handlers),
            now=self._moment(),
        )
        if job is None:
            return False
        self.run(job)
        return True

    def drain(self) -> int:
        """Run every queued job on the calling thread (tests, `central jobs work --once`)."""
        count = 0
        while self.run_once():
            count += 1
        return count

    def run(self, job: store.Job) -> str:
        if self.isolation == "process":
            return self._run_in_child(job)
        return run_claimed(
            job, self.engine, self.settings, self.instance, self.token, self.handlers, self.now
        )

    def _run_in_child(self, job: store.Job) -> str:
        context = multiprocessing.get_context("spawn")
        url = self.engine.url.render_as_string(hide_password=False)
        child = context.Process(
            target=_child_main,
            args=(url, self.settings.model_dump(), str(self.instance), job.job_id, self.token),
            name=f"job-{job.job_id[:8]}",
            daemon=False,
        )
        child.start()
        child.join(self.settings.job_timeout_min * 60.0)
        if child.is_alive():
            child.kill()
            child.join()
            store.fail(self.engine, job, self.token, store.TIMED_OUT, now=self._moment())
        elif child.exitcode != 0:
            # Killed (out of memory, say) before it could mark the job: say so, keep the queue.
            store.fail(self.engine, job, self.token, f"{store.WORKER_DIED}: exit {child.exitcode}")
        latest = store.get(self.engine, job.job_id)
        return latest.state if latest else "cancelled"

    # --- retention ---------------------------------------------------------------------------

    def sweep(self) -> int:
        """Delete result files past retention, and stray files no job points at; returns how
        many jobs' files went."""
        folder = result_folder(self.settings, self.instance)
        retention = timedelta(hours=self.settings.job_retention_h)
        expired = store.expired_results(self.engine, retention, self._moment())
        for job_id, _file in expired:
            remove_job_files(folder, job_id)
        store.mark_expired(self.engine, [job_id for job_id, _ in expired], self._moment())
        if folder.is_dir():
            kept = {name.split("/", 1)[0] for name in store.kept_files(self.engine)}
            active = store.active_job_ids(self.engine)
            cutoff = time.time() - ORPHAN_AGE_S
            for path in folder.iterdir():
                if path.name in kept or path.name in active:
                    continue
                try:
                    if path.stat().st_mtime < cutoff:
                        remove_job_files(folder, path.name)
                except FileNotFoundError:
                    continue
        return len(expired)


def _child_main(
    url: str, settings_data: dict[str, Any], instance: str, job_id: str, token: str
) -> None:
    """The child process: its own engine, the job as claimed by its parent, run to the end."""
    from central.db.engine import make_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s job %(levelname)s %(message)s")
    settings = CentralSettings(**settings_data)
    engine = make_engine(url)
    try:
        job = store.get(engine, job_id)
        if job is None or job.state != "running" or job.worker != token:
            return  # cancelled between the claim and the start
        run_claimed(job, engine, settings, Path(instance), token, HANDLERS)
    finally:
        engine.dispose()
