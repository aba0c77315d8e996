"""The lead's export: every event of a range of days as CSV or XLSX, with the names, statuses
and flags in the page's language (the same writer as the centre's, sync/tabular.py)."""

from __future__ import annotations

from datetime import date, timedelta

from flask_babel import gettext as _

from kiosk.web.common import services
from kiosk.web.lead_day import person
from kiosk.web.present import flag_text, kind_text, source_text
from sync import tabular

EXPORT_COLUMNS = (
    ("date", "Date"),
    ("time", "Time"),
    ("cadre_id", "ID"),
    ("name", "Name"),
    ("unit", "Unit"),
    ("kind", "Kind"),
    ("source", "Source"),
    ("clock_trusted", "Clock trusted"),
    ("operator", "Operator"),
    ("reason", "Reason"),
    ("status", "Status"),
    ("flags", "Flags"),
    ("device_time", "Device time"),
    ("seq", "Seq"),
    ("event_id", "Event ID"),
    ("corrects", "Corrects"),
)


def column_titles() -> list[str]:
    titles = {
        "date": _("Date"),
        "time": _("Time"),
        "cadre_id": _("ID"),
        "name": _("Name"),
        "unit": _("Unit"),
        "kind": _("Kind"),
        "source": _("Source"),
        "clock_trusted": _("Clock trusted"),
        "operator": _("Operator"),
        "reason": _("Reason"),
        "status": _("Status"),
        "flags": _("Flags"),
        "device_time": _("Device time"),
        "seq": _("Seq"),
        "event_id": _("Event ID"),
        "corrects": _("Corrects"),
    }
    return [titles[key] for key, _title in EXPORT_COLUMNS]


def export_rows(first: date, last: date) -> list[list[tabular.Cell]]:
    kiosk = services()
    rules = kiosk.rules
    rows: list[list[tabular.Cell]] = []
    day = first
    while day <= last:
        events = rules.events_of_day(day)
        voided = {str(e.corrects) for e in events if e.kind == "void" and e.corrects}
        replaced = {str(e.corrects) for e in events if e.kind != "void" and e.corrects}
        for event in sorted(events, key=lambda e: e.seq):
            when = rules.local(rules.true_time(event))
            who = person(event.cadre_id)
            status = ""
            if str(event.event_id) in voided:
                status = _("voided")
            elif str(event.event_id) in replaced:
                status = _("corrected")
            rows.append(
                [
                    day.isoformat(),
                    when.strftime("%H:%M:%S"),
                    event.cadre_id,
                    who.name if who.name != event.cadre_id else "",
                    who.unit,
                    kind_text(event.kind),
                    source_text(event.source),
                    _("yes") if event.clock_trusted else _("no"),
                    event.operator or "",
                    event.reason or "",
                    status,
                    ", ".join(flag_text(f) for f in event.flags),
                    event.device_time.isoformat(),
                    event.seq,
                    str(event.event_id),
                    str(event.corrects) if event.corrects else "",
                ]
            )
        day += timedelta(days=1)
    return rows
