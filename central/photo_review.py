"""Reviewing check-in photos: which records of a site and day to look at first, and verdicts.

A reviewer looks at each camera record's photo and says "ok" or "proxy suspected" (someone else
held the badge), with a note. Verdicts are append-only (the photo_reviews table): a newer one
replaces the older as the record's verdict, and every one stays readable with who gave it and
when. The exports carry the latest verdict and whether the centre holds the photo, never the
photo itself.

Flagged first: a record with no face in view, no photo kept, a photo that has not reached the
centre, a record the centre does not count, one in an anomaly, or one already suspected.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Connection, insert, select

from central.db.schema import anomalies, cadres, events, photo_reviews, photos

Verdict = Literal["ok", "proxy_suspected"]
VERDICTS: tuple[str, ...] = ("ok", "proxy_suspected")
NOTE_MAX = 500
# Kiosk flags that put a record at the top of the review.
REVIEW_FLAGS = ("no_face", "no_photo", "several_badges")


class ReviewError(ValueError):
    """A verdict that cannot be stored; the message is for the reviewer."""


@dataclass
class ReviewRow:
    event_id: str
    cadre_id: str
    name: str
    kind: str
    corrected_time: datetime  # naive UTC
    kiosk_id: str
    photo_sha256: str | None  # what the record names
    photo_held: bool  # the centre holds that photo
    flags: list[str]
    quarantine: str | None
    anomalies: list[str]
    verdict: dict[str, Any] | None  # the latest

    @property
    def reasons(self) -> list[str]:
        """Why it is flagged (codes the page words): empty when it is not."""
        found = [f for f in self.flags if f in REVIEW_FLAGS]
        if self.photo_sha256 and not self.photo_held:
            found.append("photo_missing")
        if self.quarantine:
            found.append("not_counted")
        found += [f"anomaly:{kind}" for kind in self.anomalies]
        if self.verdict is not None and self.verdict["verdict"] == "proxy_suspected":
            found.append("proxy_suspected")
        return found


def add_verdict(
    conn: Connection,
    event_id: str,
    verdict: str,
    note: str,
    staff_user: str,
    now: datetime,
) -> dict[str, Any]:
    """Append a verdict on a record's photo (in the caller's transaction)."""
    if verdict not in VERDICTS:
        raise ReviewError("choose ok or proxy suspected")
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise ReviewError(f"note too long (at most {NOTE_MAX} characters)")
    if verdict == "proxy_suspected" and not note:
        raise ReviewError("say what makes you suspect a proxy")
    row = conn.execute(
        select(events.c.cadre_id, events.c.site_id, events.c.service_day).where(
            events.c.event_id == event_id
        )
    ).first()
    if row is None:
        raise ReviewError("no such record")
    values = {
        "event_id": event_id,
        "cadre_id": row.cadre_id,
        "site_id": row.site_id,
        "service_day": row.service_day,
        "verdict": verdict,
        "note": note,
        "staff_user": staff_user,
        "created_at": now.replace(tzinfo=None) if now.tzinfo else now,
    }
    conn.execute(insert(photo_reviews).values(**values))
    return values


def latest_verdicts(conn: Connection, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """event_id -> its newest verdict, for those of `event_ids` that have one."""
    found: dict[str, dict[str, Any]] = {}
    ids = list(event_ids)
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(photo_reviews)
            .where(photo_reviews.c.event_id.in_(ids[start : start + 500]))
            .order_by(photo_reviews.c.review_id)
        )
        for row in rows:
            found[row.event_id] = dict(row._mapping)  # newest last: it wins
    return found


def verdict_history(conn: Connection, event_id: str) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(photo_reviews)
            .where(photo_reviews.c.event_id == event_id)
            .order_by(photo_reviews.c.review_id.desc())
        )
    ]


def held_photos(conn: Connection, event_ids: Sequence[str]) -> dict[str, str]:
    """event_id -> sha256 for those of `event_ids` whose photo the centre holds."""
    found: dict[str, str] = {}
    ids = list(event_ids)
    for start in range(0, len(ids), 500):
        for row in conn.execute(
            select(photos.c.event_id, photos.c.sha256).where(
                photos.c.event_id.in_(ids[start : start + 500])
            )
        ):
            found[row.event_id] = row.sha256
    return found


def review_rows(conn: Connection, site_id: str, day: date) -> list[ReviewRow]:
    """The camera records of a site and service day: flagged first, then by time."""
    rows = conn.execute(
        select(events, cadres.c.name)
        .select_from(events.outerjoin(cadres, cadres.c.cadre_id == events.c.cadre_id))
        .where(
            events.c.site_id == site_id,
            events.c.service_day == day,
            events.c.source == "camera",
        )
        .order_by(events.c.corrected_time, events.c.kiosk_id, events.c.seq)
    ).all()
    ids = [r.event_id for r in rows]
    held = held_photos(conn, ids)
    verdicts = latest_verdicts(conn, ids)
    in_anomalies: dict[str, list[str]] = {}
    for a in conn.execute(
        select(anomalies.c.event_id, anomalies.c.kind).where(
            anomalies.c.site_id == site_id,
            anomalies.c.service_day == day,
            anomalies.c.event_id.is_not(None),
        )
    ):
        in_anomalies.setdefault(a.event_id, []).append(a.kind)
    out = [
        ReviewRow(
            event_id=r.event_id,
            cadre_id=r.cadre_id,
            name=r.name or "",
            kind=r.kind,
            corrected_time=r.corrected_time,
            kiosk_id=r.kiosk_id,
            photo_sha256=r.photo_sha256,
            photo_held=held.get(r.event_id) == r.photo_sha256 and r.photo_sha256 is not None,
            flags=json.loads(r.flags or "[]"),
            quarantine=r.quarantine,
            anomalies=sorted(set(in_anomalies.get(r.event_id, []))),
            verdict=verdicts.get(r.event_id),
        )
        for r in rows
    ]
    out.sort(key=lambda row: (not row.reasons, row.corrected_time))
    return out
