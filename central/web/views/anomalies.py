"""Anomalies: what the centre found odd in the records, by kind, for a range of days; and each
anomaly's own page, with the fix that resolves it (central/web/fixes.py) or a review."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from central import anomalies as central_anomalies
from central import corrections
from central.web import fixes, lists, queries
from central.web.auth import admin_required, current_user
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.common import parse_day, range_args
from central.web.views.corrections import local_time, refresh_stays

ANOMALY_DAYS = 7
KEY_ARGS = ("kind", "kiosk_id", "site_id", "cadre_id", "service_day", "event_id", "seq", "detail")


@staff.route("/anomalies")
def anomalies() -> str:
    first, last = range_args(ANOMALY_DAYS)
    kinds = [k for k in request.args.getlist("kind") if k in queries.ANOMALY_KINDS]
    site_id = request.args.get("site", "").strip() or None
    show_reviewed = request.args.get("reviewed") == "1"
    with state().engine.connect() as conn:
        rows, counts = queries.anomalies(
            conn, first, last, state().now(), state().rules, kinds, site_id=site_id
        )
        reviewed = central_anomalies.reviews_of(conn, rows)
        sites = lists.site_rows(conn)
    for row in rows:
        row["review"] = reviewed.get(central_anomalies.anomaly_key(row))
        row["fix_args"] = fix_args(row)
    hidden = sum(1 for row in rows if row["review"])
    if not show_reviewed:
        rows = [row for row in rows if not row["review"]]
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
        hidden=hidden,
        show_reviewed=show_reviewed,
        sites=sites,
    )


def fix_args(row: dict[str, Any]) -> dict[str, str]:
    """The query string naming one anomaly (its own page's address)."""
    values = {}
    for name in KEY_ARGS:
        value = row.get(name)
        if value is not None and value != "":
            values[name] = value.isoformat() if isinstance(value, date) else str(value)
    return values


staff.add_app_template_global(fix_args, "anomaly_args")


def _page_url(row: dict[str, Any]) -> str:
    values: dict[str, Any] = fix_args(row)
    return url_for("staff.anomaly_page", **values)


def _named_anomaly(values: Any) -> dict[str, Any]:
    """The anomaly the request names, as the anomalies list finds it now; 404 when gone."""
    wanted = {name: values.get(name, "") for name in KEY_ARGS}
    day_text = wanted["service_day"]
    day = parse_day(day_text, date.min) if day_text else None
    if day_text and day == date.min:
        abort(404)
    first = last = day or state().today()
    with state().engine.connect() as conn:
        rows = central_anomalies.anomaly_list(
            conn,
            first,
            last,
            state().now(),
            state().rules,
            kinds=[wanted["kind"]],
            site_id=wanted["site_id"] or None,
            limit=5000,
        )
    for row in rows:
        if fix_args(row) == {k: v for k, v in wanted.items() if v}:
            return row
    abort(404)


def _fixes(row: dict[str, Any], reason: str) -> list[fixes.Fix]:
    if not row.get("cadre_id") or row.get("service_day") is None:
        return []
    rules = state().rules
    bounds = rules.day.bounds(row["service_day"])
    now = queries.naive_utc(state().now())
    user = current_user()
    with state().engine.connect() as conn:
        day = fixes.load_day(conn, row["cadre_id"], row["service_day"], day_over=now >= bounds[1])
    return fixes.candidates(day, row, rules, user.username if user else "", reason, bounds)


def _default_reason(row: dict[str, Any]) -> str:
    from central.web.anomaly_messages import kind_label

    return str(gettext("Fixes the anomaly: %(kind)s", kind=kind_label(row["kind"])))


@staff.route("/anomalies/one")
def anomaly_page() -> str:
    row = _named_anomaly(request.args)
    offered = _fixes(row, _default_reason(row))
    data = None
    if row.get("cadre_id") and row.get("service_day"):
        with state().engine.connect() as conn:
            data = queries.timeline(conn, row["cadre_id"], row["service_day"], row["service_day"])
            reviewed = central_anomalies.reviews_of(conn, [row])
    else:
        with state().engine.connect() as conn:
            reviewed = central_anomalies.reviews_of(conn, [row])
    return render_template(
        "anomaly.html",
        section="anomalies",
        a=row,
        args=fix_args(row),
        fixes=offered,
        data=data,
        review=reviewed.get(central_anomalies.anomaly_key(row)),
        default_reason=_default_reason(row),
        reviewable=row["kind"] in fixes.REVIEW_KINDS or not any(f.clean for f in offered),
    )


@staff.route("/anomalies/fix", methods=["POST"])
@admin_required
def anomaly_fix() -> Response:
    form = request.form
    row = _named_anomaly(form)
    back = _page_url(row)
    reason = form.get("reason", "").strip()
    if not reason:
        flash(gettext("Give the reason for the correction."), "error")
        return redirect(back)
    code = form.get("fix", "")
    chosen = next((f for f in _fixes(row, reason) if f.code == code), None)
    if chosen is None:
        flash(gettext("This fix is no longer offered: the records changed. Look again."), "error")
        return redirect(back)
    moment = local_time(form.get("time", ""))
    if chosen.code in ("add_arrival", "add_departure", "move_departure") and moment is not None:
        chosen = _retimed(row, chosen, moment)
    if not chosen.clean:
        flash(_refusal(chosen), "error")
        return redirect(back)
    user = current_user()
    assert user is not None
    with state().engine.begin() as conn:
        for change in chosen.changes:
            corrections.add_correction(conn, change, state().now())
        refresh_stays(conn, row["cadre_id"], row["service_day"])
    flash(gettext("Fixed: the anomaly is resolved and no other appeared."), "ok")
    return redirect(
        url_for("staff.cadre", cadre_id=row["cadre_id"], to=row["service_day"].isoformat())
    )


def _retimed(row: dict[str, Any], fix: fixes.Fix, moment: Any) -> fixes.Fix:
    """The same fix at the time staff entered, tried again."""
    from dataclasses import replace

    rules = state().rules
    bounds = rules.day.bounds(row["service_day"])
    now = queries.naive_utc(state().now())
    with state().engine.connect() as conn:
        day = fixes.load_day(conn, row["cadre_id"], row["service_day"], day_over=now >= bounds[1])
    changes = [replace(change, event_time=moment) for change in fix.changes]
    target = (row["kind"], row.get("site_id"), row.get("event_id"))
    return fixes.try_fix(day, rules, replace(fix, changes=changes, time=moment), target)


def _refusal(fix: fixes.Fix) -> str:
    from central.web.anomaly_messages import kind_label

    if not fix.resolves:
        return str(gettext("Not saved: at that time the anomaly would remain."))
    return str(
        gettext(
            "Not saved: this would add %(n)d anomalies (%(kinds)s).",
            n=len(fix.new_anomalies),
            kinds=", ".join(sorted({kind_label(kind) for kind, _, _ in fix.new_anomalies})),
        )
    )


@staff.route("/anomalies/review", methods=["POST"])
@admin_required
def anomaly_review() -> Response:
    row = _named_anomaly(request.form)
    reason = request.form.get("reason", "").strip()
    if not reason:
        flash(gettext("Say why this anomaly may rest."), "error")
        return redirect(_page_url(row))
    user = current_user()
    assert user is not None
    with state().engine.begin() as conn:
        central_anomalies.review(conn, row, reason, user.username, state().now())
    flash(gettext("Reviewed: the anomaly is kept, marked with your name and reason."), "ok")
    return redirect(url_for("staff.anomalies", reviewed="1"))
