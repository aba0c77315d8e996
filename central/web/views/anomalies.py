"""Anomalies: what the centre found odd in the records, by kind, for a range of days."""

from __future__ import annotations

from flask import render_template, request

from central.web import queries
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.common import range_args

ANOMALY_DAYS = 7


@staff.route("/anomalies")
def anomalies() -> str:
    first, last = range_args(ANOMALY_DAYS)
    kinds = [k for k in request.args.getlist("kind") if k in queries.ANOMALY_KINDS]
    site_id = request.args.get("site", "").strip() or None
    with state().engine.connect() as conn:
        rows, counts = queries.anomalies(
            conn, first, last, state().now(), state().rules, kinds, site_id=site_id
        )
    return render_template(
        "anomalies.html",
        section="anomalies",
        rows=rows,
        counts=counts,
        kinds=queries.ANOMALY_KINDS,
        chosen=kinds,
        first=first,
        last=last,
        site_id=site_id or "",
        limit_hit=len(rows) >= queries.ANOMALY_ROWS,
    )
