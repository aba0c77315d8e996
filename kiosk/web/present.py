"""Words for what the rules decided: scan outcomes, refusal reasons, flags, durations, readiness.

Everything a person reads goes through gettext here or in the templates, so the zh-CN catalogue
covers it. Call these inside an app context with the wanted locale (see i18n.in_locale).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from kiosk.rules import STORE_REASONS, ScanOutcome

REASONS = {
    "ok": _l("Valid badge"),
    "foreign": _l("Not a cadre badge"),
    "malformed": _l("Damaged or incomplete badge code"),
    "wrong_version": _l("Badge format not supported by this kiosk"),
    "unknown_key": _l("Badge signed by an unknown key"),
    "bad_signature": _l("Badge signature does not match (forged or altered)"),
    "revoked": _l("This badge has been revoked"),
    "store_full": _l("Not recorded: the kiosk's disk is full. Please tell the site lead."),
    "store_read_only": _l(
        "Not recorded: the kiosk's disk is read-only. Please tell the site lead."
    ),
    "store_failed": _l("Not recorded: the kiosk could not save. Please tell the site lead."),
    "repeat": _l("Scanned again too soon"),
}

FLAGS = {
    "not_on_roster": _l("Not on this site's roster"),
    "previous_arrival_without_departure": _l("Last arrival had no departure"),
    "departure_without_arrival": _l("No arrival recorded before"),
    "time_entered_by_operator": _l("Time entered by the site lead"),
    "clock_uncertain": _l("Kiosk clock uncertain"),
    "kind_chosen_on_screen": _l("Kind chosen on the screen"),
    "no_photo": _l("No photo kept"),
    "no_face": _l("No face in view"),
    "several_badges": _l("Same face showed another badge just before"),
}

# What became of a record (kiosk/rules/corrected.py).
STATUSES = {
    "voided": _l("voided"),
    "replaced": _l("corrected"),
    "undone": _l("undone"),
}

# Why the rules refused a lead's entry (kiosk.rules.LeadRefusal codes).
LEAD_REFUSALS = {
    "operator_and_reason_required": _l("Give a reason."),
    "future_time": _l("A time in the future cannot be entered."),
    "no_such_event": _l("No such event."),
    "already_voided": _l("This record is voided already."),
    "undo_of_undo": _l("An undo cannot be undone: void the record again instead."),
    "undo_not_possible": _l(
        "This void is too old to undo on the kiosk: ask the centre to correct the record."
    ),
    "cannot_correct_void": _l("A void cannot be corrected: undo it instead."),
}

# The operator a lead who gave no name at login is recorded as (stored in English, as data).
DEFAULT_OPERATOR = "site lead"

KINDS = {
    "arrival": _l("Arrival"),
    "departure": _l("Departure"),
    "void": _l("Void"),
}

SOURCES = {
    "camera": _l("Camera"),
    "wedge": _l("Barcode scanner"),
    "manual": _l("By hand"),
}


def status_text(status: str | None) -> str:
    text = STATUSES.get(status or "")
    return str(text) if text is not None else ""


def refusal_text(code: str) -> str:
    text = LEAD_REFUSALS.get(code)
    return str(text) if text is not None else str(_("Not possible now"))


def operator_text(operator: str | None) -> str:
    if operator == DEFAULT_OPERATOR:
        return str(_("site lead"))
    return operator or ""


def reason_text(reason: str, fallback: str = "") -> str:
    text = REASONS.get(reason)
    return str(text) if text is not None else (fallback or reason)


def flag_text(flag: str) -> str:
    text = FLAGS.get(flag)
    return str(text) if text is not None else flag


def kind_text(kind: str) -> str:
    text = KINDS.get(kind)
    return str(text) if text is not None else kind


def source_text(source: str) -> str:
    text = SOURCES.get(source)
    return str(text) if text is not None else source


def hm(when: datetime) -> str:
    return when.strftime("%H:%M")


def duration(span: timedelta) -> str:
    minutes = max(0, int(span.total_seconds() // 60))
    hours, rest = divmod(minutes, 60)
    if hours == 0:
        return str(_("%(minutes)d min", minutes=rest))
    return str(_("%(hours)d h %(minutes)02d min", hours=hours, minutes=rest))


def scan_message(outcome: ScanOutcome, previous_kind: str | None = None) -> dict[str, Any]:
    """The kiosk screen's words for one outcome: a headline, the name, a detail line, an extra."""
    name = outcome.name or outcome.cadre_id or ""
    extra_parts = [flag_text(f) for f in outcome.flags if f in FLAGS]
    when = hm(outcome.time_shown)
    if outcome.result == "arrival":
        headline = _("Welcome")
        detail = _("Arrived %(time)s", time=when)
    elif outcome.result == "departure":
        headline = _("Goodbye")
        detail = _("Left %(time)s", time=when)
        if outcome.worked is not None:
            extra_parts.insert(0, _("Worked %(duration)s", duration=duration(outcome.worked)))
    elif outcome.result == "repeat":
        before = hm(outcome.previous_time) if outcome.previous_time else when
        if previous_kind == "departure":
            headline = _("Already checked out")
            detail = _("Left %(time)s", time=before)
        else:
            headline = _("Already checked in")
            detail = _("Arrived %(time)s", time=before)
    else:
        headline = _("Not accepted")
        detail = reason_text(outcome.reason, outcome.message)
        if outcome.reason not in STORE_REASONS:
            extra_parts.append(_("Please see the site lead."))
        # A refused badge's name is not shown: the code was not proven to be that person's.
        name = ""
    return {
        "outcome": outcome.result,
        "reason": outcome.reason,
        "headline": headline,
        "name": name,
        "detail": detail,
        "extra": " · ".join(extra_parts),
        "cadre_id": outcome.cadre_id,
        "time": when,
        "worked_s": outcome.worked.total_seconds() if outcome.worked is not None else None,
        "event_id": str(outcome.event.event_id) if outcome.event else None,
    }
