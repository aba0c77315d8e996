"""Corrections by staff: the list of all of them, and adding one (admins only)."""

from __future__ import annotations

from datetime import date, datetime

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from sqlalchemy import Connection
from werkzeug.wrappers import Response

from central import corrections
from central.stays import store as stay_store
from central.web import fixes, lists, queries
from central.web.anomaly_messages import kind_label
from central.web.auth import admin_required, current_user
from central.web.blueprint import staff
from central.web.context import state
from sync.events import check_time_range


@staff.route("/corrections")
def corrections_list() -> str:
    """The newest corrections; ?q= narrows them to a cadre (name, id, pinyin), a member of
    staff or a site."""
    query = request.args.get("q", "").strip()
    with state().engine.connect() as conn:
        rows = queries.recent_corrections(conn, limit=2000 if query else 200)
    if query:
        test = lists.finds(query)
        rows = [
            r
            for r in rows
            if test(r.get("cadre_name") or "", r["cadre_id"], r["staff_user"], r["site_id"])
        ][:200]
    return render_template("corrections.html", section="corrections", rows=rows, q=query)


def local_time(text: str) -> datetime | None:
    """A datetime-local field (centre time zone) as naive UTC; None when empty or malformed."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=state().zone)
    try:
        # Days at the calendar's ends have no UTC value or no next day: as good as malformed.
        check_time_range(value)
    except ValueError:
        return None
    return queries.naive_utc(value)


def refresh_stays(conn: Connection, cadre_id: str, day: date) -> int:
    """Pair the stays of (cadre, day) again, now with the new correction, in this transaction."""
    return stay_store.recompute(conn, [(cadre_id, day)], state().rules, state().now())


def _anomalies_added(conn: Connection, change: corrections.NewCorrection) -> list[fixes.Found]:
    """The anomalies of the correction's cadre and day that it would add (tried on a copy)."""
    try:
        change.check()
    except corrections.CorrectionError:
        return []  # refused below, with its own message
    bounds = state().rules.day.bounds(change.service_day)
    now = queries.naive_utc(state().now())
    day = fixes.load_day(conn, change.cadre_id, change.service_day, day_over=now >= bounds[1])
    before = day.findings(state().rules)
    after = day.findings(state().rules, [change])
    return sorted((after - before).elements(), key=lambda f: (f[0], f[1] or "", f[2] or ""))


@staff.route("/corrections", methods=["POST"])
@admin_required
def correction_add() -> Response:
    form = request.form
    cadre_id = form.get("cadre_id", "").strip()
    action = form.get("action", "")
    event_id = form.get("event_id", "").strip() or None
    back = (
        url_for("staff.cadre", cadre_id=cadre_id) if cadre_id else url_for("staff.corrections_list")
    )
    if not cadre_id:
        abort(400)
    rules = state().rules
    if action not in corrections.ACTIONS:
        flash(gettext("Choose what to correct."), "error")
        return redirect(back + "#correct")
    if not form.get("reason", "").strip():
        flash(gettext("Give the reason for the correction."), "error")
        return redirect(back + "#correct")
    if action != "void" and form.get("kind") not in corrections.KINDS:
        flash(gettext("Choose arrival or departure."), "error")
        return redirect(back + "#correct")
    event_time = local_time(form.get("time", ""))
    with state().engine.begin() as conn:
        if action in ("void", "replace"):
            target = queries.event_row(conn, event_id) if event_id else None
            if target is None or target["cadre_id"] != cadre_id:
                flash(gettext("Choose one of this cadre's records to change or void."), "error")
                return redirect(back + "#correct")
            site_id, day = target["site_id"], target["service_day"]
            if action == "replace" and event_time is None:
                # Only the kind changes: keep the record's time.
                event_time = target["corrected_time"]
        else:
            site_id = form.get("site_id", "").strip()
            if event_time is None:
                flash(gettext("Enter the time of the missing record."), "error")
                return redirect(back + "#correct")
            day = rules.day.service_day(event_time)
            if site_id not in dict(queries.site_names(conn)):
                flash(gettext("Choose the site of the missing record."), "error")
                return redirect(back + "#correct")
        if event_time is not None and action != "void":
            moved_to = rules.day.service_day(event_time)
            if moved_to != day:
                flash(
                    gettext(
                        "A correction stays within the record's day (%(day)s): void the record "
                        "and add one on the other day instead.",
                        day=day.isoformat(),
                    ),
                    "error",
                )
                return redirect(back + "#correct")
        user = current_user()
        assert user is not None  # the gate lets no anonymous request this far
        change = corrections.NewCorrection(
            action=action,  # type: ignore[arg-type]
            cadre_id=cadre_id,
            site_id=site_id,
            service_day=day,
            reason=form.get("reason", ""),
            staff_user=user.username,
            target_event_id=event_id if action != "add" else None,
            kind=form.get("kind") if action != "void" else None,
            event_time=event_time if action != "void" else None,
        )
        added = _anomalies_added(conn, change)
        if added and form.get("accept_new_anomalies") != "1":
            flash(
                gettext(
                    "Not saved: this correction would add %(n)d anomalies on %(day)s (%(kinds)s). "
                    "Use the fix offered on the anomaly's own page, or tick 'save anyway'.",
                    n=len(added),
                    day=day.isoformat(),
                    kinds=", ".join(sorted({kind_label(kind) for kind, _, _ in added})),
                ),
                "error",
            )
            return redirect(back + "#correct")
        try:
            corrections.add_correction(conn, change, state().now())
        except corrections.CorrectionError:
            # Checked before anything is written: the transaction has nothing to undo.
            flash(gettext("Not saved: the correction is incomplete."), "error")
            return redirect(back + "#correct")
        refresh_stays(conn, cadre_id, day)
    flash(
        gettext("Correction saved; the stays of %(day)s are updated.", day=day.isoformat()),
        "ok",
    )
    return redirect(url_for("staff.cadre", cadre_id=cadre_id, to=day.isoformat()))
