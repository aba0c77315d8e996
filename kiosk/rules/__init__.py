"""Check-in rules: from a scanned payload to arrival, departure, repeat or refusal.

A plain package: no Flask, no camera, no network. It is driven by the `TimeKeeper` (and so by any
`Clock`) it is given, reads the roster snapshot current at each scan, and writes to the event log.
An outcome reporting an event is only returned after the event is durable.

The rules (every number a setting):
- the next scan of a cadre toggles arrival / departure;
- the same badge again within the repeat window makes no event ("already checked in 05:20");
- an arrival older than the longest shift, or from an earlier service day, never turns the next
  scan into a departure: the scan is a new arrival flagged `previous_arrival_without_departure`;
- a valid badge not on this site's roster is accepted and flagged `not_on_roster`;
- revoked, forged, malformed and foreign codes are refused with a readable reason and go to the
  rate-limited failed-scan log;
- the site lead checks in or out by hand, voids or corrects an event, with operator and reason,
  and undoes a void by voiding the void (once: an undo is not undone, the record is voided again);
  what the lead may not do is refused with a `LeadRefusal` code the pages put in words.

How long ago something happened is measured on the monotonic clock when it happened in this boot,
so a wall clock stepped backwards or forwards changes nothing; across boots the best known true
times are compared. Order is always `seq`.

    checkin.py   CheckIn: scans and the lead's changes, what gets recorded
    outcome.py   ScanOutcome and the flags and reasons it carries (what the pages word)
    timeline.py  the site's time: service days, best known true times, how long ago
    presence.py  who is present, departed or absent on a day, read back from the log
    corrected.py what became of each record: voided, replaced, or (a void) undone
"""

from kiosk.rules.checkin import CheckIn, normalise_wedge_input
from kiosk.rules.corrected import Standing, standing
from kiosk.rules.outcome import (
    FLAG_CLOCK_UNCERTAIN,
    FLAG_KIND_CHOSEN,
    FLAG_NO_ARRIVAL,
    FLAG_NO_FACE,
    FLAG_NO_PHOTO,
    FLAG_NOT_ON_ROSTER,
    FLAG_OPEN_ARRIVAL,
    FLAG_OPERATOR_TIME,
    FLAG_SEVERAL_BADGES,
    REFUSAL_TEXT,
    STORE_REASONS,
    CameraEvidence,
    LeadRefusal,
    Result,
    ScanOutcome,
    ScanSource,
    clock_text,
    duration_text,
)
from kiosk.rules.presence import Presence
from kiosk.rules.timeline import RuleSettings, SiteTime

__all__ = [
    "FLAG_CLOCK_UNCERTAIN",
    "FLAG_KIND_CHOSEN",
    "FLAG_NOT_ON_ROSTER",
    "FLAG_NO_ARRIVAL",
    "FLAG_NO_FACE",
    "FLAG_NO_PHOTO",
    "FLAG_OPEN_ARRIVAL",
    "FLAG_OPERATOR_TIME",
    "FLAG_SEVERAL_BADGES",
    "REFUSAL_TEXT",
    "STORE_REASONS",
    "CameraEvidence",
    "CheckIn",
    "LeadRefusal",
    "Presence",
    "Result",
    "RuleSettings",
    "ScanOutcome",
    "ScanSource",
    "SiteTime",
    "Standing",
    "clock_text",
    "duration_text",
    "normalise_wedge_input",
    "standing",
]
