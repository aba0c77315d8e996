"""Exports for a range of service days and some sites: stays or records, as rows for sync/tabular.

Used by the staff pages and by `central export`. Times are given in the centre's time zone: an
XLSX cell shows the local wall time, a CSV cell the ISO time with its offset. Column headers are in
Chinese or English; values stay as stored (ids, kinds), so a sheet can be read by a program too.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, select

from central.db import schema
from central.stays.pairing import BADGE_SOURCES
from sync.tabular import Cell, Table, file_name_part

What = Literal["stays", "events"]
WHATS: tuple[str, ...] = ("stays", "events")
Language = Literal["zh-CN", "en"]
FETCH_ROWS = 5_000

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
    "device_time": ("签到机时间", "kiosk clock time"),
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
}

# How a record was made, in the sheet's language: a badge proves it, or a person's word does.
RECORDED: dict[str, tuple[str, str]] = {
    "badge": ("胸卡", "badge"),
    "by_hand": ("手工录入", "by hand"),
}


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


def _headers(columns: dict[str, tuple[str, str]], language: Language) -> list[str]:
    index = 0 if language == "zh-CN" else 1
    return [labels[index] for labels in columns.values()]


def _local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone)


def _flags(text: str | None) -> str:
    if not text:
        return ""
    try:
        value = json.loads(text)
    except ValueError:
        return ""
    return " ".join(str(v) for v in value) if isinstance(value, list) else ""


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
    engine: Engine, request: ExportRequest, zone: ZoneInfo, language: Language
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
                _local(row.arrival_time, zone),
                _local(row.departure_time, zone),
                hours,
                row.state,
                _flags(row.flags),
                row.arrival_kiosk_id or "",
                row.departure_kiosk_id or "",
                _recorded(row.arrival_by_hand, language),
                _recorded(row.departure_by_hand, language),
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


def _correction_text(correction: dict[str, Any] | None, zone: ZoneInfo) -> str:
    if correction is None:
        return ""
    if correction["action"] == "void":
        return "void"
    when = _local(correction["event_time"], zone)
    return f"{correction['kind']} {when.isoformat() if when else ''}".strip()


def _added_rows(
    engine: Engine, request: ExportRequest, zone: ZoneInfo, language: Language
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
                row["kind"],
                _local(row["event_time"], zone),
                None,
                "staff",
                "",
                None,
                "staff",
                row["staff_user"],
                row["reason"],
                "",
                row["new_event_id"],
                _correction_text(correction, zone),
                correction["reason"] if correction else "",
                correction["staff_user"] if correction else "",
                _recorded(True, language),
                "",
            ]
        )
    return rows


def _event_sort_key(row: Sequence[Cell]) -> tuple[Any, ...]:
    return (row[0], row[1], row[2], row[5] or datetime.min.replace(tzinfo=UTC))


def _event_rows(
    engine: Engine, request: ExportRequest, zone: ZoneInfo, language: Language
) -> Iterator[list[Cell]]:
    added = sorted(_added_rows(engine, request, zone, language), key=_event_sort_key)
    # Both streams are in (day, site, cadre, time) order: merge them without sorting the million.
    return heapq.merge(_kiosk_rows(engine, request, zone, language), added, key=_event_sort_key)


def _kiosk_rows(
    engine: Engine, request: ExportRequest, zone: ZoneInfo, language: Language
) -> Iterator[list[Cell]]:
    e, c = schema.events, schema.cadres
    corrected = _latest_corrections(engine, request)
    query = (
        select(e, c.c.name)
        .select_from(e.outerjoin(c, c.c.cadre_id == e.c.cadre_id))
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
                row.kind,
                _local(row.corrected_time, zone),
                # As the kiosk's clock showed it, with the offset it wrote.
                _device_time(row.device_time, row.device_utc_offset_min),
                row.time_status,
                row.kiosk_id,
                row.seq,
                row.source,
                row.operator or "",
                row.reason or "",
                _flags(row.flags),
                row.event_id,
                _correction_text(correction, zone),
                correction["reason"] if correction else "",
                correction["staff_user"] if correction else "",
                _recorded(
                    _record_by_hand(row.kind, row.source, row.quarantine, correction), language
                ),
                row.quarantine or "",
            ]


def _record_by_hand(
    kind: str, source: str, quarantine: str | None, correction: dict[str, Any] | None
) -> bool | None:
    """How a kiosk record counts: on a badge, or on a person's word (entered by the lead, or
    its kind or time set by staff); None when it does not count as attendance at all."""
    if kind == "void" or quarantine:
        return None
    replaced = correction is not None and correction["action"] == "replace"
    return source not in BADGE_SOURCES or replaced


def _device_time(value: datetime, offset_min: int) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(timezone(timedelta(minutes=offset_min)))


def build_table(
    engine: Engine, request: ExportRequest, zone: ZoneInfo, language: Language = "zh-CN"
) -> Table:
    """The rows of the export, fetched lazily as the table is written."""
    request.check()
    if request.what == "stays":
        return Table(
            _headers(STAY_COLUMNS, language),
            _stay_rows(engine, request, zone, language),
            title="stays",
        )
    return Table(
        _headers(EVENT_COLUMNS, language),
        _event_rows(engine, request, zone, language),
        title="records",
    )
