"""A kiosk's push: every event checked, the new ones stored, an answer for each.

Events are stored idempotently on `event_id`. Each kiosk's hash chain is checked as events arrive
(central/ingest/chain.py); gaps, forks and reused ids become rows of `anomalies`. Events that fail
a check are not thrown away: those that are not well-formed records of the sending kiosk go to
`rejected_events` with the reason, so the kiosk may move on and staff can look. Well-formed
records that do not count (no valid badge proof, a correction of another kiosk's record, a time
claim that cannot hold: central/ingest/proofs.py, timeclaims.py) are stored in the kiosk's chain
with `quarantine` set, and raise an anomaly each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pydantic_core
from pydantic import ValidationError
from sqlalchemy import Connection, Engine, Row, and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from central.anomalies import anomaly_row
from central.db.bulk import CHUNK, bulk_insert, chunks, dialect_insert, write_transaction
from central.db.engine import reading
from central.db.schema import anomalies, boots, events, kiosks, rejected_events
from central.ingest.chain import check_chain
from central.ingest.clocks import flag_uncorrected
from central.ingest.proofs import (
    ANY_REVOKED,
    BadgeProofs,
    Revocations,
    Verdict,
    lane_verdicts,
    needs_proof,
    remember_badges,
    revocation_verdict,
    signature_verdicts,
)
from central.ingest.timeclaims import (
    CLOCK_COLUMNS,
    DEFAULT_TIME_TOLERANCE,
    LATEST_MEASURED,
    BootClock,
    boot_clocks,
    clock_of,
    floor_of,
    judge_time,
    kiosk_floor,
    note_contact,
    raises_floor,
)
from central.kiosks import KioskIdentity
from central.stays.pairing import StayRules
from central.stays.store import mark_dirty, recompute
from central.timefix import Anchor, correct, to_utc_naive
from sync.badge_token import BadgeCheck
from sync.events import INT64_MAX, Event
from sync.protocol import ClockReading, EventResult, PushAnswer, field_problems

BODY_KEEP = 8192


@dataclass(frozen=True)
class Checks:
    """What judges whether stored records count: the badge keys, and how far a record's time may
    stray from the centre's own measurement of its boot's clock."""

    proofs: BadgeProofs
    time_tolerance: timedelta = DEFAULT_TIME_TOLERANCE


@dataclass
class _Rejection:
    index: int
    event_id: str | None
    seq: int | None
    reason: str
    raw: dict[str, Any]

    def __post_init__(self) -> None:
        # What a kiosk sent is kept for staff, but PostgreSQL text holds no NUL character
        # (a reason names the fields, keys included, of what was sent).
        self.reason = self.reason.replace("\x00", "\ufffd")
        if self.event_id is not None:
            self.event_id = self.event_id.replace("\x00", "\ufffd")


def _identity_of(raw: dict[str, Any]) -> tuple[str | None, int | None]:
    event_id = raw.get("event_id")
    seq = raw.get("seq")
    return (
        # A UUID's 36 characters: the anomaly naming the rejection keeps no more (PostgreSQL
        # refuses a longer value where SQLite stores it); the whole body is kept apart.
        str(event_id)[:36] if isinstance(event_id, str) else None,
        # Kept for staff to see only when the column can hold it (a rejected seq may be huge).
        seq
        if isinstance(seq, int) and not isinstance(seq, bool) and -INT64_MAX <= seq <= INT64_MAX
        else None,
    )


def check_event(raw: dict[str, Any], kiosk: KioskIdentity) -> tuple[Event | None, str | None]:
    """(event, None) when it may be stored; (None or event, reason) when it is refused."""
    try:
        event = Event.model_validate(raw)
    except ValidationError as exc:
        return None, "; ".join(f"{p.field}: {p.reason}" for p in field_problems(exc))
    except ValueError as exc:  # model_post_init's own checks
        return None, str(exc)
    if event.kiosk_id != kiosk.kiosk_id:
        return event, f"kiosk_id {event.kiosk_id!r} is not the sending kiosk {kiosk.kiosk_id!r}"
    if event.site_id != kiosk.site_id:
        return event, f"site_id {event.site_id!r} is not this kiosk's site {kiosk.site_id!r}"
    if not _hash_matches(event):
        return event, "hash does not match the event's fields (altered or damaged)"
    return event, None


def _hash_matches(event: Event) -> bool:
    """event.hash_is_valid(), quicker: pydantic's JSON writer gives the same canonical bytes
    for these fields as sync.events' json.dumps, in a third of the time. Only a match is taken
    from it; a mismatch is judged by the reference."""
    wire = event.wire()
    claimed = wire.pop("hash")
    quick = hashlib.sha256(pydantic_core.to_json({k: wire[k] for k in sorted(wire)})).hexdigest()
    return quick == claimed or event.hash_is_valid()


def event_row(
    event: Event, anchor: Anchor | None, rules: StayRules, now: datetime, event_id: str = ""
) -> dict[str, Any]:
    device = to_utc_naive(event.device_time)
    offset = event.device_time.utcoffset()
    corrected, status = correct(device, event.monotonic_ns, event.clock_trusted, anchor)
    return {
        "event_id": event_id or str(event.event_id),
        "kiosk_id": event.kiosk_id,
        "site_id": event.site_id,
        "seq": event.seq,
        "cadre_id": event.cadre_id,
        "badge_serial": event.badge_serial,
        "kind": event.kind,
        "source": event.source,
        "device_time": device,
        "device_utc_offset_min": int(offset.total_seconds() // 60) if offset else 0,
        "boot_id": event.boot_id,
        "monotonic_ns": event.monotonic_ns,
        "clock_trusted": event.clock_trusted,
        "operator": event.operator,
        "reason": event.reason,
        "corrects": str(event.corrects) if event.corrects else None,
        "flags": json.dumps(event.flags, ensure_ascii=False) if event.flags else "[]",
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "corrected_time": corrected,
        "time_status": status,
        "service_day": rules.day.service_day(corrected),
        "received_at": now,
        "badge_token": event.badge_token,
        "quarantine": None,
        "photo_sha256": event.photo_sha256,
    }


class KioskGone(Exception):
    """The kiosk's row no longer holds the token the push came with (revoked, or enrolled again
    since the caller looked the token up): nothing was stored."""


# Built once: every push runs them (building a statement and its cache key cost the centre more
# CPU than running it; bench/dawn.py). The opening statement locks the kiosk's row and reads in
# one round trip what the push's checks need of the stored state: the chain's head, the batch's
# boots, the latest measured record before the batch (the time floor) and whether any of its
# cadres was ever revoked. At dawn each push carries one record and its round trips, not its
# work, held the centre's threads (bench/dawn.py).
#
# On PostgreSQL a statement that waited for the row's lock returns the row as the other push left
# it, but what it read beside it (the boots, the subqueries) as it was before that push
# committed. `seen_push_at` is the row as the statement first saw it: when it differs from the
# locked row's `last_push_at`, another push of this kiosk went in between, and those are read
# again (tests/sync/test_ingest.py).
_KIOSK_AS_SEEN = kiosks.alias("kiosk_as_seen")
_OPENING = (
    select(
        kiosks.c.chain_seq,
        kiosks.c.chain_hash,
        kiosks.c.max_seq,
        kiosks.c.enrolled_at,
        kiosks.c.site_id,
        kiosks.c.token_hash,
        kiosks.c.last_push_at,
        select(_KIOSK_AS_SEEN.c.last_push_at)
        .where(_KIOSK_AS_SEEN.c.kiosk_id == bindparam("kiosk_id"))
        .scalar_subquery()
        .label("seen_push_at"),
        LATEST_MEASURED.scalar_subquery().label("latest_measured"),
        ANY_REVOKED.label("any_revoked"),
        *CLOCK_COLUMNS,
    )
    .select_from(
        kiosks.outerjoin(
            boots,
            and_(
                boots.c.kiosk_id == kiosks.c.kiosk_id,
                boots.c.boot_id.in_(bindparam("boot_ids", expanding=True)),
            ),
        )
    )
    .where(kiosks.c.kiosk_id == bindparam("kiosk_id"))
    .with_for_update(of=kiosks)
)
_STORED_HASHES = select(events.c.event_id, events.c.hash).where(
    events.c.event_id.in_(bindparam("event_ids", expanding=True))
)


@dataclass(frozen=True)
class _Opening:
    head: Row[Any]  # the opening statement's first row
    clocks: dict[str, BootClock]
    any_revoked: bool
    first_seq: int  # the batch's lowest seq
    floor_read: bool  # head.latest_measured is that of the records before first_seq


def ingest_events(
    engine: Engine,
    kiosk: KioskIdentity,
    raw_events: Sequence[dict[str, Any]],
    now: datetime,
    rules: StayRules,
    defer_stays: bool = False,
    *,
    checks: Checks,
    contact: ClockReading | None = None,
    token_hash: str | None = None,
) -> PushAnswer:
    """Check and store one pushed batch; answer for every event, in order.

    Idempotent on event_id: sending a batch again stores nothing twice. A bad event is answered
    "rejected" (and kept in rejected_events) without holding back the good ones; a record that is
    stored but does not count is answered "stored" with the reason. The stays of the cadres
    concerned are recomputed in the same transaction, or with `defer_stays` only queued for
    central.stays.store.refresh (the API does that, so a kiosk's answer never waits for
    pairing). `contact`: the sending boot's clocks as the request left (X-Kiosk-Clock), met
    with `now`, the centre's time as it arrived. `token_hash`: the push's token, confirmed
    under the kiosk row's lock (KioskGone when the row no longer holds it), so a caller may
    take the kiosk's identity from a cache.
    """
    results: list[EventResult | None] = [None] * len(raw_events)
    rejections: list[_Rejection] = []
    accepted: dict[str, tuple[int, Event]] = {}
    for index, raw in enumerate(raw_events):
        event, reason = check_event(raw, kiosk)
        if reason is not None:
            event_id, seq = _identity_of(raw)
            rejections.append(_Rejection(index, event_id, seq, reason, dict(raw)))
            continue
        assert event is not None
        key = str(event.event_id)
        earlier = accepted.get(key)
        if earlier is not None:
            if earlier[1].hash == event.hash:
                results[index] = EventResult(
                    index=index, event_id=key, seq=event.seq, status="duplicate"
                )
            else:
                rejections.append(
                    _Rejection(index, key, event.seq, "event_id twice in one batch", dict(raw))
                )
            continue
        accepted[key] = (index, event)
    # Signatures depend on nothing being written: checked before the write transaction, so
    # other kiosks' pushes do not wait for them.
    signed, verified = signature_verdicts(
        lambda: reading(engine), (event for _, event in accepted.values()), checks.proofs
    )
    store = _Store(kiosk, raw_events, accepted, signed, verified, now, rules, checks, contact)
    try:
        return store.run(engine, results, rejections, defer_stays, token_hash, look_up_all=False)
    except IntegrityError:
        # An event id of this batch is stored already though its seq is new to this kiosk
        # (another kiosk used it, or this one sent it again under a new seq): the batch once
        # more, every id looked up, so the conflict is answered and kept instead of failing
        # the push whole each time the kiosk sends it.
        return store.run(engine, results, rejections, defer_stays, token_hash, look_up_all=True)


@dataclass
class _Store:
    """The write transaction of one checked batch; `run` may be called again after it failed
    (its lists are copied, not changed)."""

    kiosk: KioskIdentity
    raw_events: Sequence[dict[str, Any]]
    accepted: dict[str, tuple[int, Event]]
    signed: dict[str, Verdict | BadgeCheck]  # signature_verdicts
    verified: list[tuple[str, BadgeCheck]]  # tokens verified for the first time
    now: datetime
    rules: StayRules
    checks: Checks
    contact: ClockReading | None

    def _open(self, conn: Connection, token_hash: str | None, boot_ids: set[str]) -> _Opening:
        kiosk, accepted = self.kiosk, self.accepted
        before_seq = min((event.seq for _, event in accepted.values()), default=0)
        cadre_ids = sorted(
            {
                event.cadre_id
                for key, (_, event) in accepted.items()
                if needs_proof(event) and not isinstance(self.signed.get(key), Verdict)
            }
        )
        rows = conn.execute(
            _OPENING,
            {
                "kiosk_id": kiosk.kiosk_id,
                "boot_ids": sorted(boot_ids),
                "before_seq": before_seq,
                "revoked_cadre_ids": cadre_ids if len(cadre_ids) <= CHUNK else [],
            },
        ).all()
        if not rows:
            raise KioskGone(kiosk.kiosk_id)
        head = rows[0]
        if token_hash is not None and (
            head.token_hash != token_hash or head.site_id != kiosk.site_id
        ):
            raise KioskGone(kiosk.kiosk_id)
        if head.seen_push_at != head.last_push_at:
            # Another push of this kiosk committed while this one waited for the lock.
            return _Opening(
                head=head,
                clocks=boot_clocks(conn, kiosk.kiosk_id, boot_ids),
                any_revoked=True,
                first_seq=before_seq,
                floor_read=False,
            )
        return _Opening(
            head=head,
            clocks={row.boot_id: clock_of(row) for row in rows if row.boot_id is not None},
            any_revoked=bool(head.any_revoked) or len(cadre_ids) > CHUNK,
            first_seq=before_seq,
            floor_read=True,
        )

    def run(
        self,
        engine: Engine,
        results_so_far: list[EventResult | None],
        rejections_so_far: list[_Rejection],
        defer_stays: bool,
        token_hash: str | None,
        look_up_all: bool,
    ) -> PushAnswer:
        kiosk, accepted, rules, signed = self.kiosk, self.accepted, self.rules, self.signed
        now_utc = to_utc_naive(self.now)
        boot_ids = {event.boot_id for _, event in accepted.values()}
        results = list(results_so_far)
        rejections = list(rejections_so_far)
        found: list[dict[str, Any]] = []
        not_counted: dict[str, str] = {}
        with write_transaction(engine) as conn:
            opening = self._open(conn, token_hash, boot_ids)
            head, clocks = opening.head, opening.clocks
            new_boots = sorted(boot_ids - set(clocks))
            if new_boots:
                conn.execute(
                    dialect_insert(conn, boots).on_conflict_do_nothing(),
                    [
                        {"kiosk_id": kiosk.kiosk_id, "boot_id": b, "first_seen_at": now_utc}
                        for b in new_boots
                    ],
                )
                clocks.update({b: BootClock() for b in new_boots})
            if self.contact is not None:
                note_contact(conn, kiosk.kiosk_id, clocks, self.contact, now_utc)
            if self.verified:
                remember_badges(conn, self.verified)
            # The kiosk's row is locked (or, on SQLite, every writer of this process waits), so
            # what is not stored yet cannot be stored by anyone else before this transaction
            # ends: the new rows go in with a plain INSERT (COPY on PostgreSQL). A batch whose
            # seqs are all new to the kiosk is not looked up first: its ids can only be stored
            # already if another kiosk used them, and the INSERT then fails (see the caller).
            stored_hash: dict[str, str] = {}
            if look_up_all or opening.first_seq <= head.max_seq:
                for chunk in chunks(list(accepted)):
                    for row in conn.execute(_STORED_HASHES, {"event_ids": list(chunk)}):
                        stored_hash[row.event_id] = row.hash
            rows = [
                event_row(event, clocks[event.boot_id].anchor, rules, now_utc, key)
                for key, (_, event) in accepted.items()
                if key not in stored_hash
            ]
            judged = _judge(
                conn, kiosk, rows, accepted, signed, clocks, self.checks, rules, now_utc, opening
            )
            for verdict, judged_row in judged:
                if verdict.quarantine:
                    judged_row["quarantine"] = verdict.quarantine
                    not_counted[judged_row["event_id"]] = verdict.detail
                found.append(_anomaly_of(verdict.anomaly, judged_row, verdict.detail, now_utc))
            found.extend(
                # One face showed another cadre's badge just before (kiosk/holders.py).
                _anomaly_of("several_badges", new_row, "several badges", now_utc)
                for new_row in rows
                if '"several_badges"' in new_row["flags"]
            )
            bulk_insert(conn, events, rows)
            inserted = {r["event_id"] for r in rows}
            for key, (index, event) in accepted.items():
                if key in inserted:
                    results[index] = EventResult(
                        index=index,
                        event_id=key,
                        seq=event.seq,
                        status="stored",
                        reason=f"kept, not counted: {not_counted[key]}"[:2000]
                        if key in not_counted
                        else None,
                    )
                elif stored_hash.get(key) == event.hash:
                    results[index] = EventResult(
                        index=index, event_id=key, seq=event.seq, status="duplicate"
                    )
                else:
                    reason = "event_id already used by a different event"
                    rejections.append(_Rejection(index, key, event.seq, reason, event.wire()))
                    found.append(
                        anomaly_row(
                            "event_conflict",
                            now_utc,
                            kiosk_id=kiosk.kiosk_id,
                            site_id=kiosk.site_id,
                            event_id=key,
                            seq=event.seq,
                            detail=f"seq {event.seq}: {reason}",
                        )
                    )
            for rejection in rejections:
                results[rejection.index] = EventResult(
                    index=rejection.index,
                    event_id=rejection.event_id,
                    seq=rejection.seq,
                    status="rejected",
                    reason=rejection.reason,
                )
            if rejections:
                conn.execute(
                    insert(rejected_events),
                    [
                        {
                            "kiosk_id": kiosk.kiosk_id,
                            "received_at": now_utc,
                            "event_id": r.event_id,
                            "seq": r.seq,
                            "reason": r.reason,
                            "body": json.dumps(r.raw, ensure_ascii=False, default=str)[:BODY_KEEP],
                        }
                        for r in rejections
                    ],
                )
                found.extend(
                    anomaly_row(
                        "rejected_event",
                        now_utc,
                        kiosk_id=kiosk.kiosk_id,
                        site_id=kiosk.site_id,
                        event_id=r.event_id,
                        seq=r.seq,
                        detail=f"seq {r.seq}: {r.reason}"[:2000],
                    )
                    for r in rejections
                    if r.reason != "event_id already used by a different event"
                )

            new_rows = [r for r in rows if r["event_id"] in inserted]
            chain_values: dict[str, Any] = {}
            if new_rows:
                chain_values, chain_found = check_chain(conn, kiosk, head, new_rows, now_utc)
                found.extend(chain_found)
                found.extend(flag_uncorrected(conn, kiosk, new_rows, now_utc))
            if found:
                conn.execute(insert(anomalies), found)
            keys = {(r["cadre_id"], r["service_day"]) for r in new_rows}
            targets = sorted({r["corrects"] for r in new_rows if r["corrects"]})
            for chunk in chunks(targets):
                for row in conn.execute(
                    select(events.c.cadre_id, events.c.service_day).where(
                        events.c.event_id.in_(chunk)
                    )
                ):
                    keys.add((row.cadre_id, row.service_day))
            if defer_stays:
                mark_dirty(conn, keys)
            else:
                recompute(conn, keys, rules, now_utc)
            conn.execute(
                update(kiosks)
                .where(kiosks.c.kiosk_id == kiosk.kiosk_id)
                .values(last_push_at=now_utc, **chain_values)
            )

        final = [r for r in results if r is not None]
        assert len(final) == len(self.raw_events)
        return PushAnswer(
            server_time=self.now,
            results=final,
            stored=sum(r.status == "stored" for r in final),
            duplicates=sum(r.status == "duplicate" for r in final),
            rejected=sum(r.status == "rejected" for r in final),
        )


def _anomaly_of(kind: str, row: dict[str, Any], detail: str, now: datetime) -> dict[str, Any]:
    """An anomaly about one new events row."""
    return anomaly_row(
        kind,
        now,
        kiosk_id=row["kiosk_id"],
        site_id=row["site_id"],
        cadre_id=row["cadre_id"],
        service_day=row["service_day"],
        event_id=row["event_id"],
        seq=row["seq"],
        boot_id=row["boot_id"],
        detail=f"seq {row['seq']}: {detail}"[:2000],
    )


def _judge(
    conn: Any,
    kiosk: KioskIdentity,
    rows: list[dict[str, Any]],
    accepted: dict[str, tuple[int, Event]],
    signed: dict[str, Verdict | BadgeCheck],
    clocks: dict[str, BootClock],
    checks: Checks,
    rules: StayRules,
    now: datetime,
    opening: _Opening,
) -> list[tuple[Verdict, dict[str, Any]]]:
    """Every reason the new rows do not count, or count with a flag, in seq order: the time
    claim first (it may move the record, and revocation is judged at the record's time), then
    the badge proof, then the correction's lane. A record quarantined once is not judged on."""
    found: list[tuple[Verdict, dict[str, Any]]] = []
    in_order = sorted(rows, key=lambda r: r["seq"])
    floor = None
    if rows:
        first_seq, enrolled_at = in_order[0]["seq"], opening.head.enrolled_at
        floor = (
            floor_of(enrolled_at, opening.head.latest_measured)
            if opening.floor_read and first_seq == opening.first_seq
            else kiosk_floor(conn, kiosk.kiosk_id, enrolled_at, first_seq)
        )
    for row in in_order:
        verdict = judge_time(
            row, clocks.get(row["boot_id"]), checks.time_tolerance, rules, floor, now
        )
        if verdict is not None:
            found.append((verdict, row))
        if (verdict is None or not verdict.quarantine) and raises_floor(
            row, clocks.get(row["boot_id"])
        ):
            floor = row["corrected_time"] if floor is None else max(floor, row["corrected_time"])
    quarantined = {id(r) for v, r in found if v.quarantine}
    proven = [
        r for r in rows if id(r) not in quarantined and needs_proof(accepted[r["event_id"]][1])
    ]
    to_look_up = {r["cadre_id"] for r in proven if not isinstance(signed[r["event_id"]], Verdict)}
    revocations = None
    if to_look_up:
        revocations = (
            Revocations.load(conn, to_look_up) if opening.any_revoked else Revocations.none()
        )
    for row in proven:
        proof = signed[row["event_id"]]
        judged: Verdict | None
        if isinstance(proof, Verdict):
            judged = proof
        else:
            assert revocations is not None
            judged = revocation_verdict(revocations, row, now)
        if judged is not None:
            found.append((judged, row))
            quarantined.add(id(row))
    lanes = lane_verdicts(conn, kiosk.kiosk_id, rows)
    found.extend(
        (lanes[r["event_id"]], r)
        for r in rows
        if r["event_id"] in lanes and id(r) not in quarantined
    )
    found.sort(key=lambda pair: pair[1]["seq"])
    return found
