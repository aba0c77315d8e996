"""Anomalies: what the centre's checks find, as rows of the `anomalies` table.

Ingest (central/ingest/) writes chain gaps and forks, reused event ids, rejected events and
uncorrected clocks; the stays code (central/stays/) writes what pairing finds. `anomaly_list`
reads them back for the anomalies page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select

from central.db.schema import anomalies, anomaly_reviews, stays
from central.stays.pairing import StayRules


def anomaly_row(kind: str, now: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "kind": kind,
        "kiosk_id": None,
        "site_id": None,
        "cadre_id": None,
        "service_day": None,
        "event_id": None,
        "seq": None,
        "boot_id": None,
        "detail": "",
        "detected_at": now,
        "resolved_at": None,
    }
    row.update(values)
    return row


def anomaly_list(
    conn: Connection,
    start: date,
    end: date,
    now: datetime,
    rules: StayRules,
    kinds: Sequence[str] | None = None,
    site_id: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Anomalies of service days [start, end] (and kiosk ones without a day), newest first.

    Besides the stored rows, a stay still open on a day that is over is listed as
    "no_departure" (it is only known once the day ends).
    """
    now = now.replace(tzinfo=None) if now.tzinfo else now
    query = select(anomalies).where(
        or_(
            and_(anomalies.c.service_day >= start, anomalies.c.service_day <= end),
            anomalies.c.service_day.is_(None),
        )
    )
    if kinds:
        query = query.where(anomalies.c.kind.in_(kinds))
    if site_id is not None:
        query = query.where(anomalies.c.site_id == site_id)
    rows = [
        dict(r._mapping)
        for r in conn.execute(query.order_by(anomalies.c.anomaly_id.desc()).limit(limit))
    ]
    if not kinds or "no_departure" in kinds:
        today = rules.day.service_day(now)
        last_closed_day = min(end, today - timedelta(days=1))
        if last_closed_day >= start:
            open_query = select(stays).where(
                stays.c.state == "open",
                stays.c.service_day >= start,
                stays.c.service_day <= last_closed_day,
            )
            if site_id is not None:
                open_query = open_query.where(stays.c.site_id == site_id)
            for stay in conn.execute(open_query.limit(limit)):
                rows.append(
                    {
                        "anomaly_id": None,
                        "kind": "no_departure",
                        "kiosk_id": stay.arrival_kiosk_id,
                        "site_id": stay.site_id,
                        "cadre_id": stay.cadre_id,
                        "service_day": stay.service_day,
                        "event_id": stay.arrival_event_id,
                        "seq": None,
                        "boot_id": None,
                        "detail": f"arrival at {stay.arrival_time:%Y-%m-%d %H:%M:%S} UTC "
                        "has no departure",
                        "detected_at": None,
                        "resolved_at": None,
                    }
                )
    return rows[:limit]


KEY_FIELDS = ("kind", "kiosk_id", "site_id", "cadre_id", "service_day", "event_id", "seq", "detail")


def anomaly_key(row: Mapping[str, Any]) -> str:
    """What an anomaly is about, as one string: the same anomaly found again has the same key."""
    parts = []
    for name in KEY_FIELDS:
        value = row.get(name)
        parts.append("" if value is None else str(value))
    return "|".join(parts)[:400]


def review(
    conn: Connection, row: Mapping[str, Any], reason: str, staff_user: str, now: datetime
) -> None:
    """Record that `staff_user` looked at the anomaly `row` and why it may rest."""
    text = reason.strip()
    if not text:
        raise ValueError("a review needs a reason")
    conn.execute(
        insert(anomaly_reviews).values(
            anomaly_key=anomaly_key(row),
            kind=row["kind"],
            cadre_id=row.get("cadre_id"),
            service_day=row.get("service_day"),
            reason=text[:500],
            staff_user=staff_user,
            created_at=now.replace(tzinfo=None) if now.tzinfo else now,
        )
    )


def reviews_of(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest review of each of `rows` that has one, by anomaly key."""
    keys = sorted({anomaly_key(r) for r in rows})
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        for review_row in conn.execute(
            select(anomaly_reviews)
            .where(anomaly_reviews.c.anomaly_key.in_(chunk))
            .order_by(anomaly_reviews.c.review_id)
        ):
            found[review_row.anomaly_key] = dict(review_row._mapping)
    return found
