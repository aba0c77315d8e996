"""All sites at a glance, and one site."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import abort, jsonify, render_template, request
from werkzeug.wrappers import Response

from central.web import lists, queries
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.common import day_arg, today
from central.web.views.live import shared_overview

# How often the all-sites and site pages refresh their figures (central/web/views/live.py).
LIVE_EVERY_S = 15
SITE_FILTERS = ("all", "absent", "no_departure", "silent", "none_arrived")
SITE_SORTS = ("site", "name", "absent", "arrived")


def _site_wanted(row: queries.SiteRow, show: str) -> bool:
    s = row.summary
    return (
        show == "all"
        or (show == "absent" and s.absent > 0)
        or (show == "no_departure" and s.no_departure > 0)
        or (show == "silent" and row.dead_kiosks > 0)
        or (show == "none_arrived" and s.arrived == 0)
    )


def _filtered_sites(data: queries.Overview) -> dict[str, Any]:
    """The all-sites table as asked: ?q= (id, name, pinyin), ?district=, ?show=, ?sort=."""
    args = request.args
    query = args.get("q", "").strip()
    district = args.get("district", "").strip()
    show = lists.choice(args.get("show"), SITE_FILTERS, "all")
    order = lists.choice(args.get("sort"), SITE_SORTS, "site")
    test = lists.finds(query)
    rows = [
        row
        for row in data.sites
        if (not district or lists.district_of(row.summary.site_id) == district)
        and _site_wanted(row, show)
        and (not query or test(row.summary.site_name, row.summary.site_id))
    ]
    if order == "name":
        rows = lists.by_name(rows, lambda r: r.summary.site_name, lambda r: r.summary.site_id)
    elif order == "absent":
        rows.sort(key=lambda r: (-r.summary.absent, r.summary.site_id))
    elif order == "arrived":
        rows.sort(key=lambda r: (-r.summary.arrived, r.summary.site_id))
    narrowed = len(rows) != len(data.sites)
    return {
        "rows": rows,
        "shown_totals": queries.totals([r.summary for r in rows]) if narrowed else data.totals,
        "narrowed": narrowed,
        "q": query,
        "district": district,
        "districts": lists.districts(r.summary.site_id for r in data.sites),
        "show": show,
        "sort": order,
        "site_filters": SITE_FILTERS,
        "site_sorts": SITE_SORTS,
    }


@staff.route("/")
def overview() -> str:
    day = day_arg()
    _, data = shared_overview(day)
    return render_template(
        "overview.html",
        section="overview",
        data=data,
        table=_filtered_sites(data),
        live_every=LIVE_EVERY_S,
        day=day,
        today=today(),
        previous_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
        now=state().now(),
    )


def _site_page(site_id: str) -> queries.SitePage:
    settings = state().settings
    with state().engine.connect() as conn:
        page = queries.site_page(
            conn, site_id, day_arg(), state().now(), state().rules, settings.kiosk_dead_after_s
        )
    if page is None:
        abort(404)
    return page


CADRE_FILTERS = ("all", "absent", "present", "no_departure", "departed", "no_arrival")
CADRE_SORTS = ("status", "name", "id", "arrival")


def _filtered_cadres(page: queries.SitePage) -> dict[str, Any]:
    """A site's cadres as asked: ?q= (name, id, pinyin, initials), ?status=, ?sort=."""
    args = request.args
    query = args.get("q", "").strip()
    status = lists.choice(args.get("status"), CADRE_FILTERS, "all")
    order = lists.choice(args.get("sort"), CADRE_SORTS, "status")
    test = lists.finds(query)
    rows = [
        c
        for c in page.cadres
        if (status == "all" or c.status == status) and (not query or test(c.name, c.cadre_id))
    ]
    if order in ("status", "name"):
        rows = lists.by_name(rows, lambda c: c.name, lambda c: c.cadre_id)
        if order == "status":
            rows.sort(key=lambda c: queries.STATUS_ORDER.get(c.status, 5))
    elif order == "id":
        rows.sort(key=lambda c: c.cadre_id)
    else:
        rows.sort(key=lambda c: (c.first_arrival is None, c.first_arrival or 0, c.cadre_id))
    return {
        "rows": rows,
        "q": query,
        "status": status,
        "sort": order,
        "cadre_filters": CADRE_FILTERS,
        "cadre_sorts": CADRE_SORTS,
        "narrowed": len(rows) != len(page.cadres),
    }


@staff.route("/sites/<site_id>")
def site(site_id: str) -> str:
    page = _site_page(site_id)
    zone = state().zone
    chart = [
        {"t": slot.astimezone(zone).strftime("%H:%M"), "n": count}
        for slot, count in page.arrivals_per_slot
    ]
    return render_template(
        "site.html",
        section="overview",
        page=page,
        day=page.day,
        today=today(),
        previous_day=page.day - timedelta(days=1),
        next_day=page.day + timedelta(days=1),
        chart=chart,
        now=state().now(),
        table=_filtered_cadres(page),
        live_every=LIVE_EVERY_S,
    )


@staff.route("/sites/<site_id>/arrivals.json")
def site_arrivals(site_id: str) -> Response:
    page = _site_page(site_id)
    return jsonify(
        site_id=page.site_id,
        day=page.day.isoformat(),
        slot_minutes=queries.CHART_SLOT_MINUTES,
        # People, each in the slot of their first arrival that day ("arrivals" kept for readers
        # written before: it is the same count).
        counts="people_first_arrival",
        slots=[
            {"start": slot.astimezone(state().zone).isoformat(), "people": count, "arrivals": count}
            for slot, count in page.arrivals_per_slot
        ],
    )
