"""Exports for a range of service days and some sites, as tables for sync/tabular: stays,
records, or attendance (who came and who did not, with counts per site, unit and district and the
arrival curve).

Used by the staff pages (a background job for big ones) and by `central export`. Every cell is in
the sheet's language: headers, kinds, sources, states and flags (central/words.py); ids,
names and reasons as stored. Times are wall times in the sites' time zone (the `timezone`
setting), the UTC offset said once, in the column's header ("到达 (UTC+08:00)"); only when the
zone changes its offset inside the range (summer time) does each time carry its own.
"""

from __future__ import annotations

import heapq
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, and_, case, func, select

from central import roster
from central.db import schema
from central.stays.pairing import BADGE_SOURCES, StayRules
from central.words import Language, Words, zone_label
from sync.tabular import Cell, Table, file_name_part

What = Literal["stays", "events", "attendance"]
WHATS: tuple[str, ...] = ("stays", "events", "attendance")
FETCH_ROWS = 5_000
CURVE_MINUTES = 15

# Columns whose cells are times: their header carries the UTC offset.
TIME_COLUMNS = frozenset(
    {
        "arrival_time",
        "departure_time",
        "corrected_time",
        "device_time",
        "first_arrival",
        "last_departure",
    }
)

STAY_COLUMNS: dict[str, tuple[str, str]] = {
    "service_day": ("日期", "day"),
    "site_id": ("站点", "site"),
    "site_name": ("站点名称", "site name"),
    "cadre_id": ("编号", "id"),
    "name": ("姓名", "name"),
    "unit": ("单位", "unit"),
    "arrival_time": ("到达", "arrival"),
    "departure_time": ("离开", "departure"),
    "hours": ("时长(小时)", "hours"),
    "state": ("状态", "state"),
    "flags": ("标记", "flags"),
    "arrival_kiosk_id": ("到达签到机", "arrival kiosk"),
    "departure_kiosk_id": ("离开签到机", "departure kiosk"),
    "arrival_recorded": ("到达记录方式", "arrival recorded"),
    "departure_recorded": ("离开记录方式", "departure recorded"),
}

EVENT_COLUMNS: dict[str, tuple[str, str]] = {
    "service_day": ("日期", "day"),
    "site_id": ("站点", "site"),
    "cadre_id": ("编号", "id"),
    "name": ("姓名", "name"),
    "kind": ("类型", "kind"),
    "corrected_time": ("校正时间", "corrected time"),
    "device_time": ("签到机时钟", "kiosk clock"),
    "time_status": ("时间状态", "time status"),
    "kiosk_id": ("签到机", "kiosk"),
    "seq": ("序号", "seq"),
    "source": ("来源", "source"),
    "operator": ("操作人", "operator"),
    "reason": ("原因", "reason"),
    "flags": ("标记", "flags"),
    "event_id": ("记录编号", "record id"),
    "correction": ("人工更正", "staff correction"),
    "correction_reason": ("更正原因", "correction reason"),
    "corrected_by": ("更正人", "corrected by"),
    "recorded": ("记录方式", "recorded"),
    "not_counted": ("不计入原因", "not counted because"),
    "photo": ("照片", "photo"),
    "photo_review": ("照片审核", "photo review"),
}

# Whether the centre holds a record's photo: the photo itself is never exported.
PHOTO_PRESENCE: dict[str, tuple[str, str]] = {
    "held": ("已收到", "received"),
    "missing": ("未收到", "not received"),
}
VERDICT_WORDS: dict[str, tuple[str, str]] = {
    "ok": ("正常", "ok"),
    "proxy_suspected": ("疑似代签", "proxy suspected"),
}

# How a record was made, in the sheet's language: a badge proves it, or a person's word does.
RECORDED: dict[str, tuple[str, str]] = {
    "badge": ("胸卡", "badge"),
    "by_hand": ("手工录入", "by hand"),
}

