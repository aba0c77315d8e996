"""The site lead's photos: an event's photo, and today's arrivals as a grid of faces.

    GET /lead/photo/<sha256>.jpg   one photo (the lead's session; never cached by the browser)
    GET /lead/photos               today's camera arrivals with their photos, newest first, so a
                                   lead can spot one face behind several names

Registered on the lead page's blueprint, so its PIN guard covers them.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response, abort, render_template

from kiosk.photos import SHA256_PATTERN
from kiosk.web.common import services
from kiosk.web.lead import bp
from kiosk.web.lead_day import person, today
from kiosk.web.present import flag_text, hm


@dataclass(frozen=True)
class PhotoTile:
    sha256: str
    time: str
    name: str
    cadre_id: str
    kept: bool  # the kiosk still has the photo (not purged, written)
    flags: list[str]


@bp.get("/photo/<sha256>.jpg")
def photo(sha256: str) -> Response:
    kiosk = services()
    if not SHA256_PATTERN.match(sha256) or kiosk.photos is None:
        abort(404)
    data = kiosk.photos.read(sha256)
    if data is None:
        abort(404)
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/photos")
def photo_grid() -> str:
    kiosk = services()
    rules = kiosk.rules
    day = today()
    events = [
        e
        for e in rules.events_of_day(day)
        if e.kind == "arrival" and e.source == "camera" and e.photo_sha256
    ]
    store = kiosk.photos
    tiles = []
    for event in sorted(events, key=lambda e: e.seq, reverse=True):
        assert event.photo_sha256 is not None
        who = person(event.cadre_id)
        tiles.append(
            PhotoTile(
                sha256=event.photo_sha256,
                time=hm(rules.local(rules.true_time(event))),
                name=who.name,
                cadre_id=event.cadre_id,
                kept=store is not None and store.find(event.photo_sha256) is not None,
                flags=[flag_text(f) for f in event.flags],
            )
        )
    return render_template(
        "lead_photos.html",
        tiles=tiles,
        day=day,
        capture_on=kiosk.settings.photo_capture,
        retention_days=kiosk.settings.photo_retention_days,
    )
