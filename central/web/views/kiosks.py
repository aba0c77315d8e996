"""Kiosks: health of every kiosk, enrolment (a one-time code and its QR) and revocation."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta
from typing import Any

import qrcode
import qrcode.constants
from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from qrcode.image.pil import PilImage
from sqlalchemy import select
from werkzeug.wrappers import Response

from central import fleet, kiosk_settings, releases
from central import kiosks as central_kiosks
from central.db import schema
from central.services import central_of
from central.web import lists, queries
from central.web.auth import admin_required, current_user
from central.web.blueprint import staff
from central.web.context import state
from sync.centre_key import shown
from sync.protocol import enrolment_qr_text


def _page(status: int = 200, **extra: object) -> tuple[str, int]:
    with state().engine.connect() as conn:
        health = central_kiosks.kiosk_health(
            conn, state().now(), state().settings.kiosk_dead_after_s
        )
        sites = lists.site_rows(conn)
    settings = state().settings
    limits = fleet.FleetLimits(
        disk_low_bytes=settings.fleet_disk_low_mb * 1024 * 1024, hot_c=settings.fleet_hot_c
    )
    kiosk_rows = [queries.kiosk_row(k) for k in health]
    with state().engine.connect() as conn:
        offers = releases.offered_versions(
            conn, {r["kiosk_id"]: r["site_id"] for r in kiosk_rows if r.get("enrolled_at")}
        )
    rows = fleet.fleet_rows(kiosk_rows, limits, offers)
    with state().engine.connect() as conn:
        pushed = kiosk_settings.pushed(conn)
    table = _filtered_kiosks(rows)
    page = render_template(
        "kiosks.html",
        section="kiosks",
        kiosks=table["rows"],
        table=table,
        districts=lists.districts(s["site_id"] for s in sites),
        sites=sites,
        now=state().now(),
        pushed=pushed,
        **extra,
    )
    return page, status


KIOSK_STATES = ("all", "silent", "revoked", "not_enrolled", "healthy")


def _kiosk_state(kiosk: dict[str, Any]) -> str:
    if kiosk.get("revoked_at"):
        return "revoked"
    if not kiosk.get("enrolled_at"):
        return "not_enrolled"
    return "silent" if kiosk.get("dead") else "healthy"


KIOSK_MARKS = ("all", "any", *fleet.MARKS)


def _filtered_kiosks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The kiosks as asked: ?q= (kiosk id, site, name, version, OS, Python, camera, board),
    ?district=, ?state=, ?mark= (one of the fleet marks, or any), ?version=; sorted by
    ?sort= (central.fleet.SORTS) in ?dir= asc or desc."""
    args = request.args
    query = args.get("q", "").strip()
    district = args.get("district", "").strip()
    wanted = lists.choice(args.get("state"), KIOSK_STATES, "all")
    mark = lists.choice(args.get("mark"), KIOSK_MARKS, "all")
    version = args.get("version", "").strip()
    sort = lists.choice(args.get("sort"), tuple(fleet.SORTS), "site")
    descending = args.get("dir") == "desc"
    test = lists.finds(query)
    shown = [
        k
        for k in rows
        if (not district or lists.district_of(k["site_id"]) == district)
        and (wanted == "all" or _kiosk_state(k) == wanted)
        and (mark == "all" or (k["marks"] if mark == "any" else mark in k["marks"]))
        and (not version or (k.get("app_version") or "") == version)
        and (not query or test(*_searched(k)))
    ]
    if sort != "site":
        shown = fleet.sort_rows(shown, sort, descending)
    elif descending:
        shown.reverse()
    versions = sorted(
        {k["app_version"] for k in rows if k.get("app_version")}, key=fleet.version_key
    )
    return {
        "rows": shown,
        "q": query,
        "district": district,
        "state": wanted,
        "states": KIOSK_STATES,
        "mark": mark,
        "marks": KIOSK_MARKS,
        "version": version,
        "versions": versions,
        "sort": sort,
        "descending": descending,
        "narrowed": len(shown) != len(rows),
        "total": len(rows),
        "marked": sum(1 for k in rows if k["marks"]),
        "all_ids": [k["kiosk_id"] for k in rows],
    }