ATTENDANCE_COLUMNS: dict[str, tuple[str, str]] = {
    "service_day": ("日期", "day"),
    "district": ("区", "district"),
    "site_id": ("站点", "site"),
    "site_name": ("站点名称", "site name"),
    "cadre_id": ("编号", "id"),
    "name": ("姓名", "name"),
    "unit": ("单位", "unit"),
    "status": ("出勤", "attendance"),
    "first_arrival": ("首次到达", "first arrival"),
    "last_departure": ("最后离开", "last departure"),
    "hours": ("时长(小时)", "hours"),
    "arrival_recorded": ("到达记录方式", "arrival recorded"),
}
SITE_COUNT_COLUMNS: dict[str, tuple[str, str]] = {
    "service_day": ("日期", "day"),
    "district": ("区", "district"),
    "site_id": ("站点", "site"),
    "site_name": ("站点名称", "site name"),
    "expected": ("应到", "expected"),
    "arrived": ("已到", "arrived"),
    "absent": ("缺勤", "absent"),
    "rate": ("到岗率(%)", "arrived (%)"),
    "visitors": ("非本站人员", "from other sites"),
    "by_hand": ("其中手工录入", "of which by hand"),
}
UNIT_COUNT_COLUMNS: dict[str, tuple[str, str]] = {
    "service_day": ("日期", "day"),
    "unit": ("单位", "unit"),
    "expected": ("应到", "expected"),
    "arrived": ("已到", "arrived"),
    "absent": ("缺勤", "absent"),
    "rate": ("到岗率(%)", "arrived (%)"),
}
DISTRICT_COUNT_COLUMNS: dict[str, tuple[str, str]] = {
    "service_day": ("日期", "day"),
    "district": ("区", "district"),
    "sites": ("站点数", "sites"),
    "expected": ("应到", "expected"),
    "arrived": ("已到", "arrived"),
    "absent": ("缺勤", "absent"),
    "rate": ("到岗率(%)", "arrived (%)"),
}
CURVE_COLUMNS: dict[str, tuple[str, str]] = {
    "service_day": ("日期", "day"),
    "slot": ("时段起", "from"),
    "arrivals": ("到达人数", "arriving"),
    "arrived": ("累计到达", "arrived so far"),
    "rate": ("累计到岗率(%)", "arrived so far (%)"),
}
SHEET_TITLES: dict[str, tuple[str, str]] = {
    "stays": ("在岗记录", "stays"),
    "events": ("签到记录", "records"),
    "attendance": ("出勤名单", "attendance"),
    "sites": ("按站点", "by site"),
    "units": ("按单位", "by unit"),
    "districts": ("按区", "by district"),
    "curve": ("到达曲线", "arrival curve"),
}
# Order of the attendance list within a site: who is missing first.
STATUS_ORDER = {"absent": 0, "no_departure": 1, "present": 2, "departed": 3, "visitor": 4}


class ExportError(ValueError):
    """A request for an export that cannot be made; the message says why."""


@dataclass(frozen=True)
class ExportRequest:
    first_day: date
    last_day: date
    site_ids: Sequence[str] = ()  # empty: every site
    what: What = "stays"

    def check(self) -> None:
        if self.first_day > self.last_day:
            raise ExportError(
                f"the range ends ({self.last_day}) before it starts ({self.first_day})"
            )
        if self.what not in WHATS:
            raise ExportError(f"unknown export {self.what!r}; use one of {', '.join(WHATS)}")

    def file_stem(self) -> str:
        sites = (
            "all-sites"
            if not self.site_ids
            else "-".join(file_name_part(s) for s in sorted(self.site_ids))[:60]
        )
        return f"{self.what}-{self.first_day.isoformat()}-{self.last_day.isoformat()}-{sites}"


def _headers(
    columns: dict[str, tuple[str, str]], language: Language, offset: str | None = None
) -> list[str]:
    """Headers in the sheet's language; a time column's says the offset (or zone) of its cells."""
    index = 0 if language == "zh-CN" else 1
    return [
        f"{labels[index]} ({offset})" if offset and key in TIME_COLUMNS else labels[index]
        for key, labels in columns.items()
    ]


