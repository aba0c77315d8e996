"""All sites at a glance, and one site."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, jsonify, render_template
from werkzeug.wrappers import Response

from central.web import queries
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.common import day_arg, today


@staff.route("/")
def overview() -> str:
    day = day_arg()
    with state().engine.connect() as conn:
        data = queries.overview(
            conn, day, state().now(), state().rules, state().settings.kiosk_dead_after_s
        )
    return render_template(
        "overview.html",
        section="overview",
        data=data,
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
