"""Exports for a range of days and some sites, as XLSX or CSV downloads."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from typing import Literal

from flask import render_template, request, send_file
from flask_babel import get_locale, gettext
from werkzeug.wrappers import Response

from central import exports
from central.web import i18n, lists
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.common import parse_day, today
from sync import tabular

# Exports are written to a temporary file first: a million rows do not fit comfortably in memory,
# and a failure half-way must not send half a file.
SPOOL_BYTES = 16 * 1024 * 1024


def _form_page(status: int = 200, error: str | None = None) -> tuple[str, int]:
    with state().engine.connect() as conn:
        sites = lists.site_rows(conn)
    last = today()
    page = render_template(
        "exports.html",
        section="exports",
        sites=sites,
        first=parse_day(request.args.get("from"), last - timedelta(days=6)),
        last=parse_day(request.args.get("to"), last),
        chosen=set(request.args.getlist("site")),
        chosen_districts=set(request.args.getlist("district")),
        districts=lists.districts(s["site_id"] for s in sites),
        error=error,
    )
    return page, status


@staff.route("/exports")
def exports_page() -> tuple[str, int]:
    return _form_page()


@staff.route("/exports/download")
def exports_download() -> Response | tuple[str, int]:
    args = request.args
    fmt = args.get("format", "xlsx")
    what = args.get("what", "stays")
    if fmt not in tabular.FORMATS or what not in exports.WHATS:
        return _form_page(400, gettext("Choose what to export and a format."))
    try:
        first = parse_day(args.get("from"), today())
        last = parse_day(args.get("to"), today())
        site_ids = [s for s in args.getlist("site") if s]
        # A district ticked stands for every site in it (a picker of 500 sites).
        wanted_districts = {d for d in args.getlist("district") if d}
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
        export = exports.ExportRequest(first, last, site_ids, what)  # type: ignore[arg-type]
        language: Literal["zh-CN", "en"] = (
            "en" if i18n.short_name(get_locale()) == "en" else "zh-CN"
        )
        table = exports.build_table(state().engine, export, state().zone, language)
    except exports.ExportError:
        return _form_page(400, gettext("The days or sites chosen are not valid."))
    # Not a `with`: send_file streams it after this function returns and closes it then.
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    tabular.write(table, spool, fmt)  # type: ignore[arg-type]
    spool.seek(0)
    return send_file(
        spool,
        mimetype=tabular.MEDIA_TYPES[fmt],
        as_attachment=True,
        download_name=f"{export.file_stem()}.{fmt}",
    )
