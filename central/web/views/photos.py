"""Check-in photos on the staff pages: one photo, and the photo review of a site's day.

GET  /staff/photos/<sha256>.jpg    a photo the centre holds (admins; viewers when
                                   photo_viewers_allowed); never cached by the browser
GET  /staff/review?site=&day=      the day's camera records of a site, flagged first, each
                                   with its photo and its latest verdict
POST /staff/review                 a verdict (admins): ok / proxy suspected, with a note
"""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from central import photo_review
from central.db.schema import photos
from central.photos import CentralPhotos
from central.web import lists, queries
from central.web.auth import admin_required, current_user
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.common import day_arg


def can_see_photos() -> bool:
    user = current_user()
    if user is None:
        return False
    return user.is_admin or state().settings.photo_viewers_allowed


@staff.app_template_global("can_see_photos")
def _can_see_photos() -> bool:
    return can_see_photos()


@staff.route("/photos/<sha256>.jpg")
def photo(sha256: str) -> Response:
    if not can_see_photos():
        abort(403)
    store = CentralPhotos.of_instance(state().instance)
    try:
        store.path(sha256)
    except ValueError:
        abort(404)
    with state().engine.connect() as conn:
        held = conn.execute(select(photos.c.sha256).where(photos.c.sha256 == sha256)).first()
    data = store.read(sha256) if held is not None else None
    if data is None:
        abort(404)
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@staff.route("/review")
def photo_review_page() -> str:
    day = day_arg()
    site_id = request.args.get("site", "").strip()
    with state().engine.connect() as conn:
        sites = lists.site_rows(conn)
        rows = photo_review.review_rows(conn, site_id, day) if site_id else []
    return render_template(
        "review.html",
        section="review",
        sites=sites,
        site_id=site_id,
        day=day,
        rows=rows,
        flagged=sum(1 for r in rows if r.reasons),
        show_photos=can_see_photos(),
    )


@staff.route("/review", methods=["POST"])
@admin_required
def photo_verdict() -> BaseResponse:
    form = request.form
    event_id = form.get("event_id", "").strip()
    user = current_user()
    assert user is not None  # the gate lets no anonymous request this far
    with state().engine.begin() as conn:
        target = queries.event_row(conn, event_id) if event_id else None
        if target is None:
            abort(404)
        back = url_for(
            "staff.photo_review_page", site=target["site_id"], day=target["service_day"].isoformat()
        )
        try:
            photo_review.add_verdict(
                conn,
                event_id,
                form.get("verdict", ""),
                form.get("note", ""),
                user.username,
                state().now(),
            )
        except photo_review.ReviewError as exc:
            flash(_review_error(str(exc)), "error")
            return redirect(f"{back}#r-{event_id}")
    flash(gettext("Verdict saved."), "ok")
    return redirect(f"{back}#r-{event_id}")


def _review_error(code: str) -> str:
    words = {
        "choose ok or proxy suspected": gettext("Choose ok or proxy suspected."),
        "say what makes you suspect a proxy": gettext("Say what makes you suspect a proxy."),
        "no such record": gettext("No such record."),
    }
    return str(words.get(code) or gettext("The note is too long."))
