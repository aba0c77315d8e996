"""What the pages read from the stays: a site's day in figures, who is present, a cadre's stays."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, false, func, literal, or_, select

from central.db.schema import cadres, events, sites, stays
from central.stays.pairing import StayRules


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
    by_hand: int = 0  # arrived, with no record a badge proves that day: entered by hand


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
        func.max(
            case(
                (or_(stays.c.arrival_by_hand == false(), stays.c.departure_by_hand == false()), 1),
                else_=0,
            )
        ).label("proven"),
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
        func.sum(cadre_rows.c.proven).label("proven"),
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
        proven = int(row.proven or 0) if row else 0
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
                by_hand=arrived - proven,
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
