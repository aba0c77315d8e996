"""Finding a cadre, and a cadre's timeline: records, stays, corrections, anomalies."""

from __future__ import annotations

from datetime import timedelta

from flask import render_template, request

from central.web import queries
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.common import range_args, today

TIMELINE_DAYS = 14


@staff.route("/cadres")
def cadre_search() -> str:
    text = request.args.get("q", "").strip()
    with state().engine.connect() as conn:
        found = queries.find_cadres(conn, text) if text else []
    return render_template("cadres.html", section="cadres", q=text, found=found)


@staff.route("/cadres/<cadre_id>")
def cadre(cadre_id: str) -> tuple[str, int]:
    first, last = range_args(TIMELINE_DAYS)
    with state().engine.connect() as conn:
        data = queries.timeline(conn, cadre_id, first, last)
        sites = queries.site_names(conn) if data.cadre or data.events else []
    status = 200 if data.cadre or data.events or data.stays else 404
    page = render_template(
        "cadre.html",
        section="cadres",
        cadre_id=cadre_id,
        data=data,
        first=first,
        last=last,
        today=today(),
        earlier=(first - timedelta(days=TIMELINE_DAYS), first - timedelta(days=1)),
        sites=sites,
        prefill_event=request.args.get("event", ""),
    )
    return page, status
