"""Exports as a background job: the same tables as a direct download, written to the job's file
with the rows counted as progress.

Parameters (JSON): `what` (stays, events, attendance), `first` and `last` (service days, ISO),
`sites` (ids; empty: every site), `format` (xlsx, csv), `language` (zh-CN, en).
"""

from __future__ import annotations

from datetime import UTC, date
from typing import Any
from zoneinfo import ZoneInfo

from central import exports
from central.jobs.runner import JobContext, JobRefused, JobResult
from central.stays.pairing import StayRules
from sync import tabular

KIND = "export"
PROGRESS_EVERY = 500  # rows between progress notes (the store is written at most once a second)


def export_params(request: exports.ExportRequest, fmt: str, language: str) -> dict[str, Any]:
    return {
        "what": request.what,
        "first": request.first_day.isoformat(),
        "last": request.last_day.isoformat(),
        "sites": list(request.site_ids),
        "format": fmt,
        "language": language,
    }


def request_of(params: dict[str, Any]) -> exports.ExportRequest:
    return exports.ExportRequest(
        date.fromisoformat(params["first"]),
        date.fromisoformat(params["last"]),
        tuple(params.get("sites") or ()),
        params.get("what", "stays"),
    )


def run_export(ctx: JobContext) -> JobResult:
    params = ctx.params
    fmt = params.get("format", "xlsx")
    language = params.get("language", "zh-CN")
    if fmt not in tabular.FORMATS or language not in ("zh-CN", "en"):
        raise JobRefused("bad_export", f"{fmt} {language}")
    try:
        request = request_of(params)
        ctx.progress(0, stage="reading", force=True)
        total = exports.count_rows(ctx.engine, request)
    except (ValueError, KeyError) as exc:  # ExportError is a ValueError
        raise JobRefused("bad_export", str(exc)) from exc
    ctx.progress(0, total=total, stage="exporting", force=True)
    written = [0]

    def on_row() -> None:
        written[0] += 1
        if written[0] % PROGRESS_EVERY == 0:
            ctx.progress(written[0], total=max(total, written[0]))

    # "Present" means present when the export was asked for, however long it waited in the queue.
    now = ctx.job.created_at.replace(tzinfo=UTC)
    tables = exports.build_tables(
        ctx.engine,
        request,
        ZoneInfo(ctx.settings.timezone),
        language,
        now=now,
        rules=StayRules.from_settings(ctx.settings),
        on_row=on_row,
    )
    out = ctx.partial_path(fmt)
    with out.open("wb") as handle:
        tabular.write_tables(tables, handle, fmt)
    ctx.progress(written[0], total=written[0], force=True)
    return JobResult(
        out, f"{request.file_stem()}.{fmt}", {"rows": written[0], "what": request.what}
    )
