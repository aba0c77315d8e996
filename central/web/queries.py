"""What the staff pages read from the store, shaped for the templates.

Counting and pairing belong to central/stays/ (one definition of "present", "absent", ...);
this module calls it and adds what only the pages need: a site's list of cadres with their
status, a cadre's timeline with corrections and anomalies, searches. Each function is a few
indexed queries: the all-sites page must render in 300 ms and a cadre's timeline in 100 ms with
40,000 cadres, 500 sites and a million events (bench/central.py). Times in the store are naive
UTC (central/db/schema.py); they are returned aware, in UTC, and templates show them in the
centre's time zone.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from central import roster
from central.anomalies import anomaly_list
from central.db import schema
from central.kiosks import kiosk_health
from central.stays import queries as stay_queries
from central.stays import store as stay_store
from central.stays.pairing import StayRules
from central.stays.queries import SiteDay

CHART_SLOT_MINUTES = 15
ANOMALY_ROWS = 500


def aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def service_day_of(moment: datetime, rules: StayRules) -> date:
    return rules.day.service_day(naive_utc(moment))


def _flags(value: str | list[Any] | None) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if not value:
        return []
    try:
        decoded = json.loads(value)
    except ValueError:
        return []
    return [str(v) for v in decoded] if isinstance(decoded, list) else []


# --- all sites ---------------------------------------------------------------------------------


def kiosk_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of central.kiosks.kiosk_health with its times made aware for the templates."""
    for name in ("last_heartbeat_at", "last_scan_at", "enrolled_at", "revoked_at", "last_push_at"):
        if name in row:
            row[name] = aware(row[name])
    return row


@dataclass
class SiteRow:
    summary: SiteDay
    kiosks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dead_kiosks(self) -> int:
        return sum(1 for k in self.kiosks if k["dead"])


@dataclass
class Overview:
    day: date
    sites: list[SiteRow]
    totals: SiteDay
    kiosks: list[dict[str, Any]]
    pending: int = 0  # (cadre, day) pairs whose stays the refresher has not paired yet

    @property
    def dead(self) -> list[dict[str, Any]]:
        return [k for k in self.kiosks if k["dead"]]


def totals(rows: Sequence[SiteDay]) -> SiteDay:
    return SiteDay(
        site_id="",
        site_name="",
        expected=sum(r.expected for r in rows),
        arrived=sum(r.arrived for r in rows),
        present=sum(r.present for r in rows),
        departed=sum(r.departed for r in rows),
        absent=sum(r.absent for r in rows),
        visitors=sum(r.visitors for r in rows),
        no_departure=sum(r.no_departure for r in rows),
        by_hand=sum(r.by_hand for r in rows),
    )


def overview(
    conn: Connection, day: date, now: datetime, rules: StayRules, dead_after_s: int
) -> Overview:
    summaries = stay_queries.all_sites_summary(conn, day, now, rules)
    health = [kiosk_row(k) for k in kiosk_health(conn, now, dead_after_s)]
    rows = {s.site_id: SiteRow(s) for s in summaries}
    for kiosk in health:
        if kiosk["site_id"] not in rows:
            rows[kiosk["site_id"]] = SiteRow(SiteDay(kiosk["site_id"], "", 0, 0, 0, 0, 0, 0))
        rows[kiosk["site_id"]].kiosks.append(kiosk)
    ordered = [rows[site_id] for site_id in sorted(rows)]
    return Overview(day, ordered, totals(summaries), health, stay_store.queued(conn))


def site_names(conn: Connection) -> list[tuple[str, str]]:
    return [
        (r.site_id, r.name)
        for r in conn.execute(
            select(schema.sites.c.site_id, schema.sites.c.name).order_by(schema.sites.c.site_id)
        )
    ]


# --- one site ----------------------------------------------------------------------------------