def _title(key: str, language: Language) -> str:
    return SHEET_TITLES[key][0 if language == "zh-CN" else 1]


@dataclass(frozen=True)
class TimeShape:
    """How the times of one export are written: wall times under an offset the header says, or
    (when the zone's offset changes inside the range) times that carry their own offset."""

    zone: ZoneInfo
    label: str | None  # "UTC+08:00"; None: each time carries its offset

    @classmethod
    def of(cls, zone: ZoneInfo, request: ExportRequest) -> TimeShape:
        start = datetime.combine(request.first_day, datetime.min.time(), UTC) - timedelta(days=1)
        end = datetime.combine(request.last_day, datetime.min.time(), UTC) + timedelta(days=2)
        return cls(zone, zone_label(zone, start, end))

    @property
    def header(self) -> str:
        return self.label or self.zone.key

    def cell(self, value: datetime | None) -> datetime | None:
        local = _local(value, self.zone)
        if local is None or self.label is None:
            return local
        return local.replace(tzinfo=None)


def _local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone)


def _flag_list(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _recorded(by_hand: bool | None, language: Language) -> str:
    if by_hand is None:
        return ""
    return RECORDED["by_hand" if by_hand else "badge"][0 if language == "zh-CN" else 1]


def unknown_sites(engine: Engine, site_ids: Sequence[str]) -> list[str]:
    if not site_ids:
        return []
    with engine.connect() as conn:
        known = set(
            conn.execute(
                select(schema.sites.c.site_id).where(schema.sites.c.site_id.in_(list(site_ids)))
            ).scalars()
        )
        known |= set(
            conn.execute(
                select(schema.kiosks.c.site_id).where(schema.kiosks.c.site_id.in_(list(site_ids)))
            ).scalars()
        )
    return sorted(set(site_ids) - known)


def _stay_rows(
    engine: Engine, request: ExportRequest, shape: TimeShape, words: Words
) -> Iterator[list[Cell]]:
    st, c, s = schema.stays, schema.cadres, schema.sites
    query = (
        select(
            st.c.service_day,
            st.c.site_id,
            s.c.name.label("site_name"),
            st.c.cadre_id,
            c.c.name,
            c.c.unit,
            st.c.arrival_time,
            st.c.departure_time,
            st.c.duration_s,
            st.c.state,
            st.c.flags,
            st.c.arrival_kiosk_id,
            st.c.departure_kiosk_id,
            st.c.arrival_by_hand,
            st.c.departure_by_hand,
        )
        .select_from(
            st.outerjoin(c, c.c.cadre_id == st.c.cadre_id).outerjoin(s, s.c.site_id == st.c.site_id)
        )
        .where(and_(st.c.service_day >= request.first_day, st.c.service_day <= request.last_day))
        .order_by(st.c.service_day, st.c.site_id, st.c.cadre_id, st.c.arrival_time)
    )
    if request.site_ids:
        query = query.where(st.c.site_id.in_(list(request.site_ids)))
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=FETCH_ROWS).execute(query)
        for row in result:
            hours = round(row.duration_s / 3600, 2) if row.duration_s is not None else None
            yield [
                row.service_day,
                row.site_id,
                row.site_name or "",
                row.cadre_id,
                row.name or "",
                row.unit or "",
                shape.cell(row.arrival_time),
                shape.cell(row.departure_time),
                hours,
                words.stay_state(row.state),
                words.flags(_flag_list(row.flags)),
                row.arrival_kiosk_id or "",
                row.departure_kiosk_id or "",
                _recorded(row.arrival_by_hand, words.language),
                _recorded(row.departure_by_hand, words.language),
            ]


def _latest_corrections(engine: Engine, request: ExportRequest) -> dict[str, dict[str, Any]]:
    query = (
        select(schema.corrections)
        .where(
            schema.corrections.c.service_day >= request.first_day,
            schema.corrections.c.service_day <= request.last_day,
            schema.corrections.c.target_event_id.is_not(None),
        )
        .order_by(schema.corrections.c.correction_id)
    )
    if request.site_ids:
        query = query.where(schema.corrections.c.site_id.in_(list(request.site_ids)))
    with engine.connect() as conn:
        return {r.target_event_id: dict(r._mapping) for r in conn.execute(query)}


