"""Each kiosk's hash chain, walked forward as its events arrive.

Every event names the hash of the one before it (sync/events.py). The kiosk row keeps the verified
head (`chain_seq`, `chain_hash`) and the highest seq seen (`max_seq`); what does not link becomes
an anomaly: a fork (two different events with one seq, or a prev_hash that is not the hash before
it) or a gap (seqs missing below what has arrived; resolved once they come).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, bindparam, select, update

from central.anomalies import anomaly_row
from central.db.bulk import chunks
from central.db.schema import anomalies, events
from central.kiosks import KioskIdentity


@dataclass
class _Link:
    event_id: str
    hash: str
    prev_hash: str


# Built once: every push that moves the chain forward runs it.
_RESOLVE_GAPS = (
    update(anomalies)
    .where(
        anomalies.c.kind == "chain_gap",
        anomalies.c.kiosk_id == bindparam("gap_kiosk_id"),
        anomalies.c.seq <= bindparam("through_seq"),
        anomalies.c.resolved_at.is_(None),
    )
    .values(resolved_at=bindparam("now", type_=DateTime()))
)


def check_chain(
    conn: Connection,
    kiosk: KioskIdentity,
    head: Any,
    new_rows: list[dict[str, Any]],
    now: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Walk the kiosk's hash chain forward over what was just stored.

    Returns the kiosk row's new chain values and anomaly rows: a fork (two different events with
    one seq, or an event whose prev_hash is not the hash of the event before it) or a gap (seqs
    missing below what has arrived; resolved once they come).
    """
    found: list[dict[str, Any]] = []
    new_rows = sorted(new_rows, key=lambda r: r["seq"])
    new_ids = {r["event_id"] for r in new_rows}
    day_of = {r["seq"]: r["service_day"] for r in new_rows}
    old_seqs = sorted({r["seq"] for r in new_rows if r["seq"] <= head.max_seq})
    clashes: dict[int, list[str]] = defaultdict(list)
    for chunk in chunks(old_seqs):
        for row in conn.execute(
            select(events.c.seq, events.c.event_id).where(
                events.c.kiosk_id == kiosk.kiosk_id, events.c.seq.in_(chunk)
            )
        ):
            if row.event_id not in new_ids:
                clashes[row.seq].append(row.event_id)
    by_seq: dict[int, list[_Link]] = defaultdict(list)
    for r in new_rows:
        if by_seq[r["seq"]]:
            clashes[r["seq"]].append(by_seq[r["seq"]][0].event_id)
        by_seq[r["seq"]].append(_Link(r["event_id"], r["hash"], r["prev_hash"]))
    for seq, others in sorted(clashes.items()):
        mine = [link.event_id for link in by_seq[seq] if link.event_id not in others]
        found.append(
            anomaly_row(
                "chain_fork",
                now,
                kiosk_id=kiosk.kiosk_id,
                site_id=kiosk.site_id,
                seq=seq,
                event_id=mine[0] if mine else None,
                service_day=day_of.get(seq),
                detail=f"two different events with seq {seq}: "
                + ", ".join(sorted(set(others) | set(mine))),
            )
        )
    if head.chain_seq < head.max_seq:
        # Events after a gap were stored earlier without being walked: walk them now too.
        for stored in conn.execute(
            select(events.c.seq, events.c.event_id, events.c.hash, events.c.prev_hash)
            .where(events.c.kiosk_id == kiosk.kiosk_id, events.c.seq > head.chain_seq)
            .order_by(events.c.seq)
        ):
            if stored.event_id not in new_ids:
                by_seq[stored.seq].append(_Link(stored.event_id, stored.hash, stored.prev_hash))
    seq, link_hash = head.chain_seq, head.chain_hash
    while by_seq.get(seq + 1):
        candidates = by_seq[seq + 1]
        chosen = next((c for c in candidates if c.prev_hash == link_hash), None)
        if chosen is None:
            chosen = candidates[0]
            found.append(
                anomaly_row(
                    "chain_fork",
                    now,
                    kiosk_id=kiosk.kiosk_id,
                    site_id=kiosk.site_id,
                    seq=seq + 1,
                    event_id=chosen.event_id,
                    service_day=day_of.get(seq + 1),
                    detail=f"seq {seq + 1} does not follow seq {seq}: its prev_hash "
                    f"{chosen.prev_hash[:12]}… is not {link_hash[:12]}…",
                )
            )
        seq, link_hash = seq + 1, chosen.hash
    max_seq = max([head.max_seq, *(r["seq"] for r in new_rows)])
    if max_seq > seq:
        next_present = min(s for s in by_seq if s > seq and by_seq[s])
        already = conn.execute(
            select(anomalies.c.anomaly_id).where(
                anomalies.c.kind == "chain_gap",
                anomalies.c.kiosk_id == kiosk.kiosk_id,
                anomalies.c.seq == seq + 1,
                anomalies.c.resolved_at.is_(None),
            )
        ).first()
        if already is None:
            missing = f"{seq + 1}" if next_present == seq + 2 else f"{seq + 1}-{next_present - 1}"
            found.append(
                anomaly_row(
                    "chain_gap",
                    now,
                    kiosk_id=kiosk.kiosk_id,
                    site_id=kiosk.site_id,
                    seq=seq + 1,
                    service_day=day_of.get(next_present),
                    detail=f"seq {missing} missing before seq {next_present}",
                )
            )
    if seq > head.chain_seq and head.max_seq > head.chain_seq:
        # Only a head behind max_seq can have gaps open: each was made above the head, and
        # the push that moved the head past it resolved it (a push in order skips this).
        conn.execute(
            _RESOLVE_GAPS, {"gap_kiosk_id": kiosk.kiosk_id, "through_seq": seq, "now": now}
        )
    return {"chain_seq": seq, "chain_hash": link_hash, "max_seq": max_seq}, found