@dataclass
class CadreDay:
    cadre_id: str
    name: str
    unit: str
    on_roster: bool  # on this site's roster
    status: str = "absent"  # present | departed | absent | no_arrival | no_departure
    first_arrival: datetime | None = None
    last_departure: datetime | None = None
    stays: int = 0
    hours_s: int = 0
    flags: set[str] = field(default_factory=set)
    by_hand: bool = True  # no record a badge proves that day (until one is found)


@dataclass
class SitePage:
    site_id: str
    name: str
    day: date
    cadres: list[CadreDay]
    summary: SiteDay
    arrivals_per_slot: list[tuple[datetime, int]]
    kiosks: list[dict[str, Any]]


STATUS_ORDER = {"present": 0, "no_departure": 1, "no_arrival": 2, "departed": 3, "absent": 4}


def site_page(
    conn: Connection, site_id: str, day: date, now: datetime, rules: StayRules, dead_after_s: int
) -> SitePage | None:
    """The site's cadres (its roster, and anyone else seen there) and their status on `day`."""
    summary = stay_queries.site_day_summary(conn, site_id, day, now, rules)
    kiosks = [
        kiosk_row(k) for k in kiosk_health(conn, now, dead_after_s) if k["site_id"] == site_id
    ]
    if not summary.site_name and not summary.expected and not summary.arrived and not kiosks:
        return None
    c, st = schema.cadres, schema.stays
    people = {
        r.cadre_id: CadreDay(r.cadre_id, r.name, r.unit or "", True)
        for r in conn.execute(
            select(c.c.cadre_id, c.c.name, c.c.unit).where(c.c.site_id == site_id)
        )
    }
    stay_rows = conn.execute(
        select(st).where(st.c.site_id == site_id, st.c.service_day == day).order_by(st.c.stay_id)
    ).all()
    visitors = sorted({r.cadre_id for r in stay_rows} - set(people))
    if visitors:
        for r in conn.execute(
            select(c.c.cadre_id, c.c.name, c.c.unit).where(c.c.cadre_id.in_(visitors))
        ):
            people[r.cadre_id] = CadreDay(r.cadre_id, r.name, r.unit or "", False)
        for cadre_id in visitors:
            people.setdefault(cadre_id, CadreDay(cadre_id, "", "", False))
    present = {r["cadre_id"] for r in stay_queries.present_cadres(conn, site_id, day, now, rules)}
    for stay in stay_rows:
        person = people[stay.cadre_id]
        person.stays += 1
        arrival, departure = aware(stay.arrival_time), aware(stay.departure_time)
        if arrival and (person.first_arrival is None or arrival < person.first_arrival):
            person.first_arrival = arrival
        if departure and (person.last_departure is None or departure > person.last_departure):
            person.last_departure = departure
        person.hours_s += int(stay.duration_s or 0)
        person.flags.update(_flags(stay.flags))
        if stay.arrival_by_hand is False or stay.departure_by_hand is False:
            person.by_hand = False
        if person.status == "present":
            continue
        if stay.cadre_id in present:
            person.status = "present"
        elif stay.state in ("open", "no_departure"):
            # Open but the day is over or the shift too long ago: nobody saw them leave.
            person.status = "no_departure"
        elif stay.state == "no_arrival":
            person.status = "no_arrival" if person.status == "absent" else person.status
        else:
            person.status = "departed" if person.status == "absent" else person.status
    ordered = sorted(people.values(), key=lambda p: (STATUS_ORDER.get(p.status, 5), p.cadre_id))
    histogram = people_arriving(conn, site_id, day, rules, CHART_SLOT_MINUTES)
    busy = [i for i, (_, count) in enumerate(histogram) if count]
    slots = (
        [(aware(start), count) for start, count in histogram[busy[0] : busy[-1] + 1]]
        if busy
        else []
    )
    return SitePage(
        site_id=site_id,
        name=summary.site_name or site_id,
        day=day,
        cadres=ordered,
        summary=summary,
        arrivals_per_slot=slots,  # type: ignore[arg-type]
        kiosks=kiosks,
    )