def _correction_text(correction: dict[str, Any] | None, shape: TimeShape, words: Words) -> str:
    if correction is None:
        return ""
    if correction["action"] == "void":
        return words.kind("void")
    when = shape.cell(correction["event_time"])
    shown = when.isoformat(sep=" ") if when else ""
    return f"{words.kind(correction['kind'])} {shown}".strip()


def _added_rows(
    engine: Engine, request: ExportRequest, shape: TimeShape, words: Words
) -> list[list[Cell]]:
    """Records staff added (no kiosk made them), shaped like kiosk records."""
    c = schema.cadres
    query = (
        select(schema.corrections, c.c.name)
        .select_from(schema.corrections.outerjoin(c, c.c.cadre_id == schema.corrections.c.cadre_id))
        .where(
            schema.corrections.c.action == "add",
            schema.corrections.c.service_day >= request.first_day,
            schema.corrections.c.service_day <= request.last_day,
        )
        .order_by(schema.corrections.c.correction_id)
    )
    if request.site_ids:
        query = query.where(schema.corrections.c.site_id.in_(list(request.site_ids)))
    with engine.connect() as conn:
        added = [r._mapping for r in conn.execute(query)]
    later = _latest_corrections(engine, request)
    rows: list[list[Cell]] = []
    for row in added:
        correction = later.get(row["new_event_id"])
        rows.append(
            [
                row["service_day"],
                row["site_id"],
                row["cadre_id"],
                row["name"] or "",
                words.kind(row["kind"]),
                shape.cell(row["event_time"]),
                None,
                words.time_status("staff"),
                "",
                None,
                words.source("staff"),
                row["staff_user"],
                row["reason"],
                "",
                row["new_event_id"],
                _correction_text(correction, shape, words),
                correction["reason"] if correction else "",
                correction["staff_user"] if correction else "",
                _recorded(True, words.language),
                "",
                "",
                "",
            ]
        )
    return rows


def _event_sort_key(row: Sequence[Cell]) -> tuple[Any, ...]:
    when = row[5]
    if isinstance(when, datetime) and when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return (row[0], row[1], row[2], when or datetime.min)


def _event_rows(
    engine: Engine, request: ExportRequest, shape: TimeShape, words: Words
) -> Iterator[list[Cell]]:
    added = sorted(_added_rows(engine, request, shape, words), key=_event_sort_key)
    # Both streams are in (day, site, cadre, time) order: merge them without sorting the million.
    return heapq.merge(_kiosk_rows(engine, request, shape, words), added, key=_event_sort_key)


def _kiosk_rows(
    engine: Engine, request: ExportRequest, shape: TimeShape, words: Words
) -> Iterator[list[Cell]]:
    e, c, p = schema.events, schema.cadres, schema.photos
    corrected = _latest_corrections(engine, request)
    verdicts = _latest_verdicts(engine, request)
    query = (
        select(e, c.c.name, p.c.sha256.label("photo_held"))
        .select_from(
            e.outerjoin(c, c.c.cadre_id == e.c.cadre_id).outerjoin(p, p.c.event_id == e.c.event_id)
        )
        .where(and_(e.c.service_day >= request.first_day, e.c.service_day <= request.last_day))
        .order_by(e.c.service_day, e.c.site_id, e.c.cadre_id, e.c.corrected_time)
    )
    if request.site_ids:
        query = query.where(e.c.site_id.in_(list(request.site_ids)))
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=FETCH_ROWS).execute(query)
        for row in result:
            correction = corrected.get(row.event_id)
            yield [
                row.service_day,
                row.site_id,
                row.cadre_id,
                row.name or "",
                words.kind(row.kind),
                shape.cell(row.corrected_time),
                # What the kiosk's clock said, on the same clock face as the corrected time:
                # the two differ by the kiosk clock's error.
                shape.cell(row.device_time),
                words.time_status(row.time_status),
                row.kiosk_id,
                row.seq,
                words.source(row.source),
                row.operator or "",
                row.reason or "",
                words.flags(_flag_list(row.flags)),
                row.event_id,
                _correction_text(correction, shape, words),
                correction["reason"] if correction else "",
                correction["staff_user"] if correction else "",
                _recorded(
                    _record_by_hand(row.kind, row.source, row.quarantine, correction),
                    words.language,
                ),
                row.quarantine or "",
                _photo_presence(row.photo_sha256, row.photo_held, words.language),
                _verdict_text(verdicts.get(row.event_id), words.language),
            ]