def _searched(kiosk: dict[str, Any]) -> tuple[str, ...]:
    report = kiosk.get("fleet")
    return (
        kiosk.get("name") or "",
        kiosk["kiosk_id"],
        kiosk["site_id"],
        kiosk.get("app_version") or "",
        kiosk.get("os") or "",
        kiosk.get("python") or "",
        kiosk.get("camera") or "",
        report.board if report else "",
    )


@staff.route("/kiosks")
def kiosks() -> tuple[str, int]:
    return _page()


def centre_url() -> str:
    """Where kiosks reach the centre: the `public_url` setting, never the Host a request names
    (a kiosk pins what its code says). Empty when it is not set."""
    return state().settings.public_url.strip()


def _no_public_url() -> tuple[str, int]:
    return _page(
        409,
        enrol_error=gettext(
            "Set public_url in central.toml (the https:// address kiosks reach) before making "
            "an enrolment code."
        ),
    )


def qr_png_data_uri(text: str) -> str:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=6)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image(image_factory=PilImage).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# The one-time code is shown after a redirect (post/redirect/get): reloading the page that shows
# it must never make another kiosk or another code. The clear code waits in this staff member's
# session until the code is used or expires; the store keeps only its hash.
SESSION_CODES = "enrolment_codes"


def _remember_code(new: central_kiosks.NewCode) -> Response:
    codes = dict(session.get(SESSION_CODES) or {})
    codes[new.kiosk_id] = {"code": new.code, "expires_at": new.expires_at.isoformat()}
    session[SESSION_CODES] = codes
    return redirect(url_for("staff.kiosk_enrolment", kiosk_id=new.kiosk_id), code=303)


def _unused(code: str) -> bool:
    codes = schema.enrolment_codes
    digest = central_kiosks.hash_secret(central_kiosks.normalise_code(code))
    with state().engine.connect() as conn:
        used_at = conn.execute(select(codes.c.used_at).where(codes.c.code_hash == digest)).first()
    return used_at is not None and used_at[0] is None


def _code_in_session(kiosk_id: str) -> dict[str, Any] | None:
    """The clear code of `kiosk_id` this session made, while it can still be used."""
    codes = dict(session.get(SESSION_CODES) or {})
    held = codes.get(kiosk_id)
    if not isinstance(held, dict):
        return None
    expires_at = datetime.fromisoformat(str(held.get("expires_at")))
    usable = expires_at > queries.naive_utc(state().now()) and _unused(str(held.get("code")))
    if not usable:
        codes.pop(kiosk_id, None)
        session[SESSION_CODES] = codes
        return None
    return {"code": str(held["code"]), "expires_at": expires_at}


def _code_view(kiosk_id: str, template: str) -> tuple[str, int]:
    with state().engine.connect() as conn:
        kiosk = next(
            (k for k in central_kiosks.list_kiosks(conn) if k["kiosk_id"] == kiosk_id), None
        )
    if kiosk is None:
        abort(404)
    held = _code_in_session(kiosk_id)
    fp = central_of().signer.fingerprint()
    values: dict[str, Any] = {"kiosk": kiosk, "central_url": centre_url(), "centre_key": shown(fp)}
    if held is not None:
        values.update(
            code=held["code"],
            qr=qr_png_data_uri(enrolment_qr_text(held["code"], fp, centre_url())),
            expires_at=queries.aware(held["expires_at"]),
        )
    if template == "kiosks.html":
        return _page(enrolment=values)
    return render_template(template, **values), 200


@staff.route("/kiosks/<kiosk_id>/enrolment")
@admin_required
def kiosk_enrolment(kiosk_id: str) -> tuple[str, int]:
    return _code_view(kiosk_id, "kiosks.html")