def people_arriving(
    conn: Connection, site_id: str, day: date, rules: StayRules, slot_minutes: int
) -> list[tuple[datetime, int]]:
    """(slot start as naive UTC, people) for every slot of the service day: each person counts
    once, in the slot of their first arrival at the site that day. A cadre who came and went
    three times is one person arriving, not three (the chart says "people")."""
    start, end = rules.day.bounds(day)
    width = timedelta(minutes=slot_minutes)
    st = schema.stays
    counts: Counter[int] = Counter()
    for (first,) in conn.execute(
        select(func.min(st.c.arrival_time))
        .where(st.c.site_id == site_id, st.c.service_day == day, st.c.arrival_time.is_not(None))
        .group_by(st.c.cadre_id)
    ):
        counts[int((first - start) / width)] += 1
    slots = int((end - start) / width)
    return [(start + i * width, counts.get(i, 0)) for i in range(slots)]


# --- one cadre -------------------------------------------------------------------------------


@dataclass
class Timeline:
    cadre: dict[str, Any] | None
    site_name: str | None
    first_day: date
    last_day: date
    events: list[dict[str, Any]]
    stays: list[dict[str, Any]]
    corrections: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]


def timeline(conn: Connection, cadre_id: str, first_day: date, last_day: date) -> Timeline:
    """Everything about one cadre between two service days, newest first."""
    a, corr = schema.anomalies, schema.corrections
    cadre = roster.get_cadre(conn, cadre_id)
    site = None
    if cadre and cadre["site_id"]:
        site = conn.execute(
            select(schema.sites.c.name).where(schema.sites.c.site_id == cadre["site_id"])
        ).scalar_one_or_none()
    events = stay_queries.events_for_cadre(conn, cadre_id, first_day, last_day)
    events.reverse()
    stay_rows = stay_queries.stays_for_cadre(conn, cadre_id, first_day, last_day)
    stay_rows.reverse()
    correction_rows = [
        dict(r._mapping)
        for r in conn.execute(
            select(corr)
            .where(
                corr.c.cadre_id == cadre_id,
                corr.c.service_day >= first_day,
                corr.c.service_day <= last_day,
            )
            .order_by(corr.c.correction_id.desc())
        )
    ]
    anomaly_rows = [
        dict(r._mapping)
        for r in conn.execute(
            select(a)
            .where(
                a.c.cadre_id == cadre_id,
                a.c.service_day >= first_day,
                a.c.service_day <= last_day,
            )
            .order_by(a.c.anomaly_id.desc())
        )
    ]
    corrected: dict[str, dict[str, Any]] = {}
    for correction in reversed(correction_rows):  # oldest first: the newest one wins
        if correction["target_event_id"]:
            corrected[correction["target_event_id"]] = correction
    for event in events:
        # The kiosk's clock reading (UTC in the store) is shown in the page's one time zone, as
        # every other time: the offset the kiosk wrote with stays in the store and the exports.
        event["device_time"] = aware(event["device_time"])
        event["corrected_time"] = aware(event["corrected_time"])
        event["flags"] = _flags(event["flags"])
        event["staff_correction"] = corrected.get(event["event_id"])
    for stay in stay_rows:
        stay["arrival_time"] = aware(stay["arrival_time"])
        stay["departure_time"] = aware(stay["departure_time"])
        stay["flags"] = _flags(stay["flags"])
    for correction in correction_rows:
        correction["event_time"] = aware(correction["event_time"])
        correction["created_at"] = aware(correction["created_at"])
        correction["staff_correction"] = corrected.get(correction["new_event_id"] or "")
    for anomaly in anomaly_rows:
        anomaly["detected_at"] = aware(anomaly["detected_at"])
    name_targets(conn, correction_rows)
    return Timeline(
        cadre, site, first_day, last_day, events, stay_rows, correction_rows, anomaly_rows
    )


# --- anomalies -------------------------------------------------------------------------------

