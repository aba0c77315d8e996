"""Running one claimed job: its handler, its progress, its result file, its end.

A handler is a function of a `JobContext`. It reports progress through the context (written at
most once a second, renewing the lease), writes its result into `ctx.partial_path(...)` and
returns a `JobResult`. While it runs, a keep-alive thread renews the lease, so a long step
without progress (a PDF being written out) does not lose the job; the lease lapses only when the
process that runs the job dies, or after `timeout`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from central.jobs import store
from central.settings import CentralSettings

log = logging.getLogger(__name__)
REPORT_EVERY_S = 1.0


class JobRefused(Exception):
    """The job cannot be done as asked, for a reason its starter can act on.

    `code` is a message code the pages translate (central/web/job_messages.py); `detail` may name
    cadres or values; `summary` is kept with the job (say, which names cannot be printed).
    """

    def __init__(self, code: str, detail: str = "", summary: dict[str, Any] | None = None):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.summary = summary or {}


@dataclass(frozen=True)
class JobResult:
    file: Path | None  # a complete file the handler wrote (a partial_path), or None
    name: str | None  # the download's file name
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobContext:
    job: store.Job
    engine: Engine
    instance: Path
    settings: CentralSettings
    folder: Path  # the jobs folder; results go in folder/<job id>/
    worker: str
    lease_s: float
    now: Callable[[], datetime] | None = None
    # Hears every progress call (done, total, stage), unthrottled: the CLI's progress bar.
    listener: Callable[[int, int | None, str], None] | None = None
    _last_report: float = 0.0
    _done: int = 0
    _total: int | None = None
    _stage: str = ""

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def job_folder(self) -> Path:
        # Results hold personal data, and badge sheets are printable badges: owner only.
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.folder / self.job.job_id
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def partial_path(self, suffix: str) -> Path:
        """Where to write the result; each attempt has its own, so a late worker whose job was
        taken up again cannot overwrite the new attempt's file."""
        return self.job_folder() / f"attempt{self.job.attempts}.{suffix.lstrip('.')}.partial"

    def progress(
        self,
        done: int | None = None,
        total: int | None = None,
        stage: str | None = None,
        *,
        force: bool = False,
    ) -> None:
        """Note progress; written to the store at most once a second (or now, with force or a
        new stage). Raises store.JobLost when the job was cancelled or went to another worker."""
        if done is not None:
            self._done = done
        if total is not None:
            self._total = total
        new_stage = stage is not None and stage != self._stage
        if stage is not None:
            self._stage = stage
        if self.listener is not None:
            self.listener(self._done, self._total, self._stage)
        moment = time.monotonic()
        if not (force or new_stage) and moment - self._last_report < REPORT_EVERY_S:
            return
        self._last_report = moment
        store.report(
            self.engine,
            self.job,
            self.worker,
            self.lease_s,
            done=self._done,
            total=self._total,
            stage=self._stage or None,
            now=self.now() if self.now else None,
        )

    def advance(self, count: int = 1, stage: str | None = None) -> None:
        self.progress(self._done + count, stage=stage)


Handler = Callable[[JobContext], JobResult]


class _KeepAlive:
    """Renews the lease every third of it while the handler runs, up to `timeout_s`."""

    def __init__(self, ctx: JobContext, timeout_s: float) -> None:
        self.ctx = ctx
        self.deadline = time.monotonic() + timeout_s
        self.stopped = threading.Event()
        self.lost = False
        self.thread = threading.Thread(target=self._run, name="job-lease", daemon=True)

    def __enter__(self) -> _KeepAlive:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stopped.wait(max(self.ctx.lease_s / 3, 0.05)):
            if time.monotonic() > self.deadline:
                return  # let the lease lapse: a stuck job is failed by the next sweep
            try:
                store.report(self.ctx.engine, self.ctx.job, self.ctx.worker, self.ctx.lease_s)
            except store.JobLost:
                self.lost = True
                return
            except Exception:  # the store may be briefly unreachable: try again next round
                log.warning("job %s: lease renewal failed", self.ctx.job.job_id, exc_info=True)


def result_folder(settings: CentralSettings, instance: Path) -> Path:
    folder = Path(settings.jobs_folder)
    return folder if folder.is_absolute() else instance / folder


def run_claimed(
    job: store.Job,
    engine: Engine,
    settings: CentralSettings,
    instance: Path,
    worker: str,
    handlers: dict[str, Handler],
    now: Callable[[], datetime] | None = None,
    listener: Callable[[int, int | None, str], None] | None = None,
) -> str:
    """Run a job this worker has claimed to its end; returns the state it ended in."""
    folder = result_folder(settings, instance)
    ctx = JobContext(
        job, engine, instance, settings, folder, worker, settings.job_lease_s, now, listener
    )
    moment = now() if now else None
    handler = handlers.get(job.kind)
    if handler is None:
        store.fail(engine, job, worker, f"unknown_kind: {job.kind}", now=moment)
        return "failed"
    try:
        with _KeepAlive(ctx, settings.job_timeout_min * 60.0):
            result = handler(ctx)
        file_name = None
        size = None
        if result.file is not None:
            final = result.file.with_name(result.file.name.removesuffix(".partial"))
            os.chmod(result.file, 0o600)
            os.replace(result.file, final)
            file_name = str(final.relative_to(folder))
            size = final.stat().st_size
        if store.finish(
            engine,
            job,
            worker,
            result_file=file_name,
            result_name=result.name,
            result_bytes=size,
            summary=result.summary,
            now=now() if now else None,
        ):
            _drop_other_attempts(ctx, file_name)
            return "done"
        raise store.JobLost(job.job_id)
    except store.JobLost:
        log.info("job %s (%s) no longer ours: work dropped", job.job_id, job.kind)
        _drop_attempt(ctx)
        latest = store.get(engine, job.job_id)
        return latest.state if latest else "cancelled"
    except JobRefused as refused:
        _drop_attempt(ctx)
        store.fail(engine, job, worker, str(refused), summary=refused.summary, now=_now(now))
        return "failed"
    except Exception as exc:
        log.exception("job %s (%s) failed", job.job_id, job.kind)
        _drop_attempt(ctx)
        store.fail(engine, job, worker, f"{store.FAILED}: {type(exc).__name__}", now=_now(now))
        return "failed"


def _now(now: Callable[[], datetime] | None) -> datetime | None:
    return now() if now else None


def _drop_attempt(ctx: JobContext) -> None:
    """Remove this attempt's files (a finished attempt's result has no .partial suffix)."""
    folder = ctx.folder / ctx.job.job_id
    prefix = f"attempt{ctx.job.attempts}."
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name.startswith(prefix):
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # another attempt's file is still there
        folder.rmdir()


def _drop_other_attempts(ctx: JobContext, kept: str | None) -> None:
    """Files an earlier attempt left (its worker died half-way): the job is done without them."""
    folder = ctx.folder / ctx.job.job_id
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if str(path.relative_to(ctx.folder)) != kept:
            path.unlink(missing_ok=True)


def remove_job_files(folder: Path, job_id: str) -> None:
    shutil.rmtree(folder / job_id, ignore_errors=True)