@staff.route("/kiosks/<kiosk_id>/enrolment/print")
@admin_required
def kiosk_enrolment_print(kiosk_id: str) -> tuple[str, int]:
    """The code on a page of its own, to print and hand to whoever sets the kiosk up."""
    return _code_view(kiosk_id, "kiosk_code_print.html")


def _ttl() -> timedelta:
    return timedelta(hours=state().settings.enrolment_code_ttl_h)


@staff.route("/kiosks/enrol", methods=["POST"])
@admin_required
def kiosk_enrol() -> Response | tuple[str, int]:
    if not centre_url():
        return _no_public_url()
    site_id = request.form.get("site_id", "").strip()
    name = request.form.get("name", "").strip()[:200]
    user = current_user()
    try:
        new = central_kiosks.add_kiosk(
            state().engine,
            site_id,
            state().now(),
            _ttl(),
            name=name,
            created_by=user.username if user else "",
        )
    except central_kiosks.KioskError:
        return _page(400, enrol_error=gettext("Choose a site of the roster."))
    return _remember_code(new)


@staff.route("/kiosks/<kiosk_id>/code", methods=["POST"])
@admin_required
def kiosk_new_code(kiosk_id: str) -> Response | tuple[str, int]:
    if not centre_url():
        return _no_public_url()
    try:
        new = central_kiosks.new_enrolment_code(state().engine, kiosk_id, state().now(), _ttl())
    except central_kiosks.KioskError:
        return _page(400, enrol_error=gettext("This kiosk cannot get a new code (revoked?)."))
    return _remember_code(new)


@staff.route("/kiosks/<kiosk_id>/revoke", methods=["POST"])
@admin_required
def kiosk_revoke(kiosk_id: str) -> Response | tuple[str, int]:
    user = current_user()
    try:
        central_kiosks.revoke(
            state().engine, kiosk_id, state().now(), by=user.username if user else ""
        )
    except central_kiosks.KioskError:
        return _page(404, enrol_error=gettext("No such kiosk."))
    flash(gettext("Kiosk %(id)s is revoked: its next call is refused.", id=kiosk_id), "ok")
    return redirect(url_for("staff.kiosks"))


@staff.route("/kiosks/settings", methods=["POST"])
@admin_required
def kiosk_settings_set() -> Response | tuple[str, int]:
    """Set (or, with `remove`, take back) one kiosk setting for a site or a kiosk."""
    form = request.form
    target = form.get("target", "").strip()
    kind = form.get("scope", "site")
    key = form.get("key", "").strip()
    remove = form.get("remove") == "1"
    user = current_user()
    value = None if remove else kiosk_settings.parse_value(form.get("value", ""))
    problem = ""
    if not kiosk_settings.SETTING_NAME.fullmatch(key):
        problem = gettext("%(key)s is not a setting name.", key=key)
    elif not remove and form.get("value", "").strip() == "":
        problem = gettext("Give a value.")
    else:
        try:
            with state().engine.connect() as conn:
                scope = kiosk_settings.scope_of(
                    conn, target if kind == "site" else None, target if kind == "kiosk" else None
                )
        except kiosk_settings.SettingsInputError:
            problem = gettext("No site or kiosk %(id)s.", id=target)
    if not problem:
        try:
            kiosk_settings.set_settings(
                state().engine, scope, {key: value}, state().now(), by=user.username if user else ""
            )
        except (kiosk_settings.SettingsInputError, central_kiosks.KioskError):
            problem = gettext(
                "%(key)s cannot be set from the centre: it changes what a kiosk trusts, where it "
                "listens or reads frames, or who may log in. Set it on the kiosk itself.",
                key=key,
            )
    if problem:
        return _page(400, settings_error=problem)
    if remove:
        flash(gettext("%(key)s removed for %(scope)s.", key=key, scope=scope), "ok")
    else:
        flash(
            gettext(
                "%(key)s set for %(scope)s: kiosks take it at their next sync; this page shows "
                "what waits for a restart.",
                key=key,
                scope=scope,
            ),
            "ok",
        )
    return redirect(url_for("staff.kiosks") + "#centre-settings", code=303)
