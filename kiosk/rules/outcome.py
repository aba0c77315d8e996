"""What a scan or a lead's entry came to: the outcome the screen shows and says, its flags, and
the reasons for a refusal. Readable English is kept for logs; the pages word an outcome from its
`reason` and fields (kiosk/web/present.py)."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from kiosk.store.diskio import describe_os_error
from sync.events import Event

Result = Literal["arrival", "departure", "repeat", "refused"]
ScanSource = Literal["camera", "wedge"]

FLAG_NOT_ON_ROSTER = "not_on_roster"
FLAG_OPEN_ARRIVAL = "previous_arrival_without_departure"
FLAG_NO_ARRIVAL = "departure_without_arrival"
FLAG_OPERATOR_TIME = "time_entered_by_operator"
FLAG_CLOCK_UNCERTAIN = "clock_uncertain"
FLAG_KIND_CHOSEN = "kind_chosen_on_screen"
# A camera record whose photo could not be kept (store full or failing), and one made with no
# face in view (kiosk/photos.py, scanner/faces.py).
FLAG_NO_PHOTO = "no_photo"
FLAG_NO_FACE = "no_face"
# Another cadre's badge was shown by the same face within seconds (kiosk/holders.py).
FLAG_SEVERAL_BADGES = "several_badges"


@dataclass(frozen=True)
class CameraEvidence:
    """What the camera adds to a record it read: the photo's sha256 (None: none kept) and the
    flags saying why something is missing."""

    photo_sha256: str | None = None
    flags: tuple[str, ...] = ()


# Reasons for a refusal that is not about the badge.
STORE_REASONS = {"store_full", "store_read_only", "store_failed"}

REFUSAL_TEXT = {
    "store_full": "Not recorded: the kiosk's disk is full. Please tell the site lead.",
    "store_read_only": "Not recorded: the kiosk's disk is read-only. Please tell the site lead.",
    "store_failed": "Not recorded: the kiosk could not save. Please tell the site lead.",
}


class LeadRefusal(ValueError):
    """A lead's entry the rules refuse, with a code the pages word (kiosk/web/present.py); the
    English text is for logs and tests."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


class NoSuchEvent(LeadRefusal, LookupError):
    """The event a void or correction names is not in this kiosk's log."""

    def __init__(self, text: str) -> None:
        super().__init__(REFUSE_NO_EVENT, text)


# The codes of LeadRefusal.
REFUSE_NO_OPERATOR = "operator_and_reason_required"
REFUSE_FUTURE = "future_time"
REFUSE_NO_EVENT = "no_such_event"
REFUSE_ALREADY_VOIDED = "already_voided"
REFUSE_UNDO_OF_UNDO = "undo_of_undo"
REFUSE_UNDO_GONE = "undo_not_possible"
REFUSE_CORRECT_VOID = "cannot_correct_void"


@dataclass(frozen=True)
class ScanOutcome:
    """What the screen shows and says after a scan."""

    result: Result
    time_shown: datetime  # best known true time of the scan, in the site's time zone
    clock_trusted: bool
    reason: str = "ok"  # a badge reason of sync.badge_token, "repeat", or a STORE_REASONS code
    message: str = ""  # readable English; pages translate from `reason` and the fields
    cadre_id: str | None = None
    name: str | None = None
    unit: str | None = None
    worked: timedelta | None = None  # on a departure, when the arrival is known
    previous_time: datetime | None = None  # on a repeat: when the earlier event was
    flags: tuple[str, ...] = ()
    event: Event | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "time_shown": self.time_shown.isoformat(),
            "clock_trusted": self.clock_trusted,
            "reason": self.reason,
            "message": self.message,
            "cadre_id": self.cadre_id,
            "name": self.name,
            "unit": self.unit,
            "worked_s": self.worked.total_seconds() if self.worked is not None else None,
            "previous_time": self.previous_time.isoformat() if self.previous_time else None,
            "flags": list(self.flags),
            "event_id": str(self.event.event_id) if self.event else None,
            "seq": self.event.seq if self.event else None,
        }


def clock_text(when: datetime) -> str:
    return when.strftime("%H:%M")


def duration_text(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def store_refusal(
    exc: Exception,
    shown: datetime,
    clock_trusted: bool,
    cadre_id: str | None,
    name: str | None,
    unit: str | None,
) -> ScanOutcome:
    """The outcome when the log refused to store the event: a full, read-only or failing disk."""
    code = getattr(exc, "errno", None)
    reason = (
        "store_full"
        if code in (errno.ENOSPC, errno.EDQUOT)
        else "store_read_only"
        if code == errno.EROFS
        else "store_failed"
    )
    detail = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
    return ScanOutcome(
        "refused",
        shown,
        clock_trusted,
        reason=reason,
        message=f"{REFUSAL_TEXT[reason]} ({detail})",
        cadre_id=cadre_id,
        name=name,
        unit=unit,
    )
