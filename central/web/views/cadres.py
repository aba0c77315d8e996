"""Finding a cadre, and a cadre's timeline: records, stays, corrections, anomalies."""

from __future__ import annotations

from datetime import timedelta

from flask import render_template, request

from central import photo_review
from central.web import lists, queries
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.common import range_args, today

TIMELINE_DAYS = 14


SEARCH_ROWS = 200
CADRE_SORTS = ("name", "id")


@staff.route("/cadres")
def cadre_search() -> str:
    """Find cadres by name, id, pinyin or initials, in a site or a district; by pinyin or id."""
    args = request.args
    text = args.get("q", "").strip()
    site_id = args.get("site", "").strip()
    district = args.get("district", "").strip()
    order = lists.choice(args.get("sort"), CADRE_SORTS, "name")
    asked = bool(text or site_id or district)
    with state().engine.connect() as conn:
        sites = lists.site_rows(conn)
        found, total = (
            lists.roster_index().search(conn, text, site_id, district, SEARCH_ROWS)
            if asked
            else ([], 0)
        )
    if order == "id":
        found = sorted(found, key=lambda p: p.cadre_id)
    return render_template(
        "cadres.html",
        section="cadres",
        q=text,
        found=found,
        total=total,
        asked=asked,
        site_id=site_id,
        district=district,
        sort=order,
        sites=sites,
        districts=lists.districts(s["site_id"] for s in sites),
        shown_max=SEARCH_ROWS,
    )


@staff.route("/cadres/<cadre_id>")
def cadre(cadre_id: str) -> tuple[str, int]:
    first, last = range_args(TIMELINE_DAYS)
    with state().engine.connect() as conn:
        data = queries.timeline(conn, cadre_id, first, last)
        sites = lists.site_rows(conn) if data.cadre or data.events else []
        event_ids = [e["event_id"] for e in data.events]
        held = photo_review.held_photos(conn, event_ids)
        verdicts = photo_review.latest_verdicts(conn, event_ids)
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
        photos_held=held,
        verdicts=verdicts,
    )
    return page, status