def _latest_verdicts(engine: Engine, request: ExportRequest) -> dict[str, dict[str, Any]]:
    """The newest photo verdict of each record in the export's days and sites."""
    r = schema.photo_reviews
    query = (
        select(r)
        .where(r.c.service_day >= request.first_day, r.c.service_day <= request.last_day)
        .order_by(r.c.review_id)
    )
    if request.site_ids:
        query = query.where(r.c.site_id.in_(list(request.site_ids)))
    with engine.connect() as conn:
        return {row.event_id: dict(row._mapping) for row in conn.execute(query)}


def _photo_presence(named: str | None, held: str | None, language: Language) -> str:
    if not named:
        return ""
    key = "held" if held == named else "missing"
    return PHOTO_PRESENCE[key][0 if language == "zh-CN" else 1]


def _verdict_text(verdict: dict[str, Any] | None, language: Language) -> str:
    if verdict is None:
        return ""
    said = VERDICT_WORDS[verdict["verdict"]][0 if language == "zh-CN" else 1]
    note = f": {verdict['note']}" if verdict["note"] else ""
    return f"{said}{note} ({verdict['staff_user']})"


def _record_by_hand(
    kind: str, source: str, quarantine: str | None, correction: dict[str, Any] | None
) -> bool | None:
    """How a kiosk record counts: on a badge, or on a person's word (entered by the lead, or
    its kind or time set by staff); None when it does not count as attendance at all."""
    if kind == "void" or quarantine:
        return None
    replaced = correction is not None and correction["action"] == "replace"
    return source not in BADGE_SOURCES or replaced


# ---------------------------------------------------------------------------------------------
# Attendance: who was expected, who came, who did not


@dataclass(frozen=True)
class Seen:
    """A cadre's stays at one site on one day, folded."""

    first_arrival: datetime | None
    last_departure: datetime | None
    seconds: int | None
    present: bool
    closed: bool
    by_hand: bool  # no arrival of theirs there that day rests on a badge: a person's word


def seen_on(
    conn: Connection,
    day: date,
    site_ids: Sequence[str],
    now: datetime,
    rules: StayRules,
    cadre_ids: Sequence[str] = (),
) -> dict[tuple[str, str], Seen]:
    """(site, cadre) -> their stays there that day, as the staff pages count them (only of
    `cadre_ids` when given: the read API asks a page of cadres at a time)."""
    st = schema.stays
    start, end = rules.day.bounds(day)
    now = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
    if start <= now < end:
        present = case(
            (and_(st.c.state == "open", st.c.arrival_time >= now - rules.longest_shift), 1),
            else_=0,
        )
    else:
        present = case((st.c.state == "__never__", 1), else_=0)
    query = (
        select(
            st.c.site_id,
            st.c.cadre_id,
            func.min(st.c.arrival_time).label("first_arrival"),
            func.max(st.c.departure_time).label("last_departure"),
            func.sum(st.c.duration_s).label("seconds"),
            func.max(present).label("present"),
            func.max(case((st.c.state == "closed", 1), else_=0)).label("closed"),
            func.min(case((st.c.arrival_by_hand.is_(True), 1), else_=0)).label("by_hand"),
        )
        .where(st.c.service_day == day)
        .group_by(st.c.site_id, st.c.cadre_id)
    )
    if site_ids:
        query = query.where(st.c.site_id.in_(list(site_ids)))
    if cadre_ids:
        query = query.where(st.c.cadre_id.in_(list(cadre_ids)))
    return {
        (r.site_id, r.cadre_id): Seen(
            r.first_arrival,
            r.last_departure,
            int(r.seconds) if r.seconds is not None else None,
            bool(r.present),
            bool(r.closed),
            bool(r.by_hand),
        )
        for r in conn.execute(query)
    }


