"""The lead's export: every event of a range of days as CSV or XLSX, in the page's language.

Every cell a person reads is worded through the catalogue (kinds, sources, flags, statuses, yes
and no), never a code. Times are the site's, written once as an offset in the time column's
title; in XLSX the date, time and kiosk-clock cells are real spreadsheet dates (sortable), with
the header frozen and filterable (sync/tabular.py, the same writer as the centre's).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from flask_babel import gettext as _

from kiosk.rules import standing
from kiosk.web.common import services
from kiosk.web.lead_day import log_rows, offset_label, person
from kiosk.web.present import flag_text, kind_text, operator_text, source_text, status_text
from sync import tabular

EXPORT_COLUMNS = (
    "date",
    "time",
    "cadre_id",
    "name",
    "unit",
    "on_roster",
    "kind",
    "source",
    "clock_trusted",
    "operator",
    "reason",
    "status",
    "note",
    "flags",
    "device_time",
    "seq",
    "event_id",
    "corrects",
)


def column_titles(offset: str) -> list[str]:
    titles = {
        "date": _("Date"),
        "time": _("Time (%(offset)s)", offset=offset),
        "cadre_id": _("ID"),
        "name": _("Name"),
        "unit": _("Unit"),
        "on_roster": _("On this site's roster"),
        "kind": _("Kind"),
        "source": _("Source"),
        "clock_trusted": _("Clock trusted"),
        "operator": _("Operator"),
        "reason": _("Reason"),
        "status": _("Status"),
        "note": _("Note"),
        "flags": _("Flags"),
        "device_time": _("Kiosk clock when recorded"),
        "seq": _("Seq"),
        "event_id": _("Event ID"),
        "corrects": _("Corrects event ID"),
    }
    return [str(titles[key]) for key in EXPORT_COLUMNS]


def export_rows(first: date, last: date) -> Iterator[list[tabular.Cell]]:
    kiosk = services()
    rules = kiosk.rules
    # The same few words on every row: translated once (a gettext call is ~0.3 ms).
    cache: dict[tuple[str, str], str] = {}

    def word(kind: str, code: str) -> str:
        key = (kind, code)
        if key not in cache:
            cache[key] = {
                "kind": kind_text,
                "source": source_text,
                "flag": flag_text,
                "status": status_text,
                "operator": operator_text,
            }[kind](code)
        return cache[key]

    yes, no = str(_("yes")), str(_("no"))
    day = first
    while day <= last:
        events = sorted(rules.events_of_day(day), key=lambda e: e.seq)
        status = standing(events)
        # Only voids and corrections have a note ("voids arrival 05:20 · 宋昕").
        correcting = [e for e in events if e.corrects is not None]
        notes = {row.event_id: row.note for row in log_rows(correcting, events)}
        for event in events:
            when = rules.local(rules.true_time(event))
            who = person(event.cadre_id)
            yield [
                day,
                when.time().replace(microsecond=0),
                event.cadre_id,
                who.name if who.named else "",
                who.unit,
                no if who.visitor else yes,
                word("kind", event.kind),
                word("source", event.source),
                yes if event.clock_trusted else no,
                word("operator", event.operator or ""),
                event.reason or "",
                word("status", status.get(str(event.event_id)) or ""),
                notes.get(str(event.event_id), ""),
                ", ".join(word("flag", f) for f in event.flags),
                rules.local(event.device_time).replace(microsecond=0),
                event.seq,
                str(event.event_id),
                str(event.corrects) if event.corrects else "",
            ]
        day += timedelta(days=1)


def export_table(first: date, last: date) -> tabular.Table:
    now = services().keeper.read().shown
    return tabular.Table(
        columns=column_titles(offset_label(now)),
        rows=export_rows(first, last),
        title=first.isoformat() if first == last else f"{first.isoformat()}_{last.isoformat()}",
    )
