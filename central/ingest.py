"""What kiosks send the centre, and how it is taken in.

Every time in these tables is a naive datetime in UTC (SQLite has no time zone type, and one
convention on both stores keeps comparisons honest). `central.timefix.to_utc_naive` converts.
Pages turn them into local time with the `timezone` setting.

Events are stored idempotently on `event_id`. Each kiosk's hash chain is checked as events arrive;
gaps, forks and reused ids become rows of `anomalies`. Events that fail a check are not thrown
away: they go to `rejected_events` with the reason, so the kiosk may move on and staff can look.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import weakref
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import pydantic_core
from pydantic import ValidationError
from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    DateTime,
    Engine,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from central.db.schema import (
    anomalies,
    boots,
    clock_samples,
    events,
    kiosk_status,
    kiosks,
    rejected_events,
    stays_dirty,
)
from central.timefix import Anchor, anchor_of, correct, newer_anchor, to_utc_naive, usable
from sync.events import INT64_MAX, Event
from sync.protocol import ClockSample, EventResult, Heartbeat, PushAnswer, field_problems

if TYPE_CHECKING:
    from central.kiosks import KioskIdentity
    from central.stays import StayRules

# --- taking events in ------------------------------------------------------------------------

BODY_KEEP = 8192
CHUNK = 500
# psycopg caches the parsed form of statements up to 4096 bytes and 50 parameters.
PG_STATEMENT_CHARS = 4000
PG_STATEMENT_PARAMS = 50
_sqlite_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_sqlite_locks_guard = threading.Lock()


def dialect_insert(conn: Connection, table: Table) -> Any:
    """INSERT of the connection's dialect, which has on_conflict_do_nothing / _do_update."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction. On SQLite, writers of this process queue on a lock instead of
    polling the database lock (busy_timeout sleeps in steps of up to 100 ms)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _sqlite_locks_guard:
        lock = _sqlite_locks.setdefault(engine, threading.Lock())
    with lock, engine.begin() as conn:
        yield conn


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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


def _anchors(conn: Connection, kiosk_id: str, boot_ids: set[str]) -> dict[str, Anchor | None]:
    found: dict[str, Anchor | None] = {}
    if not boot_ids:
        return found
    for row in conn.execute(
        select(boots).where(boots.c.kiosk_id == kiosk_id, boots.c.boot_id.in_(sorted(boot_ids)))
    ):
        found[row.boot_id] = (
            Anchor(
                row.anchor_mono_ns,
                row.anchor_time,
                row.anchor_offset_s,
                row.anchor_rtt_s,
                row.anchor_source or "",
            )
            if row.anchor_mono_ns is not None
            else None
        )
    return found


def event_row(
    event: Event, anchor: Anchor | None, rules: StayRules, now: datetime, event_id: str = ""
) -> dict:
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
    }


def _anomaly(kind: str, now: datetime, **values: Any) -> dict[str, Any]:
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


@dataclass
class _Link:
    event_id: str
    hash: str
    prev_hash: str


