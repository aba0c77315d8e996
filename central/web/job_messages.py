"""What the pages say about a background job: its kind, stage, state and error, translated.

The jobs table holds codes (central/jobs/); the pages and the job's JSON say them in the page's
language. A code no entry knows is shown as it is rather than hidden; a test runs every stage and
error code through here and checks each is translated.
"""

from __future__ import annotations

from collections.abc import Callable

from flask_babel import gettext

from central.jobs.store import Job

KINDS: dict[str, Callable[[], str]] = {
    "badges": lambda: gettext("Badge sheets"),
    "export": lambda: gettext("Export"),
}

STATES: dict[str, Callable[[], str]] = {
    "queued": lambda: gettext("waiting to start"),
    "running": lambda: gettext("running"),
    "done": lambda: gettext("done"),
    "failed": lambda: gettext("failed"),
    "cancelled": lambda: gettext("cancelled"),
}

STAGES: dict[str, Callable[[], str]] = {
    "queued": lambda: gettext("waiting for a worker"),
    "starting": lambda: gettext("starting"),
    "issuing": lambda: gettext("issuing badges"),
    "drawing": lambda: gettext("drawing badges"),
    "writing": lambda: gettext("writing the PDF"),
    "reading": lambda: gettext("reading records"),
    "exporting": lambda: gettext("writing rows"),
    "done": lambda: gettext("done"),
    "failed": lambda: gettext("failed"),
    "cancelled": lambda: gettext("cancelled"),
}

ERRORS: dict[str, Callable[[str], str]] = {
    "lease_lapsed": lambda d: gettext(
        "The process running this job stopped (server restart or crash). Start it again."
    ),
    "worker_died": lambda d: gettext(
        "The process running this job ended without finishing it (out of memory?). "
        "Start it again; the server log says more."
    ),
    "timed_out": lambda d: gettext("The job took longer than the time allowed and was stopped."),
    "failed": lambda d: gettext("The job failed; the server log says why."),
    "unknown_kind": lambda d: gettext("This server cannot run jobs of this kind."),
    "bad_scope": lambda d: gettext("Choose whom to print badges for."),
    "bad_layout": lambda d: gettext("Unknown label layout."),
    "font_missing": lambda d: gettext(
        "The badge font is missing on the server (fonts-wqy-zenhei)."
    ),
    "key_unreadable": lambda d: gettext(
        "The issuing key cannot be read: run `central init` on the server."
    ),
    "unknown_cadre": lambda d: gettext("No cadre %(id)s in the roster.", id=d),
    "issue_failed": lambda d: gettext("A badge could not be issued; the server log says why."),
    "nothing_to_print": lambda d: gettext("No cadres match: nothing to print."),
    "nothing_to_export": lambda d: gettext("Nothing to export for these days and sites."),
    "bad_export": lambda d: gettext("The days or sites chosen are not valid."),
}


def kind_label(kind: str) -> str:
    known = KINDS.get(kind)
    return known() if known else kind


def state_label(state: str) -> str:
    known = STATES.get(state)
    return known() if known else state


def stage_label(stage: str) -> str:
    known = STAGES.get(stage)
    return known() if known else stage


def error_message(job: Job) -> str:
    if not job.error:
        return ""
    code, _, detail = job.error.partition(":")
    known = ERRORS.get(code.strip())
    return known(detail.strip()) if known else job.error