ANOMALY_KINDS = (
    "two_sites",
    "no_arrival",
    "no_departure",
    "overlong_stay",
    "uncorrected_time",
    "chain_gap",
    "chain_fork",
    "event_conflict",
    "rejected_event",
    "kiosk_disagrees",
    "badge_proof",
    "correction_lane",
    "time_claim",
)


def anomalies(
    conn: Connection,
    first_day: date,
    last_day: date,
    now: datetime,
    rules: StayRules,
    kinds: Sequence[str] = (),
    site_id: str | None = None,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Anomalies of the days (newest first, at most ANOMALY_ROWS) and how many of each kind."""
    found = anomaly_list(
        conn, first_day, last_day, now, rules, site_id=site_id, limit=20 * ANOMALY_ROWS
    )
    counts = Counter(row["kind"] for row in found)
    chosen = [row for row in found if not kinds or row["kind"] in kinds][:ANOMALY_ROWS]
    names = _cadre_names(conn, {row["cadre_id"] for row in chosen if row["cadre_id"]})
    for row in chosen:
        row["detected_at"] = aware(row["detected_at"])
        row["cadre_name"] = names.get(row["cadre_id"], "")
    return chosen, counts


def _cadre_names(conn: Connection, cadre_ids: set[str]) -> dict[str, str]:
    if not cadre_ids:
        return {}
    c = schema.cadres
    names: dict[str, str] = {}
    ids = sorted(cadre_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        names.update(
            conn.execute(select(c.c.cadre_id, c.c.name).where(c.c.cadre_id.in_(chunk))).all()
        )
    return names


# --- corrections -----------------------------------------------------------------------------


def name_targets(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Give each correction row the record it voids or changes (`target`: time, kind, kiosk and
    number), so a page names it as staff know it instead of by its id."""
    wanted = sorted({r["target_event_id"] for r in rows if r.get("target_event_id")})
    found: dict[str, dict[str, Any]] = {}
    e, corr = schema.events, schema.corrections
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for kiosk_record in conn.execute(
            select(e.c.event_id, e.c.kind, e.c.corrected_time, e.c.kiosk_id, e.c.seq).where(
                e.c.event_id.in_(chunk)
            )
        ):
            found[kiosk_record.event_id] = {
                "kind": kiosk_record.kind,
                "time": aware(kiosk_record.corrected_time),
                "kiosk_id": kiosk_record.kiosk_id,
                "seq": kiosk_record.seq,
            }
        for added in conn.execute(
            select(corr.c.new_event_id, corr.c.kind, corr.c.event_time).where(
                corr.c.new_event_id.in_(chunk)
            )
        ):
            found[added.new_event_id] = {
                "kind": added.kind,
                "time": aware(added.event_time),
                "kiosk_id": None,
                "seq": None,
            }
    for row in rows:
        row["target"] = found.get(row.get("target_event_id") or "")


def recent_corrections(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    corr = schema.corrections
    rows = conn.execute(
        select(corr, schema.cadres.c.name.label("cadre_name"))
        .select_from(corr.outerjoin(schema.cadres, schema.cadres.c.cadre_id == corr.c.cadre_id))
        .order_by(corr.c.correction_id.desc())
        .limit(limit)
    )
    result = []
    for row in rows:
        item = dict(row._mapping)
        item["event_time"] = aware(item["event_time"])
        item["created_at"] = aware(item["created_at"])
        result.append(item)
    name_targets(conn, result)
    return result


def event_row(conn: Connection, event_id: str) -> dict[str, Any] | None:
    """A kiosk record, or a record added by a correction, by id."""
    e = schema.events
    row = conn.execute(select(e).where(e.c.event_id == event_id)).first()
    if row is not None:
        return dict(row._mapping)
    corr = schema.corrections
    added = conn.execute(select(corr).where(corr.c.new_event_id == event_id)).first()
    if added is None:
        return None
    return {
        "event_id": added.new_event_id,
        "cadre_id": added.cadre_id,
        "site_id": added.site_id,
        "kind": added.kind,
        "corrected_time": added.event_time,
        "service_day": added.service_day,
        "kiosk_id": None,
    }
