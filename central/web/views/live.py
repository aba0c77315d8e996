"""Live pages: the all-sites page and a site's page refresh by themselves.

Each page polls a small JSON every few seconds (LIVE_EVERY_S in views/overview.py; the script
is static/live.js) and puts the new figures into the cells it already shows, so search, filters
and scroll stay as they are. A poll first sends the stamp of the last answer: while nothing that
changes the figures has happened (no push, no heartbeat, no correction, no roster change, no
pairing left to do, and the same half minute, as a kiosk goes silent by time alone), the answer
is `{"unchanged": true}` from a handful of one-row reads; otherwise the figures, read as the
page reads them. bench/central.py prints what each costs at a million events.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date
from typing import Any

from flask import abort, jsonify, request
from sqlalchemy import Connection, func, select
from werkzeug.wrappers import Response

from central.db import schema
from central.web import formatting, labels, queries
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.common import day_arg

STAMP_SLOT_S = 30


def stamp(conn: Connection, *parts: str) -> str:
    """What the figures depend on, hashed: equal stamps, equal figures."""
    k, st, corr = schema.kiosks, schema.kiosk_status, schema.corrections
    values = [
        # Every stored record raises its kiosk's max_seq: the sum moves with each push.
        conn.execute(select(func.max(k.c.last_push_at), func.sum(k.c.max_seq), func.count())).one(),
        conn.execute(select(func.max(st.c.received_at))).scalar(),
        conn.execute(select(func.max(corr.c.correction_id))).scalar(),
        conn.execute(select(func.count()).select_from(schema.anomaly_reviews)).scalar(),
        conn.execute(select(schema.roster_counter.c.version)).scalar(),
        conn.execute(select(func.count()).select_from(schema.stays_dirty)).scalar(),
        int(state().now().astimezone(UTC).timestamp() // STAMP_SLOT_S),
        *parts,
    ]
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def _counts(summary: Any) -> dict[str, int]:
    return {
        name: int(getattr(summary, name))
        for name in (
            "expected",
            "arrived",
            "present",
            "departed",
            "no_departure",
            "absent",
            "by_hand",
        )
    }


def _unchanged(current: str) -> Response | None:
    if request.args.get("since") == current:
        return jsonify(unchanged=True, stamp=current)
    return None


def overview_figures(day: date) -> tuple[str, queries.Overview]:
    """The all-sites figures of `day` and the stamp read just before them (a change landing
    between the two gives a stamp older than the figures: the next poll reads them again)."""
    with state().engine.connect() as conn:
        current = stamp(conn, day.isoformat())
        data = queries.overview(
            conn, day, state().now(), state().rules, state().settings.kiosk_dead_after_s
        )
    return current, data


def shared_overview(day: date) -> tuple[str, queries.Overview]:
    """The figures this process worked out last for everyone watching (shared_overview.py)."""
    shared = state().overview
    return shared.get(day) if shared is not None else overview_figures(day)


@staff.route("/live/overview.json")
def live_overview() -> Response:
    day = day_arg()
    with state().engine.connect() as conn:
        same = _unchanged(stamp(conn, day.isoformat()))
    if same is not None:
        return same
    current, data = shared_overview(day)
    return jsonify(
        stamp=current,
        day=day.isoformat(),
        totals=_counts(data.totals),
        sites={
            row.summary.site_id: {**_counts(row.summary), "silent": row.dead_kiosks}
            for row in data.sites
        },
        kiosks={"silent": len(data.dead), "all": len(data.kiosks)},
        pending=data.pending,
    )


@staff.route("/live/sites/<site_id>.json")
def live_site(site_id: str) -> Response:
    day = day_arg()
    settings = state().settings
    with state().engine.connect() as conn:
        current = stamp(conn, day.isoformat(), site_id)
        same = _unchanged(current)
        if same is not None:
            return same
        page = queries.site_page(
            conn, site_id, day, state().now(), state().rules, settings.kiosk_dead_after_s
        )
    if page is None:
        abort(404)
    zone = state().zone
    return jsonify(
        stamp=current,
        day=day.isoformat(),
        totals=_counts(page.summary),
        cadres={
            c.cadre_id: {
                "status": c.status,
                "status_label": labels.label("status", c.status),
                "arrived": formatting.hhmm(c.first_arrival),
                "left": formatting.hhmm(c.last_departure),
            }
            for c in page.cadres
        },
        chart=[
            {"t": slot.astimezone(zone).strftime("%H:%M"), "n": count}
            for slot, count in page.arrivals_per_slot
        ],
    )
