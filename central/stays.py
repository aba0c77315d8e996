"""Stays: the centre pairs every kiosk's records of a cadre into arrival-departure pairs.

Two kiosks at one site work offline from each other, so a cadre may arrive at one and leave at
the other, and each kiosk's "arrival"/"departure" is only its guess from what it saw. The centre
sees everything, so it decides again, per cadre and service day, over the records of all kiosks
of a site ordered by corrected time, with the kiosks' own rule:

- a camera or wedge scan toggles: it is a departure when an arrival is open and less than
  `longest_shift` old, else an arrival (an older open arrival is closed as "no departure");
- a scan less than `repeat_window` after the last counted one (at any kiosk of the site) is a
  repeat and changes nothing (a cadre who scanned at both kiosks);
- manual entries, kiosk corrections and staff corrections say what they are and are taken as said.

Voided and replaced records are left out first: a kiosk's void or replacement (an event whose
`corrects` names another), then staff corrections (central/corrections.py). Where the centre's
reading differs from the kiosk's guess, the stay is flagged `kiosk_disagrees` and an anomaly says
which record and what each side made of it: shown, not hidden.

Stays are kept in the `stays` table and recomputed for the (cadre, day) pairs an ingest, a clock
correction or a staff correction touches, so a page never pairs a million events itself.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    delete,
    distinct,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)

from central import corrections as staff_corrections
from central.db.bulk import bulk_insert, chunks, write_transaction
from central.db.schema import (
    anomalies,
    cadres,
    corrections,
    events,
    kiosk_status,
    kiosks,
    sites,
    stays,
    stays_dirty,
)
from central.timefix import DayRule, to_utc_naive

# Anomaly kinds the stays computation owns (rewritten whenever a (cadre, day) is recomputed).
STAY_ANOMALIES = ("two_sites", "no_arrival", "no_departure", "overlong_stay", "kiosk_disagrees")
EXPLICIT_SOURCES = frozenset({"manual", staff_corrections.STAFF_SOURCE})
# Key of the PostgreSQL advisory lock that serialises stay recomputation (any constant will do).
PG_STAYS_LOCK = 0x5741_5953


@dataclass(frozen=True)
class StayRules:
    day: DayRule
    repeat_window: timedelta
    longest_shift: timedelta
    overlong: timedelta

    @classmethod
    def from_settings(cls, settings: Any) -> StayRules:
        """From CentralSettings (timezone, service_day_start, repeat_window_s, ...)."""
        return cls(
            DayRule.of(settings.timezone, settings.service_day_start),
            timedelta(seconds=settings.repeat_window_s),
            timedelta(hours=settings.longest_shift_h),
            timedelta(hours=settings.overlong_stay_h),
        )


@dataclass
class Stay:
    cadre_id: str
    site_id: str
    service_day: date
    arrival: dict[str, Any] | None = None  # the record that opened it
    departure: dict[str, Any] | None = None
    state: str = "open"  # open | closed | no_departure | no_arrival
    flags: list[str] = field(default_factory=list)

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags.append(name)

    def row(self) -> dict[str, Any]:
        arrival_time = self.arrival["corrected_time"] if self.arrival else None
        departure_time = self.departure["corrected_time"] if self.departure else None
        duration = None
        if arrival_time is not None and departure_time is not None:
            duration = int((departure_time - arrival_time).total_seconds())
        return {
            "cadre_id": self.cadre_id,
            "site_id": self.site_id,
            "service_day": self.service_day,
            "arrival_time": arrival_time,
            "departure_time": departure_time,
            "arrival_event_id": self.arrival["event_id"] if self.arrival else None,
            "departure_event_id": self.departure["event_id"] if self.departure else None,
            "arrival_kiosk_id": self.arrival.get("kiosk_id") if self.arrival else None,
            "departure_kiosk_id": self.departure.get("kiosk_id") if self.departure else None,
            "duration_s": duration,
            "state": self.state,
            "flags": json.dumps(self.flags) if self.flags else "[]",
        }


@dataclass(frozen=True)
class Finding:
    kind: str
    site_id: str | None
    event_id: str | None
    detail: str


# --- pairing (pure) --------------------------------------------------------------------------


def without_kiosk_corrections(
    day_records: Sequence[dict[str, Any]], corrective: Iterable[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The day's records that count: voids dropped, voided and replaced records dropped.

    `corrective`: records of other days that correct something (their `corrects` is set). A
    correction that is itself voided or replaced no longer counts, so what it named counts again.
    """
    if not corrective and not any(r.get("corrects") for r in day_records):
        return [r for r in day_records if r["kind"] != "void"]  # the usual case: nothing to undo
    by_id = {r["event_id"]: r for r in day_records}
    for r in corrective:
        by_id.setdefault(r["event_id"], r)
    correctors: dict[str, list[str]] = defaultdict(list)
    for r in by_id.values():
        if r.get("corrects"):
            correctors[r["corrects"]].append(r["event_id"])
    memo: dict[str, bool] = {}

    def removed(event_id: str, visiting: frozenset[str] = frozenset()) -> bool:
        if event_id in memo:
            return memo[event_id]
        if event_id in visiting:  # a loop of corrections: break it by letting the record stand
            return False
        inner = visiting | {event_id}
        result = any(not removed(c, inner) for c in correctors.get(event_id, ()))
        memo[event_id] = result
        return result

    return [r for r in day_records if r["kind"] != "void" and not removed(r["event_id"])]


