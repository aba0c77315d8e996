"""The `stays` table, kept from the events: recomputed for the (cadre, day) pairs that change.

An ingest, a clock correction or a staff correction names the (cadre, service day) pairs it
touches; `recompute` re-pairs them (central/stays/pairing.py) in the caller's transaction, or
`mark_dirty` queues them for `refresh` (run by central/stays/refresher.py), so a kiosk's push
never waits for pairing and a page never pairs a million events itself.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text

from central import corrections as staff_corrections
from central.db.bulk import bulk_insert, chunks, write_transaction
from central.db.schema import anomalies, corrections, events, stays, stays_dirty
from central.stays.pairing import StayRules, pair_day, without_kiosk_corrections
from central.timefix import to_utc_naive

# Anomaly kinds the stays computation owns (rewritten whenever a (cadre, day) is recomputed).
STAY_ANOMALIES = ("two_sites", "no_arrival", "no_departure", "overlong_stay", "kiosk_disagrees")
# Key of the PostgreSQL advisory lock that serialises stay recomputation (any constant will do).
PG_STAYS_LOCK = 0x5741_5953

EVENT_COLUMNS = (
    events.c.event_id,
    events.c.kiosk_id,
    events.c.site_id,
    events.c.cadre_id,
    events.c.kind,
    events.c.source,
    events.c.corrected_time,
    events.c.time_status,
    events.c.corrects,
    events.c.service_day,
)


def lock_for_stays(conn: Connection) -> None:
    """Serialise stay recomputation on PostgreSQL until the transaction ends.

    Two kiosks of a site may push records of one cadre at once; without this, each transaction
    would pair without seeing the other's uncommitted records and the last to write would win.
    SQLite serialises writers already.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_STAYS_LOCK})


def mark_dirty(conn: Connection, keys: set[tuple[str, date]]) -> None:
    """Queue (cadre, service day) pairs for `refresh`."""
    if not keys:
        return
    mark = secrets.randbits(62)
    bulk_insert(
        conn,
        stays_dirty,
        [{"cadre_id": c, "service_day": d, "mark": mark} for c, d in sorted(keys)],
        tail=' ON CONFLICT ("cadre_id", "service_day") DO UPDATE SET "mark" = excluded."mark"',
    )


def recompute(
    conn: Connection,
    keys: Iterable[tuple[str, date]],
    rules: StayRules,
    now: datetime | None = None,
) -> int:
    """Re-pair the stays of every (cadre_id, service_day) in `keys`, in the caller's transaction.

    Returns the number of stays written. Call it after storing records or corrections.
    """
    keys = set(keys)
    if not keys:
        return 0
    lock_for_stays(conn)
    cadre_ids = sorted({c for c, _ in keys})
    days = sorted({d for _, d in keys})
    day_records: dict[tuple[str, date], list[dict[str, Any]]] = defaultdict(list)
    corrective: dict[str, list[dict[str, Any]]] = defaultdict(list)
    day_corrections: dict[tuple[str, date], list[dict[str, Any]]] = defaultdict(list)
    corr = corrections
    for chunk in chunks(cadre_ids):
        for row in conn.execute(
            select(*EVENT_COLUMNS).where(
                events.c.cadre_id.in_(chunk),
                events.c.service_day.in_(days),
                events.c.quarantine.is_(None),  # kept, not counted (central/ingest/proofs.py)
            )
        ):
            record = dict(row._mapping)
            day_records[(record["cadre_id"], record["service_day"])].append(record)
        for row in conn.execute(
            select(*EVENT_COLUMNS).where(
                events.c.cadre_id.in_(chunk),
                events.c.corrects > "",
                events.c.quarantine.is_(None),
            )
        ):
            corrective[row.cadre_id].append(dict(row._mapping))
        for row in conn.execute(
            select(corr)
            .where(corr.c.cadre_id.in_(chunk), corr.c.service_day.in_(days))
            .order_by(corr.c.correction_id)
        ):
            day_corrections[(row.cadre_id, row.service_day)].append(dict(row._mapping))

    new_stays: list[dict[str, Any]] = []
    new_findings: list[dict[str, Any]] = []
    for cadre_id, day in sorted(set(day_records) | set(day_corrections)):
        records = without_kiosk_corrections(
            day_records.get((cadre_id, day), []), corrective.get(cadre_id, [])
        )
        records = staff_corrections.effective_records(
            records, day_corrections.get((cadre_id, day), [])
        )
        day_stays, findings = pair_day(cadre_id, day, records, rules)
        new_stays.extend(s.row() for s in day_stays)
        new_findings.extend(
            {
                "kind": f.kind,
                "site_id": f.site_id,
                "cadre_id": cadre_id,
                "service_day": day,
                "event_id": f.event_id,
                "detail": f.detail,
            }
            for f in findings
        )

    for chunk in chunks(cadre_ids):
        conn.execute(
            delete(stays).where(stays.c.cadre_id.in_(chunk), stays.c.service_day.in_(days))
        )
        conn.execute(
            delete(anomalies).where(
                anomalies.c.cadre_id.in_(chunk),
                anomalies.c.service_day.in_(days),
                anomalies.c.kind.in_(STAY_ANOMALIES),
            )
        )
    bulk_insert(conn, stays, new_stays)
    if new_findings:
        detected = to_utc_naive(now or datetime.now(UTC))
        for finding in new_findings:
            finding.update(kiosk_id=None, seq=None, boot_id=None, detected_at=detected)
            finding.setdefault("resolved_at", None)
        conn.execute(insert(anomalies), new_findings)
    return len(new_stays)


