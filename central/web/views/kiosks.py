"""Kiosks: health of every kiosk, enrolment (a one-time code and its QR) and revocation."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import qrcode
import qrcode.constants
from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext
from qrcode.image.pil import PilImage
from werkzeug.wrappers import Response

from central import kiosks as central_kiosks
from central.web import queries
from central.web.auth import admin_required, current_user
from central.web.blueprint import staff
from central.web.context import state
from sync.protocol import enrolment_qr_text


def _page(status: int = 200, **extra: object) -> tuple[str, int]:
    with state().engine.connect() as conn:
        health = central_kiosks.kiosk_health(
            conn, state().now(), state().settings.kiosk_dead_after_s
        )
        sites = queries.site_names(conn)
    page = render_template(
        "kiosks.html",
        section="kiosks",
        kiosks=[queries.kiosk_row(k) for k in health],
        sites=sites,
        now=state().now(),
        **extra,
    )
    return page, status


@staff.route("/kiosks")
def kiosks() -> tuple[str, int]:
    return _page()


def centre_url() -> str:
    """Where kiosks reach the centre: the `public_url` setting, else the address staff use."""
    configured = state().settings.public_url.strip()
    return configured if configured else request.url_root


def qr_png_data_uri(text: str) -> str:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=6)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image(image_factory=PilImage).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _show_code(new: central_kiosks.NewCode) -> tuple[str, int]:
    payload = enrolment_qr_text(new.code, centre_url())
    # The code is shown once, in this answer only; the store keeps its hash.
    return _page(
        new_code=new,
        qr=qr_png_data_uri(payload),
        central_url=centre_url(),
        expires_at=queries.aware(new.expires_at),
    )


def _ttl() -> timedelta:
    return timedelta(hours=state().settings.enrolment_code_ttl_h)


@staff.route("/kiosks/enrol", methods=["POST"])
@admin_required
def kiosk_enrol() -> tuple[str, int]:
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
    return _show_code(new)


@staff.route("/kiosks/<kiosk_id>/code", methods=["POST"])
@admin_required
def kiosk_new_code(kiosk_id: str) -> tuple[str, int]:
    try:
        new = central_kiosks.new_enrolment_code(state().engine, kiosk_id, state().now(), _ttl())
    except central_kiosks.KioskError:
        return _page(400, enrol_error=gettext("This kiosk cannot get a new code (revoked?)."))
    return _show_code(new)


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
