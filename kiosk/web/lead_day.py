"""The lead's day: who is present, departed, left no departure or is absent, the roster search,
and the day's log a page at a time.

Built from the rules' presence and the roster at each request; shared by the overview page, its
JSON API and the export. Names sort by pinyin (sync/names.py). Call inside a request of the lead's
blueprint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask import abort
from flask_babel import gettext as _

from kiosk.rules import FLAG_NOT_ON_ROSTER, FLAG_OPERATOR_TIME, standing
from kiosk.web.common import services
from kiosk.web.present import (
    duration,
    flag_text,
    hm,
    kind_text,
    operator_text,
    source_text,
    status_text,
)
from sync.events import EARLIEST_TIME, LATEST_TIME, Event
from sync.names import fold_query, matches_folded, sort_key

LOG_PAGE_SIZE = 50
FIND_LIMIT = 30


@dataclass
class Person:
    cadre_id: str
    name: str
    unit: str
    # A valid badge of another site: accepted, and the lead should see that at once.
    visitor: bool = False
    arrived: str = ""
    departed: str = ""
    worked: str = ""
    note: str = ""
    since_iso: str = ""
    state: str = ""  # present, departed, no_departure or absent (the search's answer)
    # The same moments for programs: ISO 8601 in the site's zone, and seconds worked.
    arrived_at: datetime | None = None
    departed_at: datetime | None = None
    worked_s: float | None = None
    # The gates (kiosk ids) of the arrival and the departure shown: this kiosk's or a peer's.
    arrived_gate: str = ""
    departed_gate: str = ""

    @property
    def named(self) -> bool:
        """Whether a name is known (else `name` is the id)."""
        return self.name != self.cadre_id

    def as_json(self) -> dict[str, Any]:
        return {
            "cadre_id": self.cadre_id,
            "name": self.name if self.named else None,
            "unit": self.unit or None,
            "on_roster": not self.visitor,
            "state": self.state or None,
            "arrived_at": _iso(self.arrived_at),
            "departed_at": _iso(self.departed_at),
            "worked_s": self.worked_s,
            "arrived_gate": self.arrived_gate or None,
            "departed_gate": self.departed_gate or None,
        }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat(timespec="seconds") if when else None


def today() -> date:
    kiosk = services()
    return kiosk.rules.service_day(kiosk.keeper.read().shown)


def person(cadre_id: str) -> Person:
    kiosk = services()
    roster = kiosk.roster.current
    entry = roster.entry(cadre_id) or kiosk.visitors.entry(cadre_id)
    on_site = roster.on_site(cadre_id)
    return Person(
        cadre_id,
        entry.name if entry else cadre_id,
        entry.unit if entry else "",
        visitor=not on_site,
    )


def by_name(who: Person) -> tuple[Any, ...]:
    return (sort_key(who.name), who.cadre_id)


def day_summary(day: date) -> dict[str, Any]:
    kiosk = services()
    rules = kiosk.rules
    presence = rules.presence(day)
    present, departed, no_departure = [], [], []
    own = kiosk.settings.kiosk_id
    for cadre_id, state in presence.items():
        who = person(cadre_id)
        if state.arrived is not None:
            who.arrived = hm(state.arrived)
            who.arrived_at = state.arrived
            who.arrived_gate = state.arrived_gate or own
        if state.state == "departed":
            who.departed = hm(state.since)
            who.departed_at = state.since
            who.departed_gate = state.gate or own
            who.worked = duration(state.worked) if state.worked is not None else ""
            who.worked_s = state.worked.total_seconds() if state.worked is not None else None
            who.state = "departed"
            departed.append(who)
        elif state.state == "present":
            who.state = "present"
            present.append(who)
        else:
            who.since_iso = state.since.strftime("%Y-%m-%dT%H:%M")
            who.state = "no_departure"
            no_departure.append(who)
    # Yesterday's arrivals never closed are today's work for the lead too.
    for cadre_id, state in rules.presence(day - timedelta(days=1)).items():
        if state.state in ("present", "no_departure") and cadre_id not in presence:
            who = person(cadre_id)
            who.arrived = state.since.strftime("%m-%d %H:%M")
            who.arrived_at = state.since
            who.since_iso = state.since.strftime("%Y-%m-%dT%H:%M")
            who.note = _("since yesterday")
            who.state = "no_departure"
            no_departure.append(who)
    absent = [person(c) for c in rules.absent(day)]
    for who in absent:
        who.state = "absent"
    peers = kiosk.peers
    conflicts = []
    if peers is not None:
        for conflict in peers.store.conflicts():
            if rules.service_day(conflict.second_time) == day:
                conflicts.append(
                    {
                        "who": person(conflict.cadre_id),
                        "kind": conflict.kind,
                        "first_gate": conflict.first_kiosk,
                        "first_time": hm(rules.local(conflict.first_time)),
                        "second_gate": conflict.second_kiosk,
                        "second_time": hm(rules.local(conflict.second_time)),
                    }
                )
    return {
        "day": day,
        # Several gates: each time says where (this kiosk's or a peer's).
        "gates": peers is not None and bool(peers.directory.peers()),
        "conflicts": conflicts,
        "present": sorted(present, key=by_name),
        "departed": sorted(departed, key=by_name),
        "no_departure": sorted(no_departure, key=by_name),
        "absent": sorted(absent, key=by_name),
        "arrived_count": len(present)
        + len([p for p in departed if p.arrived])
        + len([p for p in no_departure if not p.note]),
    }


def find_people(query: str, summary: dict[str, Any]) -> tuple[list[Person], int]:
    """People of the roster, and anyone seen on the day, that the query finds (by characters,
    id, pinyin or initials), in pinyin order, at most FIND_LIMIT; and how many matched."""
    wanted = fold_query(query)
    if not wanted:
        return [], 0
    seen: dict[str, Person] = {}
    for key in ("present", "no_departure", "departed", "absent"):
        for who in summary[key]:
            seen.setdefault(who.cadre_id, who)
    roster = services().roster.current
    for cadre_id in roster.cadres:
        if cadre_id not in seen and roster.on_site(cadre_id):
            who = person(cadre_id)
            who.state = "absent"
            seen[cadre_id] = who
    found = [p for p in seen.values() if matches_folded(wanted, p.name, p.cadre_id)]
    found.sort(key=by_name)
    return found[:FIND_LIMIT], len(found)


# ------------------------------------------------------------------ the log


@dataclass
class LogRow:
    event_id: str
    seq: int
    time: str
    when: datetime
    when_iso: str
    cadre_id: str
    name: str
    visitor: bool
    kind: str
    kind_label: str
    source: str
    source_label: str
    operator: str
    reason: str
    flags: list[str]
    flag_labels: list[str]
    status: str | None
    status_label: str
    note: str
    undo: bool = False  # a void the lead may still undo
    is_undo: bool = False  # a void of a void
    corrects: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    photo: str | None = None  # sha256 of the photo the kiosk still holds


@dataclass
class LogPage:
    rows: list[LogRow]
    total: int  # events of the day
    matched: int  # events the search found
    older: int | None  # the `before` seq of the next older page, None at the end
    newer: bool  # whether a newer page exists
    query: str


def _target_words(target: Event | None, rows_by_id: dict[str, Event]) -> str:
    if target is None:
        return str(_("a record not on this kiosk"))
    rules = services().rules
    who = person(target.cadre_id)
    if target.kind == "void" and target.corrects is not None:
        inner = rules.log.find(target.corrects) if str(target.corrects) not in rows_by_id else None
        inner = inner or rows_by_id.get(str(target.corrects))
        return str(_("the void of %(what)s", what=_target_words(inner, rows_by_id)))
    when = hm(rules.local(rules.true_time(target)))
    return f"{kind_text(target.kind)} {when} · {who.name}"


def log_rows(events: list[Event], context: list[Event] | None = None) -> list[LogRow]:
    """Rows for `events` (in the order given); `context` (default: `events`) is what voids and
    corrections are read against."""
    kiosk = services()
    rules = kiosk.rules
    known = context if context is not None else events
    status = standing(known)
    by_id = {str(e.event_id): e for e in known}
    rows = []
    for event in events:
        when = rules.local(rules.true_time(event))
        event_id = str(event.event_id)
        state: str | None = status.get(event_id)
        if state is None and event.kind != "void" and rules.log.is_voided(event.cadre_id, event_id):
            state = "voided"  # by a void recorded on a later day
        note = ""
        is_undo = False
        if event.corrects is not None:
            target_id = str(event.corrects)
            target = by_id.get(target_id) or rules.log.find(target_id)
            if target is not None:
                by_id.setdefault(target_id, target)
            is_undo = event.kind == "void" and target is not None and target.kind == "void"
            what = _target_words(target, by_id)
            if is_undo:
                note = _("undoes %(what)s", what=what)
            elif event.kind == "void":
                note = _("voids %(what)s", what=what)
            else:
                note = _("replaces %(what)s", what=what)
        who = person(event.cadre_id)
        flags = [f for f in event.flags if f != FLAG_OPERATOR_TIME]
        rows.append(
            LogRow(
                event_id=event_id,
                seq=event.seq,
                time=hm(when),
                when=when,
                when_iso=when.strftime("%Y-%m-%dT%H:%M"),
                cadre_id=event.cadre_id,
                name=who.name,
                visitor=who.visitor or FLAG_NOT_ON_ROSTER in event.flags,
                kind=event.kind,
                kind_label=kind_text(event.kind),
                source=event.source,
                source_label=source_text(event.source),
                operator=operator_text(event.operator),
                reason=event.reason or "",
                flags=flags,
                flag_labels=[flag_text(f) for f in flags],
                status=state,
                status_label=status_text(state),
                note=note,
                undo=event.kind == "void"
                and not is_undo
                and state is None
                and rules.log.can_undo(event.cadre_id, event_id),
                is_undo=is_undo,
                corrects=str(event.corrects) if event.corrects else None,
                photo=event.photo_sha256 if _photo_kept(event.photo_sha256) else None,
            )
        )
    return rows


def _photo_kept(sha256: str | None) -> bool:
    store = services().photos
    return sha256 is not None and store is not None and store.find(sha256) is not None


def _event_matches(event: Event, wanted: str) -> bool:
    who = person(event.cadre_id)
    return matches_folded(
        wanted,
        who.name,
        event.cadre_id,
        event.operator or "",
        event.reason or "",
        kind_text(event.kind),
    )


def log_page(day: date, query: str = "", before: int | None = None) -> LogPage:
    """The day's log, newest first, LOG_PAGE_SIZE rows from `before` (a seq) down; the search
    finds rows by name, id, pinyin, operator, reason or kind."""
    events = services().rules.events_of_day(day)
    newest_first = sorted(events, key=lambda e: e.seq, reverse=True)
    wanted = fold_query(query)
    if wanted:
        newest_first = [e for e in newest_first if _event_matches(e, wanted)]
    start = 0
    if before is not None:
        start = next((i for i, e in enumerate(newest_first) if e.seq < before), len(newest_first))
    chosen = newest_first[start : start + LOG_PAGE_SIZE]
    rest = newest_first[start + LOG_PAGE_SIZE :]
    return LogPage(
        rows=log_rows(chosen, events),
        total=len(events),
        matched=len(newest_first),
        older=chosen[-1].seq if chosen and rest else None,
        newer=start > 0,
        query=query,
    )


def parse_day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    # A day at the calendar's ends (0001-01-01) has no day before it to look at.
    if day is None or not EARLIEST_TIME.date() <= day <= LATEST_TIME.date():
        abort(400, description=_("Dates are written YYYY-MM-DD."))
    return day


def offset_label(when: datetime) -> str:
    """The site's UTC offset at `when`, as people write it: "UTC+08:00"."""
    offset = services().rules.local(when).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"
