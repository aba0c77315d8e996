"""The kiosk screen: the page, its event stream, the camera preview, wedge input, Arrive/Leave.

Meant for the Pi's own Chromium: unless `screen_remote_allowed` is set, only loopback clients get
these routes (the stream carries names and the preview shows faces). POSTs also need the screen
token (an `X-Screen-Token` header): a custom header cannot be sent cross-site without CORS, so no
other page can submit scans through a browser.

The two streams (events, preview) each hold a worker thread while open, so each takes a slot
(kiosk/stream_slots.py: a few per client address, two kept for the Pi itself) and gives it back
as soon as its client leaves, another stream of the same client displaces it, or the kiosk stops.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, abort, g, jsonify, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wsgi import ClosingIterator

from kiosk.stream_slots import Slot, is_loopback
from kiosk.web import i18n
from kiosk.web.common import asset_url, services
from sync.web_security import tokens_equal

bp = Blueprint("screen", __name__)

KEEPALIVE_S = 15.0
# How often an open stream looks whether its client left or another took its slot: a slot comes
# back within about this long after a screen closes, not at the next failed write.
POLL_S = 1.0
RETRY_MS = 2000
PREVIEW_MAX_FPS = 8.0
MAX_WEDGE_CHARS = 512


def _is_local(address: str | None) -> bool:
    return is_loopback(address)


@bp.before_request
def _screen_guard() -> None:
    kiosk = services()
    if request.endpoint == "screen.healthz":
        return
    if not kiosk.settings.screen_remote_allowed and not _is_local(request.remote_addr):
        abort(403, description=_("The kiosk screen is only shown on the kiosk itself."))
    # The screen speaks the kiosk's language, whatever the Pi's browser asks for.
    g.page_locale = kiosk.screen_locale
    if request.method == "POST":
        sent = request.headers.get("X-Screen-Token", "")
        if not tokens_equal(kiosk.screen_token, sent):
            abort(403, description=_("This page is out of date: reload it."))


@bp.get("/")
def index() -> str:
    kiosk = services()
    settings = kiosk.settings
    setup = kiosk.setup is not None and kiosk.setup.waiting()
    idle = _("Show this kiosk's enrolment code") if setup else _("Show your badge to the camera")
    idle_detail = (
        _(
            "This kiosk is not enrolled yet: hold the enrolment code from the centre in front "
            "of the camera."
        )
        if setup
        else ""
    )
    config = {
        "locale": i18n.html_lang(kiosk.screen_locale),
        "timezone": settings.timezone,
        "sounds": settings.sounds,
        "result_ms": int(settings.result_display_s * 1000),
        "screen_token": kiosk.screen_token,
        "stream_url": url_for("screen.stream"),
        "preview_url": url_for("screen.preview"),
        "wedge_url": url_for("screen.wedge"),
        "mode_url": url_for("screen.mode"),
        "wedge_gap_ms": 300,
        "wedge_retry_ms": 30_000,  # a scan sent again while the server restarts (screen.js)
        "wedge_min_length": 4,
        "wedge_max_length": MAX_WEDGE_CHARS,
        "strings": {
            "title": _("Check-in kiosk"),
            "idle": idle,
            "idle_detail": idle_detail,
            "reconnecting": _("Connection to the kiosk lost: reconnecting…"),
            "failed": _("Not recorded"),
            "mode_hint": _("Choose before showing your badge"),
        },
    }
    photo_notice = ""
    if settings.photo_capture:
        # The privacy notice the issue asks for: said whenever photos are being taken.
        photo_notice = _(
            "A photo is taken at check-in and kept %(days)d days",
            days=settings.photo_retention_days,
        )
    return render_template(
        "screen.html",
        config=config,
        photo_notice=photo_notice,
        site_name=settings.site_name,
        show_buttons=settings.show_arrive_leave_buttons and not setup,
        setup=setup,
        idle=idle,
        idle_detail=idle_detail,
        html_lang=i18n.html_lang(kiosk.screen_locale),
        asset=asset_url,
    )


def _sse(event: str, data: dict[str, Any]) -> bytes:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {body}\n\n".encode()


def _take_stream_slot() -> Slot:
    """A slot for one long-lived response (kiosk/stream_slots.py), released when the server
    closes the response."""
    slot = services().stream_slots.take(request.remote_addr)
    if slot is None:
        abort(503, description=_("Too many kiosk screens are open."))
    return slot


def _client_gone() -> Callable[[], bool]:
    """Whether the client closed its connection (waitress watches the socket while the app
    writes, see kiosk/server.py); never, where the server cannot tell."""
    check = request.environ.get("waitress.client_disconnected")
    return check if callable(check) else (lambda: False)


@bp.get("/stream")
def stream() -> Response:
    kiosk = services()
    slot = _take_stream_slot()
    gone = _client_gone()
    subscription = kiosk.bus.subscribe(request.headers.get("Last-Event-ID"))
    hello = {"screen_token": kiosk.screen_token, "boot": kiosk.bus.boot}
    first_status = kiosk.screen_status()

    def generate() -> Iterator[bytes]:
        try:
            # retry: how soon the browser reconnects after the kiosk restarts.
            yield f"retry: {RETRY_MS}\n\n".encode()
            yield _sse("hello", hello)
            yield _sse("status", first_status)
            quiet_since = time.monotonic()
            while not kiosk.stopping.is_set() and not slot.ended.is_set() and not gone():
                message = subscription.get(timeout=POLL_S)
                if message is not None:
                    yield message.encode()
                    quiet_since = time.monotonic()
                elif subscription.closed:
                    return
                elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                    # A comment line: keeps proxies and idle timeouts from closing the stream.
                    yield b": keep-alive\n\n"
                    quiet_since = time.monotonic()
        finally:
            subscription.close()

    return Response(
        ClosingIterator(generate(), [slot.release]),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@bp.get("/preview.mjpg")
def preview() -> Response:
    """MJPEG of the scan loop's latest frame, at a capped rate, only as new frames come."""
    kiosk = services()
    slot = _take_stream_slot()
    gone = _client_gone()
    boundary = "kioskframe"

    def generate() -> Iterator[bytes]:
        last: bytes | None = None
        period = 1.0 / PREVIEW_MAX_FPS
        while not kiosk.stopping.is_set() and not slot.ended.is_set() and not gone():
            started = time.monotonic()
            loop = kiosk.scan_loop
            jpeg = loop.latest_jpeg() if loop is not None else None
            if jpeg is not None and jpeg is not last:
                last = jpeg
                yield (
                    (
                        f"--{boundary}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg)}\r\n\r\n"
                    ).encode()
                    + jpeg
                    + b"\r\n"
                )
            kiosk.stopping.wait(max(0.0, period - (time.monotonic() - started)))

    return Response(
        ClosingIterator(generate(), [slot.release]),
        mimetype=f"multipart/x-mixed-replace; boundary={boundary}",
        headers={"Cache-Control": "no-store"},
    )


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, description=_("Send a JSON object."))
    return data


@bp.post("/screen/wedge")
def wedge() -> Response:
    """A payload typed by a keyboard-wedge barcode scanner into the kiosk page."""
    payload = _json_body().get("payload")
    if not isinstance(payload, str) or not payload.strip():
        abort(400, description=_("No scanned text."))
    if len(payload) > MAX_WEDGE_CHARS:
        abort(400, description=_("Scanned text too long."))
    return jsonify(services().handle_payload(payload, "wedge"))


@bp.post("/screen/mode")
def mode() -> Response:
    """The Arrive / Leave buttons: fix the kind of the next scan for a short while."""
    kiosk = services()
    kind = _json_body().get("kind")
    if kind not in ("arrival", "departure", None):
        abort(400, description=_("Unknown kind."))
    if not kiosk.settings.show_arrive_leave_buttons:
        abort(409, description=_("The Arrive / Leave buttons are turned off."))
    return jsonify({"mode": kiosk.set_forced_kind(kind)})


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """For the systemd watchdog's probe and a quick look: no names, no details."""
    good, problem = services().health()
    return jsonify({"ok": good, "problem": problem}), 200 if good else 503