def refresh(
    engine: Engine, rules: StayRules, now: datetime | None = None, limit: int = 1000
) -> int:
    """Recompute the stays of up to `limit` queued (cadre, day) pairs; returns how many."""
    with write_transaction(engine) as conn:
        return refresh_in(conn, rules, now, limit)


def refresh_in(
    conn: Connection, rules: StayRules, now: datetime | None = None, limit: int = 1000
) -> int:
    """`refresh` in the caller's write transaction (the stays duty's, which holds its lease).

    A pair queued again while this runs keeps its new mark and stays queued.
    """
    lock_for_stays(conn)
    queued = conn.execute(
        select(stays_dirty.c.cadre_id, stays_dirty.c.service_day, stays_dirty.c.mark)
        .order_by(stays_dirty.c.service_day, stays_dirty.c.cadre_id)
        .limit(limit)
    ).all()
    if not queued:
        return 0
    recompute(conn, [(r.cadre_id, r.service_day) for r in queued], rules, now)
    conn.execute(
        delete(stays_dirty).where(
            stays_dirty.c.cadre_id == bindparam("b_cadre"),
            stays_dirty.c.service_day == bindparam("b_day"),
            stays_dirty.c.mark == bindparam("b_mark"),
        ),
        # In the order ingest marks them (`mark_dirty`), so the two never wait
        # for each other's rows in opposite orders on PostgreSQL.
        [
            {"b_cadre": r.cadre_id, "b_day": r.service_day, "b_mark": r.mark}
            for r in sorted(queued, key=lambda r: (r.cadre_id, r.service_day))
        ],
    )
    return len(queued)


def any_queued(conn: Connection) -> bool:
    """Whether any (cadre, day) pair waits: one index probe, for polling."""
    return conn.execute(select(stays_dirty.c.mark).limit(1)).first() is not None


def queued(conn: Connection) -> int:
    """(cadre, day) pairs waiting for their stays to be recomputed."""
    return conn.execute(select(func.count()).select_from(stays_dirty)).scalar_one()


def rebuild(
    conn: Connection, rules: StayRules, day: date | None = None, now: datetime | None = None
) -> int:
    """Recompute every stay (of one service day, or all): after a bulk load or a rule change."""
    query = select(events.c.cadre_id, events.c.service_day).distinct()
    if day is not None:
        query = query.where(events.c.service_day == day)
    keys = [(r[0], r[1]) for r in conn.execute(query)]
    written = 0
    for chunk in chunks(keys, 5000):
        written += recompute(conn, chunk, rules, now)
    return written
