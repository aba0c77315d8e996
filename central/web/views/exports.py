"""Exports for a range of days and some sites: a direct XLSX or CSV download when small, a
background job (its page shows the progress, then the download) when big."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from typing import Literal

from flask import flash, render_template, request, send_file
from flask_babel import get_locale, gettext
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from central import exports
from central.jobs import export_job
from central.web import i18n, lists
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.common import parse_day, today
from central.web.views.jobs import start_job
from sync import tabular

# Exports are written to a temporary file first: a failure half-way must not send half a file.
SPOOL_BYTES = 16 * 1024 * 1024


def _form_page(
    status: int = 200, error: str | None = None, values: MultiDict[str, str] | None = None
) -> tuple[str, int]:
    values = values if values is not None else request.args
    with state().engine.connect() as conn:
        sites = lists.site_rows(conn)
    last = today()
    page = render_template(
        "exports.html",
        section="exports",
        sites=sites,
        first=parse_day(values.get("from"), last - timedelta(days=6)),
        last=parse_day(values.get("to"), last),
        chosen=set(values.getlist("site")),
        chosen_districts=set(values.getlist("district")),
        districts=lists.districts(s["site_id"] for s in sites),
        chosen_what=values.get("what", "stays"),
        chosen_format=values.get("format", "xlsx"),
        error=error,
    )
    return page, status


def _language() -> Literal["zh-CN", "en"]:
    return "en" if i18n.short_name(get_locale()) == "en" else "zh-CN"


def _export_request(values: MultiDict[str, str]) -> tuple[exports.ExportRequest, str]:
    """The export the form asks for; ExportError when it cannot be made."""
    fmt = values.get("format", "xlsx")
    what = values.get("what", "stays")
    if fmt not in tabular.FORMATS or what not in exports.WHATS:
        raise exports.ExportError("what or format")
    first = parse_day(values.get("from"), today())
    last = parse_day(values.get("to"), today())
    site_ids = [s for s in values.getlist("site") if s]
    # A district ticked stands for every site in it (a picker of 500 sites).
    wanted_districts = {d for d in values.getlist("district") if d}
    if wanted_districts:
        with state().engine.connect() as conn:
            site_ids += [
                s["site_id"]
                for s in lists.site_rows(conn)
                if s["district"] in wanted_districts and s["site_id"] not in site_ids
            ]
        if not site_ids:
            raise exports.ExportError("no site in " + ", ".join(sorted(wanted_districts)))
    missing = exports.unknown_sites(state().engine, site_ids)
    if missing:
        raise exports.ExportError(", ".join(missing))
    export = exports.ExportRequest(first, last, tuple(site_ids), what)  # type: ignore[arg-type]
    export.check()
    return export, fmt


def _send(export: exports.ExportRequest, fmt: str) -> Response:
    tables = exports.build_tables(
        state().engine, export, state().zone, _language(), now=state().now(), rules=state().rules
    )
    # Not a `with`: send_file streams it after this function returns and closes it then.
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    tabular.write_tables(tables, spool, fmt)  # type: ignore[arg-type]
    spool.seek(0)
    return send_file(
        spool,
        mimetype=tabular.MEDIA_TYPES[fmt],  # type: ignore[index]
        as_attachment=True,
        download_name=f"{export.file_stem()}.{fmt}",
    )


@staff.route("/exports")
def exports_page() -> tuple[str, int]:
    return _form_page()


@staff.route("/exports/download")
def exports_download() -> Response | tuple[str, int]:
    """A direct download (links, scripts). A big export is sent back to the form, to be made in
    the background instead of holding a request (and a server thread) for minutes."""
    try:
        export, fmt = _export_request(request.args)
    except exports.ExportError:
        return _form_page(400, gettext("The days or sites chosen are not valid."))
    rows = exports.count_rows(state().engine, export)
    if rows > state().settings.export_inline_max_rows:
        message = gettext(
            "About %(rows)d rows: too many for a direct download. Press Export to prepare the "
            "file in the background.",
            rows=rows,
        )
        return _form_page(200, message)
    return _send(export, fmt)


@staff.route("/exports", methods=["POST"])
def exports_run() -> Response | tuple[str, int]:
    """The form: a small export comes back at once; a big one, or any with "in the background"
    ticked, becomes a job and the answer is its page."""
    form = request.form
    try:
        export, fmt = _export_request(form)
    except exports.ExportError:
        return _form_page(400, gettext("The days or sites chosen are not valid."), form)
    rows = exports.count_rows(state().engine, export)
    big = rows > state().settings.export_inline_max_rows
    if not big and not form.get("background"):
        return _send(export, fmt)
    if big:
        flash(
            gettext("About %(rows)d rows: the file is prepared in the background.", rows=rows),
            "ok",
        )
    return start_job(export_job.KIND, export_job.export_params(export, fmt, _language()), rows)
