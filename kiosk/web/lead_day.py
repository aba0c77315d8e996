"""The lead's day: who is present, departed, left no departure or is absent, and the day's log.

Built from the rules' presence and the roster at each request; shared by the overview page, its
JSON API and the export. Call inside a request of the lead's blueprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import abort
from flask_babel import gettext as _

from kiosk.rules import FLAG_OPERATOR_TIME
from kiosk.web.common import services
from kiosk.web.present import duration, flag_text, hm, kind_text, source_text
from sync.events import EARLIEST_TIME, LATEST_TIME, Event


@dataclass
class Person:
    cadre_id: str
    name: str
    unit: str
    arrived: str = ""
    departed: str = ""
    worked: str = ""
    note: str = ""
    since_iso: str = ""


def today() -> date:
    kiosk = services()
    return kiosk.rules.service_day(kiosk.keeper.read().shown)


def person(cadre_id: str) -> Person:
    roster = services().roster.current
    entry = roster.entry(cadre_id)
    # A valid badge of another site is accepted and flagged; the lead should see that at once.
    unit = (entry.unit if entry else "") if roster.on_site(cadre_id) else flag_text("not_on_roster")
    return Person(cadre_id, entry.name if entry else cadre_id, unit)


def day_summary(day: date) -> dict[str, Any]:
    kiosk = services()
    rules = kiosk.rules
    presence = rules.presence(day)
    present, departed, no_departure = [], [], []
    for cadre_id, state in presence.items():
        who = person(cadre_id)
        if state.arrived is not None:
            who.arrived = hm(state.arrived)
        if state.state == "departed":
            who.departed = hm(state.since)
            who.worked = duration(state.worked) if state.worked is not None else ""
            departed.append(who)
        elif state.state == "present":
            present.append(who)
        else:
            who.since_iso = state.since.strftime("%Y-%m-%dT%H:%M")
            no_departure.append(who)
    # Yesterday's arrivals never closed are today's work for the lead too.
    for cadre_id, state in rules.presence(day - timedelta(days=1)).items():
        if state.state in ("present", "no_departure") and cadre_id not in presence:
            who = person(cadre_id)
            who.arrived = state.since.strftime("%m-%d %H:%M")
            who.since_iso = state.since.strftime("%Y-%m-%dT%H:%M")
            who.note = _("since yesterday")
            no_departure.append(who)
    absent = [person(c) for c in rules.absent(day)]
    by_name = lambda p: (p.name, p.cadre_id)  # noqa: E731
    return {
        "day": day,
        "present": sorted(present, key=by_name),
        "departed": sorted(departed, key=by_name),
        "no_departure": sorted(no_departure, key=by_name),
        "absent": sorted(absent, key=by_name),
        "arrived_count": len(present)
        + len([p for p in departed if p.arrived])
        + len([p for p in no_departure if not p.note]),
    }


@dataclass
class LogRow:
    event_id: str
    seq: int
    time: str
    when_iso: str
    cadre_id: str
    name: str
    kind: str
    kind_label: str
    source: str
    operator: str
    reason: str
    flags: str
    voided: bool
    replaced: bool
    note: str


def log_rows(events: list[Event]) -> list[LogRow]:
    kiosk = services()
    rules = kiosk.rules
    voided = {str(e.corrects) for e in events if e.kind == "void" and e.corrects}
    replaced = {str(e.corrects) for e in events if e.kind != "void" and e.corrects}
    by_id = {str(e.event_id): e for e in events}
    rows = []
    for event in sorted(events, key=lambda e: e.seq):
        when = rules.local(rules.true_time(event))
        note = ""
        if event.corrects:
            target = by_id.get(str(event.corrects))
            target_text = (
                f"{kind_text(target.kind)} {hm(rules.local(rules.true_time(target)))}"
                if target
                else str(event.corrects)[:8]
            )
            note = (
                _("voids %(what)s", what=target_text)
                if event.kind == "void"
                else _("replaces %(what)s", what=target_text)
            )
        who = person(event.cadre_id)
        rows.append(
            LogRow(
                event_id=str(event.event_id),
                seq=event.seq,
                time=hm(when),
                when_iso=when.strftime("%Y-%m-%dT%H:%M"),
                cadre_id=event.cadre_id,
                name=who.name,
                kind=event.kind,
                kind_label=kind_text(event.kind),
                source=source_text(event.source),
                operator=event.operator or "",
                reason=event.reason or "",
                flags=", ".join(flag_text(f) for f in event.flags if f != FLAG_OPERATOR_TIME),
                voided=str(event.event_id) in voided,
                replaced=str(event.event_id) in replaced,
                note=note,
            )
        )
    return rows


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