def _status(seen: Seen | None) -> str:
    if seen is None:
        return "absent"
    if seen.present:
        return "present"
    if seen.closed:
        return "departed"
    return "no_departure"


@dataclass
class _Counts:
    expected: int = 0
    arrived: int = 0
    visitors: int = 0
    sites: int = 0
    by_hand: int = 0

    @property
    def absent(self) -> int:
        return self.expected - self.arrived

    @property
    def rate(self) -> float | None:
        return round(100 * self.arrived / self.expected, 1) if self.expected else None


@dataclass
class _Attendance:
    """One day's attendance, as the rows of every sheet."""

    people: list[list[Cell]]
    sites: list[list[Cell]]
    units: list[list[Cell]]
    districts: list[list[Cell]]
    curve: list[list[Cell]]


def _days(request: ExportRequest) -> Iterator[date]:
    day = request.first_day
    while day <= request.last_day:
        yield day
        day += timedelta(days=1)


class AttendanceBook:
    """The attendance of a range of days, made one day at a time: the list of people is
    yielded as it is written (a month of a whole city is a million rows), and each day's counts
    are kept for the sheets after it (a few hundred rows a day)."""

    def __init__(
        self,
        engine: Engine,
        request: ExportRequest,
        shape: TimeShape,
        words: Words,
        now: datetime,
        rules: StayRules,
    ) -> None:
        self.engine = engine
        self.request = request
        self.shape = shape
        self.words = words
        self.now = now
        self.rules = rules
        self.sites: list[list[Cell]] = []
        self.units: list[list[Cell]] = []
        self.districts: list[list[Cell]] = []
        self.curve: list[list[Cell]] = []

    def people(self) -> Iterator[list[Cell]]:
        c, s = schema.cadres, schema.sites
        request = self.request
        with self.engine.connect() as conn:
            site_query = select(s.c.site_id, s.c.name)
            roster_query = select(c.c.cadre_id, c.c.name, c.c.unit, c.c.site_id).where(
                c.c.site_id.is_not(None)
            )
            if request.site_ids:
                site_query = site_query.where(s.c.site_id.in_(list(request.site_ids)))
                roster_query = roster_query.where(c.c.site_id.in_(list(request.site_ids)))
            site_names = {r.site_id: r.name for r in conn.execute(site_query)}
            people = list(conn.execute(roster_query))
            names_of = {
                r.cadre_id: (r.name, r.unit)
                for r in conn.execute(select(c.c.cadre_id, c.c.name, c.c.unit))
            }
        site_ids = sorted(set(site_names) | set(request.site_ids) | {p.site_id for p in people})
        roster_by_site: dict[str, list[Any]] = defaultdict(list)
        for person in sorted(people, key=lambda r: r.cadre_id):
            roster_by_site[person.site_id].append(person)
        for day in _days(request):
            with self.engine.connect() as conn:
                seen = seen_on(conn, day, request.site_ids, self.now, self.rules)
            today = _attendance_of_day(
                day,
                site_ids,
                site_names,
                roster_by_site,
                names_of,
                seen,
                len(people),
                self.shape,
                self.words,
                self.rules,
            )
            self.sites.extend(today.sites)
            self.units.extend(today.units)
            self.districts.extend(today.districts)
            self.curve.extend(today.curve)
            yield from today.people