def _explicit(record: dict[str, Any]) -> bool:
    return (
        record.get("source") in EXPLICIT_SOURCES
        or bool(record.get("corrects"))
        or record.get("corrected_by") is not None
    )


def _when(record: dict[str, Any]) -> str:
    return f"{record['corrected_time']:%Y-%m-%d %H:%M:%S} UTC"


def pair_site(
    cadre_id: str, site_id: str, day: date, records: Sequence[dict[str, Any]], rules: StayRules
) -> tuple[list[Stay], list[Finding]]:
    """Stays of one cadre at one site on one service day, from records sorted by time."""
    result: list[Stay] = []
    findings: list[Finding] = []
    current: Stay | None = None
    last_counted: datetime | None = None
    for record in records:
        at = record["corrected_time"]
        if _explicit(record):
            role = record["kind"]
        elif last_counted is not None and at - last_counted < rules.repeat_window:
            continue  # a repeat: evidence only
        elif (
            current is not None
            and current.arrival is not None
            and at - current.arrival["corrected_time"] <= rules.longest_shift
        ):
            role = "departure"
        else:
            role = "arrival"
        last_counted = at
        stay_of_record: Stay
        if role == "arrival":
            if current is not None:
                current.state = "no_departure"
                findings.append(
                    Finding(
                        "no_departure",
                        site_id,
                        current.arrival["event_id"] if current.arrival else None,
                        f"arrival at {_when(current.arrival)} has no departure"
                        if current.arrival
                        else "no departure",
                    )
                )
            current = Stay(cadre_id, site_id, day, arrival=record)
            result.append(current)
            stay_of_record = current
        else:
            if current is not None:
                current.departure = record
                current.state = "closed"
                stay_of_record = current
                current = None
            else:
                stay_of_record = Stay(cadre_id, site_id, day, departure=record, state="no_arrival")
                result.append(stay_of_record)
                findings.append(
                    Finding(
                        "no_arrival",
                        site_id,
                        record["event_id"],
                        f"departure at {_when(record)} without an arrival",
                    )
                )
        if record.get("source") not in EXPLICIT_SOURCES and record["kind"] != role:
            stay_of_record.flag("kiosk_disagrees")
            findings.append(
                Finding(
                    "kiosk_disagrees",
                    site_id,
                    record["event_id"],
                    f"kiosk {record.get('kiosk_id')} recorded {record['kind']} at "
                    f"{_when(record)}; with every kiosk's records it counts as {role}",
                )
            )
    for stay in result:
        members = [r for r in (stay.arrival, stay.departure) if r is not None]
        if any(r.get("time_status") == "uncorrected" for r in members):
            stay.flag("uncorrected_time")
        if stay.arrival and stay.departure:
            # A staff-added record has no kiosk: that is not "left at another kiosk".
            kiosks_of_stay = (stay.arrival.get("kiosk_id"), stay.departure.get("kiosk_id"))
            if None not in kiosks_of_stay and kiosks_of_stay[0] != kiosks_of_stay[1]:
                stay.flag("cross_kiosk")
            length = stay.departure["corrected_time"] - stay.arrival["corrected_time"]
            if length > rules.overlong:
                stay.flag("overlong")
                findings.append(
                    Finding(
                        "overlong_stay",
                        site_id,
                        stay.arrival["event_id"],
                        f"stay of {length.total_seconds() / 3600:.1f} h from {_when(stay.arrival)}",
                    )
                )
    return result, findings