def _check_chain(
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
    for chunk in _chunks(old_seqs):
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
            _anomaly(
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
        for row in conn.execute(
            select(events.c.seq, events.c.event_id, events.c.hash, events.c.prev_hash)
            .where(events.c.kiosk_id == kiosk.kiosk_id, events.c.seq > head.chain_seq)
            .order_by(events.c.seq)
        ):
            if row.event_id not in new_ids:
                by_seq[row.seq].append(_Link(row.event_id, row.hash, row.prev_hash))
    seq, link_hash = head.chain_seq, head.chain_hash
    while by_seq.get(seq + 1):
        candidates = by_seq[seq + 1]
        chosen = next((c for c in candidates if c.prev_hash == link_hash), None)
        if chosen is None:
            chosen = candidates[0]
            found.append(
                _anomaly(
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
                _anomaly(
                    "chain_gap",
                    now,
                    kiosk_id=kiosk.kiosk_id,
                    site_id=kiosk.site_id,
                    seq=seq + 1,
                    service_day=day_of.get(next_present),
                    detail=f"seq {missing} missing before seq {next_present}",
                )
            )
    if seq > head.chain_seq:
        conn.execute(
            update(anomalies)
            .where(
                anomalies.c.kind == "chain_gap",
                anomalies.c.kiosk_id == kiosk.kiosk_id,
                anomalies.c.seq <= seq,
                anomalies.c.resolved_at.is_(None),
            )
            .values(resolved_at=now)
        )
    return {"chain_seq": seq, "chain_hash": link_hash, "max_seq": max_seq}, found


def _flag_uncorrected(
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
        _anomaly(
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


def _sqlite_datetime(value: datetime) -> str:
    # SQLAlchemy's own SQLite storage format, so stored text sorts and compares the same.
    return value.isoformat(sep=" ", timespec="microseconds")


def _sqlite_converters(table: Table, columns: Sequence[str]) -> list[tuple[int, Any]]:
    """(position, converter) for the columns whose Python values SQLite cannot take as is."""
    fixes: list[tuple[int, Any]] = []
    for position, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, DateTime):
            fixes.append((position, _sqlite_datetime))
        elif isinstance(kind, Date):
            fixes.append((position, date.isoformat))
        elif isinstance(kind, Boolean):
            fixes.append((position, int))
    return fixes


def _insert_sql(conn: Connection, table: Table, columns: Sequence[str], tail: str = "") -> str:
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join(mark for _ in columns)
    return f'INSERT INTO "{table.name}" ({names}) VALUES ({marks}){tail}'


def bulk_insert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    ignore_conflicts: bool = False,
    tail: str = "",
) -> None:
    """Rows straight to the driver: the hot path of ingest and stays, where building each row
    through SQLAlchemy's compiler cost more than storing it. SQLite: one executemany.
    PostgreSQL: COPY for a plain insert, else multi-row INSERTs sent in one pipeline."""
    if not rows:
        return
    columns = list(rows[0])
    sql = _insert_sql(conn, table, columns, tail or (" ON CONFLICT DO NOTHING" * ignore_conflicts))
    values = itemgetter(*columns) if len(columns) > 1 else (lambda r: (r[columns[0]],))
    if conn.dialect.name != "sqlite":
        if not tail and not ignore_conflicts:
            _pg_copy(conn, table, columns, [values(r) for r in rows])
        else:
            _pg_bulk_insert(conn, sql, [values(r) for r in rows])
        return
    fixes = _sqlite_converters(table, columns)
    params = []
    for row in rows:
        line = list(values(row))
        for position, convert in fixes:
            if line[position] is not None:
                line[position] = convert(line[position])
        params.append(tuple(line))
    conn.exec_driver_sql(sql, params)


def _pg_copy(
    conn: Connection, table: Table, columns: Sequence[str], params: list[tuple[Any, ...]]
) -> None:
    """COPY on the transaction's own connection: PostgreSQL's fastest way in."""
    names = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in params:
            copy.write_row(row)


def _pg_bulk_insert(conn: Connection, sql: str, params: list[tuple[Any, ...]]) -> None:
    """Several rows per INSERT, and those INSERTs sent together (psycopg pipelines
    executemany): one statement per row costs PostgreSQL a parse-plan-execute each. Statements
    stay short enough for psycopg to cache their parsed form (it re-parses long ones)."""
    head, _, rest = sql.partition(" VALUES ")
    row_marks, _, tail = rest.partition(")")
    row_marks += ")"
    columns = row_marks.count("%s")
    per_statement = max(
        1,
        min(
            PG_STATEMENT_PARAMS // columns,
            (PG_STATEMENT_CHARS - len(head) - len(tail)) // (len(row_marks) + 2),
        ),
    )

    def statement(rows: int) -> str:
        return f"{head} VALUES {', '.join(row_marks for _ in range(rows))}{tail}"

    whole = len(params) - len(params) % per_statement
    if whole:
        grouped = [
            tuple(v for row in params[i : i + per_statement] for v in row)
            for i in range(0, whole, per_statement)
        ]
        conn.exec_driver_sql(statement(per_statement), grouped)
    if whole < len(params):
        rest_rows = params[whole:]
        conn.exec_driver_sql(statement(len(rest_rows)), tuple(v for r in rest_rows for v in r))


def mark_dirty(conn: Connection, keys: set[tuple[str, date]]) -> None:
    """Queue (cadre, service day) pairs for central.stays.refresh."""
    if not keys:
        return
    mark = secrets.randbits(62)
    bulk_insert(
        conn,
        stays_dirty,
        [{"cadre_id": c, "service_day": d, "mark": mark} for c, d in sorted(keys)],
        tail=' ON CONFLICT ("cadre_id", "service_day") DO UPDATE SET "mark" = excluded."mark"',
    )


def ingest_events(
    engine: Engine,
    kiosk: KioskIdentity,
    raw_events: Sequence[dict[str, Any]],
    now: datetime,
    rules: StayRules,
    defer_stays: bool = False,
) -> PushAnswer:
    """Check and store one pushed batch; answer for every event, in order.

    Idempotent on event_id: sending a batch again stores nothing twice. A bad event is answered
    "rejected" (and kept in rejected_events) without holding back the good ones. The stays of
    the cadres concerned are recomputed in the same transaction, or with `defer_stays` only
    queued for central.stays.refresh (the API does that, so a kiosk's answer never waits for
    pairing).
    """
    now_utc = to_utc_naive(now)
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

    found: list[dict[str, Any]] = []
    with write_transaction(engine) as conn:
        head = conn.execute(
            select(kiosks.c.chain_seq, kiosks.c.chain_hash, kiosks.c.max_seq)
            .where(kiosks.c.kiosk_id == kiosk.kiosk_id)
            .with_for_update()
        ).one()
        boot_ids = {event.boot_id for _, event in accepted.values()}
        anchors = _anchors(conn, kiosk.kiosk_id, boot_ids)
        new_boots = sorted(boot_ids - set(anchors))
        if new_boots:
            conn.execute(
                dialect_insert(conn, boots).on_conflict_do_nothing(),
                [
                    {"kiosk_id": kiosk.kiosk_id, "boot_id": b, "first_seen_at": now_utc}
                    for b in new_boots
                ],
            )
        # The kiosk's row is locked (or, on SQLite, every writer of this process waits), so
        # what is not stored yet cannot be stored by anyone else before this transaction ends:
        # the new rows go in with a plain INSERT (COPY on PostgreSQL). Only another kiosk
        # reusing these very event ids at the same instant could collide; that push then fails
        # whole and is sent again, and is answered by the conflict check below.
        stored_hash: dict[str, str] = {}
        for chunk in _chunks(list(accepted)):
            for row in conn.execute(
                select(events.c.event_id, events.c.hash).where(events.c.event_id.in_(chunk))
            ):
                stored_hash[row.event_id] = row.hash
        rows = [
            event_row(event, anchors.get(event.boot_id), rules, now_utc, key)
            for key, (_, event) in accepted.items()
            if key not in stored_hash
        ]
        bulk_insert(conn, events, rows)
        inserted = {r["event_id"] for r in rows}
        for key, (index, event) in accepted.items():
            if key in inserted:
                results[index] = EventResult(
                    index=index, event_id=key, seq=event.seq, status="stored"
                )
            elif stored_hash.get(key) == event.hash:
                results[index] = EventResult(
                    index=index, event_id=key, seq=event.seq, status="duplicate"
                )
            else:
                reason = "event_id already used by a different event"
                rejections.append(_Rejection(index, key, event.seq, reason, event.wire()))
                found.append(
                    _anomaly(
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
                _anomaly(
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
            chain_values, chain_found = _check_chain(conn, kiosk, head, new_rows, now_utc)
            found.extend(chain_found)
            found.extend(_flag_uncorrected(conn, kiosk, new_rows, now_utc))
        if found:
            conn.execute(insert(anomalies), found)
        keys = {(r["cadre_id"], r["service_day"]) for r in new_rows}
        targets = sorted({r["corrects"] for r in new_rows if r["corrects"]})
        for chunk in _chunks(targets):
            for row in conn.execute(
                select(events.c.cadre_id, events.c.service_day).where(events.c.event_id.in_(chunk))
            ):
                keys.add((row.cadre_id, row.service_day))
        if defer_stays:
            mark_dirty(conn, keys)
        else:
            from central import stays as stays_module  # stays imports this module's tables

            stays_module.recompute(conn, keys, rules, now_utc)
        conn.execute(
            update(kiosks)
            .where(kiosks.c.kiosk_id == kiosk.kiosk_id)
            .values(last_push_at=now_utc, **chain_values)
        )

    final = [r for r in results if r is not None]
    assert len(final) == len(raw_events)
    return PushAnswer(
        server_time=now,
        results=final,
        stored=sum(r.status == "stored" for r in final),
        duplicates=sum(r.status == "duplicate" for r in final),
        rejected=sum(r.status == "rejected" for r in final),
    )


# --- heartbeats and clocks -------------------------------------------------------------------


def apply_clock_samples(
    conn: Connection,
    kiosk: KioskIdentity,
    samples: Sequence[ClockSample],
    now: datetime,
    rules: StayRules,
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
    current = _anchors(conn, kiosk.kiosk_id, set(latest))
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
        corrected += _correct_boot(conn, kiosk, boot_id, anchor, now_utc, rules)
    return corrected


def _correct_boot(
    conn: Connection,
    kiosk: KioskIdentity,
    boot_id: str,
    anchor: Anchor,
    now: datetime,
    rules: StayRules,
) -> int:
    pending = conn.execute(
        select(
            events.c.event_id,
            events.c.monotonic_ns,
            events.c.device_time,
            events.c.cadre_id,
            events.c.service_day,
        ).where(
            events.c.kiosk_id == kiosk.kiosk_id,
            events.c.boot_id == boot_id,
            events.c.time_status == "uncorrected",
        )
    ).all()
    if not pending:
        return 0
    changes = []
    keys: set[tuple[str, date]] = set()
    for row in pending:
        corrected_time, status = correct(row.device_time, row.monotonic_ns, False, anchor)
        day = rules.day.service_day(corrected_time)
        changes.append(
            {"b_event_id": row.event_id, "b_time": corrected_time, "b_day": day, "b_status": status}
        )
        keys.add((row.cadre_id, row.service_day))
        keys.add((row.cadre_id, day))
    conn.execute(
        update(events)
        .where(events.c.event_id == bindparam("b_event_id"))
        .values(
            corrected_time=bindparam("b_time"),
            service_day=bindparam("b_day"),
            time_status=bindparam("b_status"),
        ),
        changes,
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
    from central import stays as stays_module  # stays imports this module's tables

    stays_module.recompute(conn, keys, rules, now)
    return len(changes)


def record_heartbeat(
    engine: Engine, kiosk: KioskIdentity, beat: Heartbeat, now: datetime, rules: StayRules
) -> None:
    """Keep the kiosk's latest heartbeat and take in the clock samples it carries."""
    now_utc = to_utc_naive(now)
    values = {
        "received_at": now_utc,
        "app_version": beat.app_version,
        "queue_length": beat.queue_length,
        "last_scan_at": to_utc_naive(beat.last_scan_at) if beat.last_scan_at else None,
        "camera_ok": beat.camera.ok,
        "camera_detail": beat.camera.detail,
        "clock_trusted": beat.clock.trusted,
        "clock_offset_s": beat.clock.offset_s,
        "boot_id": beat.clock.boot_id,
        "disk_free_bytes": beat.disk_free_bytes,
        "ready": beat.ready,
        "ready_detail": beat.ready_detail,
        "report": beat.model_dump_json(),
    }
    with write_transaction(engine) as conn:
        statement = dialect_insert(conn, kiosk_status).values(kiosk_id=kiosk.kiosk_id, **values)
        conn.execute(statement.on_conflict_do_update(index_elements=["kiosk_id"], set_=values))
        apply_clock_samples(conn, kiosk, beat.clock.samples, now, rules)