def _attendance_of_day(
    day: date,
    site_ids: Sequence[str],
    site_names: dict[str, str],
    roster_by_site: dict[str, list[Any]],
    names_of: dict[str, tuple[str, str]],
    seen: dict[tuple[str, str], Seen],
    expected_total: int,
    shape: TimeShape,
    words: Words,
    rules: StayRules,
) -> _Attendance:
    people: list[list[Cell]] = []
    sites: list[list[Cell]] = []
    units: dict[str, _Counts] = defaultdict(_Counts)
    districts: dict[str, _Counts] = defaultdict(_Counts)
    firsts: dict[str, datetime] = {}
    seen_at: dict[str, list[str]] = defaultdict(list)
    for (site_id, cadre_id), stays_there in seen.items():
        seen_at[site_id].append(cadre_id)
        arrival = stays_there.first_arrival
        if arrival is not None:
            earlier = firsts.get(cadre_id)
            if earlier is None or arrival < earlier:
                firsts[cadre_id] = arrival
    for site_id in site_ids:
        district = roster.district_of(site_id)
        on_roster = roster_by_site.get(site_id, [])
        counts = _Counts(expected=len(on_roster))
        rows: list[tuple[int, str, list[Cell]]] = []
        for person in on_roster:
            found = seen.get((site_id, person.cadre_id))
            status = _status(found)
            counts.arrived += found is not None
            counts.by_hand += found is not None and found.by_hand
            unit = units[person.unit or ""]
            unit.expected += 1
            unit.arrived += found is not None
            row = _person_row(
                day,
                district,
                site_id,
                site_names,
                person.cadre_id,
                person.name,
                person.unit,
                status,
                found,
                shape,
                words,
            )
            rows.append((STATUS_ORDER[status], person.cadre_id, row))
        rostered = {person.cadre_id for person in on_roster}
        for cadre_id in seen_at.get(site_id, []):
            if cadre_id in rostered:
                continue
            counts.visitors += 1
            name, unit_name = names_of.get(cadre_id, ("", ""))
            row = _person_row(
                day,
                district,
                site_id,
                site_names,
                cadre_id,
                name,
                unit_name,
                "visitor",
                seen[(site_id, cadre_id)],
                shape,
                words,
            )
            rows.append((STATUS_ORDER["visitor"], cadre_id, row))
        rows.sort(key=lambda r: (r[0], r[1]))
        people.extend(row for _order, _id, row in rows)
        sites.append(
            [
                day,
                district,
                site_id,
                site_names.get(site_id, ""),
                counts.expected,
                counts.arrived,
                counts.absent,
                counts.rate,
                counts.visitors,
                counts.by_hand,
            ]
        )
        total = districts[district]
        total.sites += 1
        total.expected += counts.expected
        total.arrived += counts.arrived
    return _Attendance(
        people,
        sites,
        [[day, unit, n.expected, n.arrived, n.absent, n.rate] for unit, n in sorted(units.items())],
        [
            [day, district, n.sites, n.expected, n.arrived, n.absent, n.rate]
            for district, n in sorted(districts.items())
        ],
        _curve(day, firsts.values(), expected_total, shape, rules),
    )


def _person_row(
    day: date,
    district: str,
    site_id: str,
    site_names: dict[str, str],
    cadre_id: str,
    name: str,
    unit: str,
    status: str,
    found: Seen | None,
    shape: TimeShape,
    words: Words,
) -> list[Cell]:
    return [
        day,
        district,
        site_id,
        site_names.get(site_id, ""),
        cadre_id,
        name or "",
        unit or "",
        words.attendance(status),
        shape.cell(found.first_arrival) if found else None,
        shape.cell(found.last_departure) if found else None,
        round(found.seconds / 3600, 2) if found and found.seconds is not None else None,
        _recorded(found.by_hand, words.language) if found else "",
    ]


