"""Kiosk clocks: the samples kiosks send, each boot's anchor, and correcting a boot's times.

A Pi has no hardware clock, so each event keeps its kiosk's wall time, boot id and monotonic time
(central/timefix.py does the arithmetic). A clock sample ties one boot's monotonic time to true
time; the latest becomes the boot's anchor. Events of a boot that arrived before any anchor keep
the kiosk's time, marked "uncorrected" and flagged as an anomaly, until a sample comes: then they
are placed on true time and their stays recomputed. Both values are kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from central.anomalies import anomaly_row
from central.db.bulk import dialect_insert
from central.db.schema import anomalies, boots, clock_samples, events
from central.ingest.proofs import (
    PROOF_ANOMALY,
    PROOF_SOURCES,
    REVOKED,
    Revocations,
    revocation_verdict,
)
from central.ingest.timeclaims import DEFAULT_TIME_TOLERANCE, boot_clocks, judge_time
from central.kiosks import KioskIdentity
from central.stays.pairing import StayRules
from central.stays.store import recompute
from central.timefix import Anchor, anchor_of, correct, newer_anchor, to_utc_naive, usable
from sync.protocol import ClockSample


def anchors_of(conn: Connection, kiosk_id: str, boot_ids: set[str]) -> dict[str, Anchor | None]:
    return {boot: clock.anchor for boot, clock in boot_clocks(conn, kiosk_id, boot_ids).items()}


def flag_uncorrected(
    conn: Connection, kiosk: KioskIdentity, rows: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    first_of_boot: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["time_status"] == "uncorrected":
            first_of_boot.setdefault(r["boot_id"], r)
    if not first_of_boot:
        return []
    flagged = set(
        conn.execute(
            select(anomalies.c.boot_id).where(
                anomalies.c.kind == "uncorrected_time",
                anomalies.c.kiosk_id == kiosk.kiosk_id,
                anomalies.c.boot_id.in_(sorted(first_of_boot)),
                anomalies.c.resolved_at.is_(None),
            )
        ).scalars()
    )
    return [
        anomaly_row(
            "uncorrected_time",
            now,
            kiosk_id=kiosk.kiosk_id,
            site_id=kiosk.site_id,
            boot_id=boot_id,
            event_id=r["event_id"],
            seq=r["seq"],
            service_day=r["service_day"],
            detail=f"boot {boot_id}: clock not synchronised and no offset known; "
            "times as the kiosk's clock showed them",
        )
        for boot_id, r in first_of_boot.items()
        if boot_id not in flagged
    ]


def apply_clock_samples(
    conn: Connection,
    kiosk: KioskIdentity,
    samples: Sequence[ClockSample],
    now: datetime,
    rules: StayRules,
    tolerance: timedelta = DEFAULT_TIME_TOLERANCE,
) -> int:
    """Store a kiosk's clock samples and move each boot's anchor to its latest one.

    Events of a boot that arrived before the boot had any anchor (time_status "uncorrected")
    are placed on true time now, their stays recomputed and the boot's anomaly resolved.
    Returns the number of events corrected.
    """
    now_utc = to_utc_naive(now)
    good = [s for s in samples if usable(s)]
    if not good:
        return 0
    conn.execute(
        dialect_insert(conn, clock_samples).on_conflict_do_nothing(),
        [
            {
                "kiosk_id": kiosk.kiosk_id,
                "boot_id": s.boot_id,
                "monotonic_ns": s.monotonic_ns,
                "device_time": to_utc_naive(s.device_time),
                "offset_s": s.offset_s,
                "rtt_s": s.rtt_s,
                "source": s.source,
                "received_at": now_utc,
            }
            for s in good
        ],
    )
    latest: dict[str, Anchor] = {}
    counts: dict[str, int] = defaultdict(int)
    for s in good:
        candidate = anchor_of(s)
        counts[s.boot_id] += 1
        if newer_anchor(latest.get(s.boot_id), candidate):
            latest[s.boot_id] = candidate
    current = anchors_of(conn, kiosk.kiosk_id, set(latest))
    corrected = 0
    for boot_id, anchor in sorted(latest.items()):
        values = {
            "anchor_mono_ns": anchor.mono_ns,
            "anchor_time": anchor.true_time,
            "anchor_offset_s": anchor.offset_s,
            "anchor_rtt_s": anchor.rtt_s,
            "anchor_source": anchor.source,
        }
        if boot_id not in current:
            conn.execute(
                dialect_insert(conn, boots).on_conflict_do_nothing(),
                {
                    "kiosk_id": kiosk.kiosk_id,
                    "boot_id": boot_id,
                    "first_seen_at": now_utc,
                    "samples": counts[boot_id],
                    **values,
                },
            )
        else:
            move = newer_anchor(current[boot_id], anchor)
            conn.execute(
                update(boots)
                .where(boots.c.kiosk_id == kiosk.kiosk_id, boots.c.boot_id == boot_id)
                .values(samples=boots.c.samples + counts[boot_id], **(values if move else {}))
            )
        corrected += _correct_boot(conn, kiosk, boot_id, anchor, now_utc, rules, tolerance)
    return corrected


def _correct_boot(
    conn: Connection,
    kiosk: KioskIdentity,
    boot_id: str,
    anchor: Anchor,
    now: datetime,
    rules: StayRules,
    tolerance: timedelta,
) -> int:
    """Place the boot's uncorrected records by `anchor`; the kiosk's anchor is checked against the
    centre's own measurement of the boot like any time claim, and badges are judged again for
    revocation at the records' new times (central/ingest/proofs.py)."""
    pending = conn.execute(
        select(
            events.c.event_id,
            events.c.seq,
            events.c.monotonic_ns,
            events.c.device_time,
            events.c.cadre_id,
            events.c.service_day,
            events.c.source,
            events.c.kind,
            events.c.badge_serial,
            events.c.flags,
            events.c.quarantine,
        ).where(
            events.c.kiosk_id == kiosk.kiosk_id,
            events.c.boot_id == boot_id,
            events.c.time_status == "uncorrected",
        )
    ).all()
    if not pending:
        return 0
    clock = boot_clocks(conn, kiosk.kiosk_id, {boot_id}).get(boot_id)
    rejudge = [
        r.cadre_id
        for r in pending
        if r.source in PROOF_SOURCES and r.kind != "void" and r.quarantine in (None, REVOKED)
    ]
    revocations = Revocations.load(conn, rejudge) if rejudge else None
    changes = []
    found: list[dict[str, Any]] = []
    newly_counted: list[str] = []
    keys: set[tuple[str, date]] = set()
    for row in pending:
        corrected_time, status = correct(row.device_time, row.monotonic_ns, False, anchor)
        placed: dict[str, Any] = {
            "event_id": row.event_id,
            "boot_id": boot_id,
            "cadre_id": row.cadre_id,
            "badge_serial": row.badge_serial,
            "monotonic_ns": row.monotonic_ns,
            "flags": row.flags,
            "corrected_time": corrected_time,
            "time_status": status,
            "service_day": rules.day.service_day(corrected_time),
        }
        verdicts = []
        claim = judge_time(placed, clock, tolerance, rules, received_at=now)
        if claim is not None:
            verdicts.append(claim)
        quarantine = row.quarantine
        if claim is not None and claim.quarantine:
            quarantine = claim.quarantine
        elif (
            revocations is not None
            and row.quarantine in (None, REVOKED)
            and (row.source in PROOF_SOURCES and row.kind != "void")
        ):
            revoked = revocation_verdict(revocations, placed, now)
            if revoked is not None and row.quarantine is None:
                verdicts.append(revoked)
            elif revoked is None and row.quarantine == REVOKED:
                newly_counted.append(row.event_id)
            quarantine = revoked.quarantine if revoked is not None else None
        found.extend(
            anomaly_row(
                v.anomaly,
                now,
                kiosk_id=kiosk.kiosk_id,
                site_id=kiosk.site_id,
                cadre_id=row.cadre_id,
                service_day=placed["service_day"],
                event_id=row.event_id,
                seq=row.seq,
                boot_id=boot_id,
                detail=f"seq {row.seq}: {v.detail}"[:2000],
            )
            for v in verdicts
        )
        changes.append(
            {
                "b_event_id": row.event_id,
                "b_time": placed["corrected_time"],
                "b_day": placed["service_day"],
                "b_status": placed["time_status"],
                "b_quarantine": quarantine,
            }
        )
        keys.add((row.cadre_id, row.service_day))
        keys.add((row.cadre_id, placed["service_day"]))
    conn.execute(
        update(events)
        .where(events.c.event_id == bindparam("b_event_id"))
        .values(
            corrected_time=bindparam("b_time"),
            service_day=bindparam("b_day"),
            time_status=bindparam("b_status"),
            quarantine=bindparam("b_quarantine"),
        ),
        changes,
    )
    if found:
        conn.execute(insert(anomalies), found)
    if newly_counted:
        # Read once the boot's time was known: before the revocation after all.
        conn.execute(
            update(anomalies)
            .where(
                anomalies.c.kind == PROOF_ANOMALY,
                anomalies.c.event_id.in_(newly_counted),
                anomalies.c.resolved_at.is_(None),
            )
            .values(resolved_at=now)
        )
    conn.execute(
        update(anomalies)
        .where(
            anomalies.c.kind == "uncorrected_time",
            anomalies.c.kiosk_id == kiosk.kiosk_id,
            anomalies.c.boot_id == boot_id,
            anomalies.c.resolved_at.is_(None),
        )
        .values(resolved_at=now)
    )
    recompute(conn, keys, rules, now)
    return len(changes)
