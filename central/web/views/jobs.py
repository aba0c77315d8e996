"""Background jobs in the browser: a job's page (progress, result, cancel), its JSON for the
page to poll, the download, and the list of recent jobs.

A job is seen by the staff member who started it and by administrators; badge sheets (signed,
printable badges) only by administrators, whoever started them.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from central.jobs import store
from central.jobs.runner import result_folder
from central.web import formatting, job_messages, once
from central.web.auth import current_user
from central.web.blueprint import staff
from central.web.context import state

ADMIN_ONLY_KINDS = frozenset({"badges"})
# The form's one-time token (central/web/once.py) is also the job's request key: a form sent
# twice is led to the first job by once.py, and the store makes one job of it even so.
REQUEST_KEY_FIELD = once.FIELD


def may_see(job: store.Job) -> bool:
    user = current_user()
    if user is None:
        return False
    if user.is_admin:
        return True
    return job.kind not in ADMIN_ONLY_KINDS and job.started_by == user.username


def start_job(kind: str, params: dict[str, Any], total: int | None = None) -> Response:
    """Queue a job for the current user and go to its page (a form sent twice: the same job)."""
    user = current_user()
    assert user is not None  # the gate lets no anonymous request this far
    key = request.form.get(REQUEST_KEY_FIELD, "").strip()[:64] or None
    job, _created = store.submit(
        state().engine,
        kind,
        params,
        user.username,
        request_key=key,
        total=total,
        now=state().now(),
    )
    state().central.jobs.poke()
    return redirect(url_for("staff.job_page", job_id=job.job_id), code=303)


def _job_or_404(job_id: str) -> store.Job:
    job = store.get(state().engine, job_id) if len(job_id) <= 32 else None
    if job is None or not may_see(job):
        abort(404)  # another's job is not confirmed to exist
    return job


def job_view(job: store.Job) -> dict[str, Any]:
    """What the page and its JSON show of a job."""
    percent = None
    if job.total:
        percent = min(100, int(job.done * 100 / job.total))
    elif job.state == "done":
        percent = 100
    summary = job.summary
    return {
        "id": job.job_id,
        "kind": job.kind,
        "kind_label": job_messages.kind_label(job.kind),
        "state": job.state,
        "state_label": job_messages.state_label(job.state),
        "stage": job.stage,
        "stage_label": job_messages.stage_label(job.stage),
        "done": job.done,
        "total": job.total,
        "percent": percent,
        "finished": job.finished,
        "error": job_messages.error_message(job),
        "download_url": (
            url_for("staff.job_download", job_id=job.job_id) if job.downloadable else None
        ),
        "result_name": job.result_name,
        "result_bytes": job.result_bytes,
        "expired": job.result_expired_at is not None,
        "unprintable_count": int(summary.get("unprintable_count") or 0),
        "created_at": formatting.day_time(job.created_at),
        "finished_at": formatting.day_time(job.finished_at),
    }


@staff.route("/jobs")
def jobs_list() -> str:
    user = current_user()
    assert user is not None
    rows = store.recent(state().engine, None if user.is_admin else user.username, limit=50)
    return render_template(
        "jobs.html", section="jobs", jobs=[job for job in rows if may_see(job)], view=job_view
    )


@staff.route("/jobs/<job_id>")
def job_page(job_id: str) -> str:
    job = _job_or_404(job_id)
    return render_template("job.html", section="jobs", job=job, info=job_view(job))


@staff.route("/jobs/<job_id>.json")
def job_json(job_id: str) -> Response:
    return jsonify(job_view(_job_or_404(job_id)))


@staff.route("/jobs/<job_id>/download")
def job_download(job_id: str) -> Response:
    job = _job_or_404(job_id)
    if not job.downloadable or not job.result_file:
        abort(404)
    folder = result_folder(state().settings, state().instance).resolve()
    path = (folder / job.result_file).resolve()
    if folder not in path.parents or not path.is_file():
        abort(404)
    return send_file(path, as_attachment=True, download_name=job.result_name or path.name)


@staff.route("/jobs/<job_id>/cancel", methods=["POST"])
def job_cancel(job_id: str) -> Response:
    job = _job_or_404(job_id)
    user = current_user()
    assert user is not None
    if not (user.is_admin or job.started_by == user.username):
        abort(403)
    if store.cancel(state().engine, job.job_id, state().now()):
        flash(gettext("The job is cancelled."), "ok")
    return redirect(url_for("staff.job_page", job_id=job.job_id), code=303)