def _curve(
    day: date,
    firsts: Iterable[datetime],
    expected: int,
    shape: TimeShape,
    rules: StayRules,
) -> list[list[Cell]]:
    """People arriving per slot of the service day (each counted once, at their first arrival
    at any of the sites), how many had arrived by the slot's end, and that as a share."""
    start, end = rules.day.bounds(day)
    width = timedelta(minutes=CURVE_MINUTES)
    slots = int((end - start) / width)
    counts = [0] * slots
    for first in firsts:
        index = int((first - start) / width)
        if 0 <= index < slots:
            counts[index] += 1
    rows: list[list[Cell]] = []
    arrived = 0
    for index, count in enumerate(counts):
        arrived += count
        slot = shape.cell(start + index * width)
        rows.append(
            [
                day,
                slot.strftime("%H:%M") if slot is not None and shape.label else slot,
                count,
                arrived,
                round(100 * arrived / expected, 1) if expected else None,
            ]
        )
    return rows


# ---------------------------------------------------------------------------------------------
# The tables of an export


def count_rows(engine: Engine, request: ExportRequest) -> int:
    """About how many rows the export's main table has: big ones are made in the background."""
    request.check()
    days = (request.last_day - request.first_day).days + 1
    with engine.connect() as conn:
        if request.what == "attendance":
            query = select(func.count()).select_from(schema.cadres)
            if request.site_ids:
                query = query.where(schema.cadres.c.site_id.in_(list(request.site_ids)))
            return int(conn.execute(query).scalar_one()) * days
        table = schema.stays if request.what == "stays" else schema.events
        query = (
            select(func.count())
            .select_from(table)
            .where(
                table.c.service_day >= request.first_day, table.c.service_day <= request.last_day
            )
        )
        if request.site_ids:
            query = query.where(table.c.site_id.in_(list(request.site_ids)))
        return int(conn.execute(query).scalar_one())


def build_tables(
    engine: Engine,
    request: ExportRequest,
    zone: ZoneInfo,
    language: Language = "zh-CN",
    now: datetime | None = None,
    rules: StayRules | None = None,
    on_row: Callable[[], None] | None = None,
) -> list[Table]:
    """The export's tables (attendance: the list, then counts per site, unit and district, then
    the arrival curve), their rows fetched as they are written. `on_row` hears each row of the
    main table (progress)."""
    request.check()
    words = Words(language)
    shape = TimeShape.of(zone, request)

    def counted(rows: Iterable[list[Cell]]) -> Iterator[list[Cell]]:
        for row in rows:
            if on_row is not None:
                on_row()
            yield row

    if request.what == "stays":
        return [
            Table(
                _headers(STAY_COLUMNS, language, shape.header),
                counted(_stay_rows(engine, request, shape, words)),
                title=_title("stays", language),
            )
        ]
    if request.what == "events":
        return [
            Table(
                _headers(EVENT_COLUMNS, language, shape.header),
                counted(_event_rows(engine, request, shape, words)),
                title=_title("events", language),
            )
        ]
    if rules is None:
        raise ExportError("an attendance export needs the stay rules (service day, shift)")
    book = AttendanceBook(engine, request, shape, words, now or datetime.now(UTC), rules)
    # The counts fill as the list is written: its sheet comes first, CSV holds only it.
    return [
        Table(
            _headers(ATTENDANCE_COLUMNS, language, shape.header),
            counted(book.people()),
            title=_title("attendance", language),
        ),
        Table(_headers(SITE_COUNT_COLUMNS, language), book.sites, title=_title("sites", language)),
        Table(_headers(UNIT_COUNT_COLUMNS, language), book.units, title=_title("units", language)),
        Table(
            _headers(DISTRICT_COUNT_COLUMNS, language),
            book.districts,
            title=_title("districts", language),
        ),
        Table(_curve_headers(language, shape), book.curve, title=_title("curve", language)),
    ]


def _curve_headers(language: Language, shape: TimeShape) -> list[str]:
    headers = _headers(CURVE_COLUMNS, language)
    headers[1] = f"{headers[1]} ({shape.header})"
    return headers


def build_table(
    engine: Engine,
    request: ExportRequest,
    zone: ZoneInfo,
    language: Language = "zh-CN",
    now: datetime | None = None,
    rules: StayRules | None = None,
) -> Table:
    """The export's main table (the only one of stays and records exports)."""
    return build_tables(engine, request, zone, language, now, rules)[0]