def pair_day(
    cadre_id: str, day: date, records: Sequence[dict[str, Any]], rules: StayRules
) -> tuple[list[Stay], list[Finding]]:
    """Stays of one cadre on one day, every site; records already stripped of voided ones."""
    by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in sorted(
        records, key=lambda r: (r["corrected_time"], r.get("kiosk_id") or "", r["event_id"])
    ):
        by_site[record["site_id"]].append(record)
    all_stays: list[Stay] = []
    findings: list[Finding] = []
    for site_id in sorted(by_site):
        site_stays, site_findings = pair_site(cadre_id, site_id, day, by_site[site_id], rules)
        all_stays.extend(site_stays)
        findings.extend(site_findings)
    if len(by_site) > 1:
        for stay in all_stays:
            stay.flag("two_sites")
        findings.append(
            Finding("two_sites", None, None, "seen at sites " + ", ".join(sorted(by_site)))
        )
    return all_stays, findings


# --- keeping the stays table -----------------------------------------------------------------

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
                events.c.cadre_id.in_(chunk), events.c.service_day.in_(days)
            )
        ):
            record = dict(row._mapping)
            day_records[(record["cadre_id"], record["service_day"])].append(record)
        for row in conn.execute(
            select(*EVENT_COLUMNS).where(events.c.cadre_id.in_(chunk), events.c.corrects > "")
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
    """Recompute the stays of up to `limit` queued (cadre, day) pairs; returns how many.

    A pair queued again while this runs keeps its new mark and stays queued.
    """
    with write_transaction(engine) as conn:
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


def queued(conn: Connection) -> int:
    """(cadre, day) pairs waiting for their stays to be recomputed."""
    return conn.execute(select(func.count()).select_from(stays_dirty)).scalar_one()


class StayRefresher:
    """Keeps the stays up to date behind the ingest API, on a thread of its own.

    `poke()` after queueing pairs: the thread starts if needed, works through the queue in
    chunks (letting ingest transactions in between) and ends after `idle_exit_s` without work,
    so an app that is not pushed to holds no thread. Without `autostart` (tests) nothing runs
    until `drain()` is called.
    """

    def __init__(
        self,
        engine: Engine,
        rules: StayRules,
        chunk: int = 250,
        idle_exit_s: float = 30.0,
        max_yield_s: float = 2.0,
        now: Callable[[], datetime] | None = None,
        autostart: bool = True,
    ):
        self.engine = engine
        self.autostart = autostart
        self.rules = rules
        self.chunk = chunk
        self.idle_exit_s = idle_exit_s
        self.max_yield_s = max_yield_s
        self._now = now
        self._work = threading.Event()
        self._lock = threading.Lock()
        self._quiet = threading.Condition()
        self._ingesting = 0
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def poke(self) -> None:
        self._work.set()
        if not self.autostart:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stays", daemon=True)
                self._thread.start()

    @contextmanager
    def ingesting(self) -> Iterator[None]:
        """Wrap an ingest: the refresher lets it go first (it waits, at most `max_yield_s`)."""
        with self._quiet:
            self._ingesting += 1
        try:
            yield
        finally:
            with self._quiet:
                self._ingesting -= 1
                self._quiet.notify_all()

    def _let_ingest_go_first(self) -> None:
        with self._quiet:
            self._quiet.wait_for(lambda: self._ingesting == 0, timeout=self.max_yield_s)

    def drain(self) -> int:
        """Work through the whole queue on the calling thread; returns pairs recomputed."""
        total = 0
        while done := refresh(self.engine, self.rules, self._clock(), self.chunk):
            total += done
        return total

    def _clock(self) -> datetime | None:
        return self._now() if self._now else None

    def _run(self) -> None:
        while True:
            if not self._work.wait(self.idle_exit_s):
                with self._lock:
                    if not self._work.is_set():
                        self._thread = None
                        return
                continue
            self._work.clear()
            try:
                while True:
                    # Kiosks are waiting for their answers; pairing can wait a moment.
                    self._let_ingest_go_first()
                    if not refresh(self.engine, self.rules, self._clock(), self.chunk):
                        break
                self.last_error = None
            except Exception as exc:  # keep the thread; the queue is still there to retry
                logging.getLogger(__name__).exception("stays refresh failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(1.0)
                self._work.set()


def rebuild(
    conn: Connection, rules: StayRules, day: date | None = None, now: datetime | None = None
) -> int:
    """Recompute every stay (of one service day, or all): after a bulk load or a rule change."""
    query = select(distinct(events.c.cadre_id), events.c.service_day)
    if day is not None:
        query = query.where(events.c.service_day == day)
    keys = [(r[0], r[1]) for r in conn.execute(query)]
    written = 0
    for chunk in chunks(keys, 5000):
        written += recompute(conn, chunk, rules, now)
    return written


# --- queries for the pages -------------------------------------------------------------------


def _decode(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    if "flags" in data and isinstance(data["flags"], str):
        data["flags"] = json.loads(data["flags"])
    return data


def stays_for_cadre(
    conn: Connection, cadre_id: str, start: date, end: date
) -> list[dict[str, Any]]:
    """A cadre's stays with service_day in [start, end], oldest first (every site)."""
    rows = conn.execute(
        select(stays)
        .where(
            stays.c.cadre_id == cadre_id,
            stays.c.service_day >= start,
            stays.c.service_day <= end,
        )
        .order_by(
            stays.c.service_day,
            func.coalesce(stays.c.arrival_time, stays.c.departure_time),
        )
    )
    return [_decode(r) for r in rows]


def events_for_cadre(
    conn: Connection, cadre_id: str, start: date, end: date
) -> list[dict[str, Any]]:
    """Every record of a cadre with service_day in [start, end] (the evidence), by time."""
    rows = conn.execute(
        select(events)
        .where(
            events.c.cadre_id == cadre_id,
            events.c.service_day >= start,
            events.c.service_day <= end,
        )
        .order_by(events.c.corrected_time, events.c.kiosk_id, events.c.seq)
    )
    return [_decode(r) for r in rows]


@dataclass(frozen=True)
class SiteDay:
    site_id: str
    site_name: str
    expected: int  # cadres on the site's roster
    arrived: int  # cadres seen at the site that day (on its roster or not)
    present: int  # arrived and not gone: an open stay younger than the longest shift
    departed: int  # arrived, not present, and seen leaving (a closed stay)
    absent: int  # on the roster, not seen at the site that day
    visitors: int  # seen at the site, on another site's roster or none
    no_departure: int = 0  # arrived, not present, never seen leaving


def _present_cutoff(day: date, now: datetime, rules: StayRules) -> datetime | None:
    """Open stays that began after this are still present; None: nobody is (a past day)."""
    start, end = rules.day.bounds(day)
    if now >= end or now < start:
        return None
    return now - rules.longest_shift


def _summaries(
    conn: Connection, day: date, now: datetime, rules: StayRules, site_id: str | None
) -> list[SiteDay]:
    now = now.replace(tzinfo=None) if now.tzinfo else now  # naive UTC like the store
    cutoff = _present_cutoff(day, now, rules)
    open_now = and_(
        stays.c.state == "open",
        stays.c.arrival_time >= (cutoff if cutoff is not None else datetime.max),
    )
    if cutoff is None:
        open_now = literal(False)
    # One row per (site, cadre) first: "departed" needs to know, per cadre, that a stay closed
    # and that no other stay of theirs is still open; row-level counts cannot tell that.
    per_cadre = select(
        stays.c.site_id,
        stays.c.cadre_id,
        func.max(case((open_now, 1), else_=0)).label("is_present"),
        func.max(case((stays.c.state == "closed", 1), else_=0)).label("has_closed"),
        func.max(case((cadres.c.site_id == stays.c.site_id, 1), else_=0)).label("on_roster"),
    ).select_from(stays.outerjoin(cadres, cadres.c.cadre_id == stays.c.cadre_id))
    per_cadre = per_cadre.where(stays.c.service_day == day)
    if site_id is not None:
        per_cadre = per_cadre.where(stays.c.site_id == site_id)
    cadre_rows = per_cadre.group_by(stays.c.site_id, stays.c.cadre_id).subquery()
    seen = select(
        cadre_rows.c.site_id,
        func.count().label("arrived"),
        func.sum(cadre_rows.c.is_present).label("present"),
        func.sum(
            case((and_(cadre_rows.c.is_present == 0, cadre_rows.c.has_closed == 1), 1), else_=0)
        ).label("departed"),
        func.sum(cadre_rows.c.on_roster).label("on_roster"),
    ).group_by(cadre_rows.c.site_id)
    expected = select(cadres.c.site_id, func.count().label("expected")).group_by(cadres.c.site_id)
    names = select(sites.c.site_id, sites.c.name)
    if site_id is not None:
        expected = expected.where(cadres.c.site_id == site_id)
        names = names.where(sites.c.site_id == site_id)
    seen_by_site = {r.site_id: r for r in conn.execute(seen)}
    expected_by_site = {r.site_id: r.expected for r in conn.execute(expected) if r.site_id}
    name_of = {r.site_id: r.name for r in conn.execute(names)}
    result = []
    for sid in sorted(set(name_of) | set(expected_by_site) | set(seen_by_site)):
        row = seen_by_site.get(sid)
        arrived = row.arrived if row else 0
        present = int(row.present or 0) if row else 0
        departed = int(row.departed or 0) if row else 0
        on_roster = int(row.on_roster or 0) if row else 0
        want = expected_by_site.get(sid, 0)
        result.append(
            SiteDay(
                site_id=sid,
                site_name=name_of.get(sid, ""),
                expected=want,
                arrived=arrived,
                present=present,
                departed=departed,
                absent=max(want - on_roster, 0),
                visitors=arrived - on_roster,
                no_departure=arrived - present - departed,
            )
        )
    return result


def site_day_summary(
    conn: Connection, site_id: str, day: date, now: datetime, rules: StayRules
) -> SiteDay:
    found = _summaries(conn, day, now, rules, site_id)
    return found[0] if found else SiteDay(site_id, "", 0, 0, 0, 0, 0, 0)


def all_sites_summary(
    conn: Connection, day: date, now: datetime, rules: StayRules
) -> list[SiteDay]:
    """One row per site (every site on the roster or seen that day), by site id."""
    return _summaries(conn, day, now, rules, None)


def present_cadres(
    conn: Connection, site_id: str, day: date, now: datetime, rules: StayRules
) -> list[dict[str, Any]]:
    """Open stays at a site still counted as present, with the arrival, oldest first."""
    now = now.replace(tzinfo=None) if now.tzinfo else now
    cutoff = _present_cutoff(day, now, rules)
    if cutoff is None:
        return []
    rows = conn.execute(
        select(stays)
        .where(
            stays.c.site_id == site_id,
            stays.c.service_day == day,
            stays.c.state == "open",
            stays.c.arrival_time >= cutoff,
        )
        .order_by(stays.c.arrival_time)
    )
    return [_decode(r) for r in rows]


def arrivals_histogram(
    conn: Connection, site_id: str, day: date, rules: StayRules, bucket_minutes: int = 15
) -> list[tuple[datetime, int]]:
    """(bucket start as naive UTC, arrivals) for every bucket of the service day, in order."""
    start, end = rules.day.bounds(day)
    width = timedelta(minutes=bucket_minutes)
    counts: dict[int, int] = defaultdict(int)
    for (arrival_time,) in conn.execute(
        select(stays.c.arrival_time).where(
            stays.c.site_id == site_id,
            stays.c.service_day == day,
            stays.c.arrival_time.is_not(None),
        )
    ):
        counts[int((arrival_time - start) / width)] += 1
    buckets = int((end - start) / width)
    return [(start + i * width, counts.get(i, 0)) for i in range(buckets)]


def kiosk_health(conn: Connection, now: datetime, dead_after_s: int) -> list[dict[str, Any]]:
    """Every kiosk with its latest heartbeat; `dead`: enrolled, not revoked, silent too long."""
    now = now.replace(tzinfo=None) if now.tzinfo else now
    rows = conn.execute(
        select(
            kiosks.c.kiosk_id,
            kiosks.c.site_id,
            kiosks.c.name,
            kiosks.c.enrolled_at,
            kiosks.c.revoked_at,
            kiosks.c.last_push_at,
            kiosks.c.chain_seq,
            kiosks.c.max_seq,
            kiosk_status.c.received_at.label("last_heartbeat_at"),
            kiosk_status.c.app_version,
            kiosk_status.c.queue_length,
            kiosk_status.c.last_scan_at,
            kiosk_status.c.camera_ok,
            kiosk_status.c.camera_detail,
            kiosk_status.c.clock_trusted,
            kiosk_status.c.clock_offset_s,
            kiosk_status.c.disk_free_bytes,
            kiosk_status.c.ready,
            kiosk_status.c.ready_detail,
        )
        .select_from(kiosks.outerjoin(kiosk_status, kiosk_status.c.kiosk_id == kiosks.c.kiosk_id))
        .order_by(kiosks.c.site_id, kiosks.c.kiosk_id)
    )
    result = []
    for row in rows:
        data = dict(row._mapping)
        last = data["last_heartbeat_at"]
        active = data["enrolled_at"] is not None and data["revoked_at"] is None
        data["dead"] = active and (last is None or (now - last).total_seconds() > dead_after_s)
        data["silent_s"] = None if last is None else int((now - last).total_seconds())
        result.append(data)
    return result


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
