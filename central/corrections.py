"""Corrections by central staff: append-only, each with a reason and who made it.

A kiosk's record is never edited. Staff add a correction instead, of one of three kinds:

- void: the record named by `target_event_id` does not count (a scan by mistake);
- replace: the record counts with another kind and/or time (a wrong button, a bad clock);
- add: a record no kiosk made (a forgotten departure); it gets its own `new_event_id`, so a later
  correction can void or replace it like any kiosk record.

The newest correction of a record wins; nothing is deleted, so the history of who changed what
and why stays readable. A correction stays inside the record's service day (to move a record to
another day, void it and add one on that day): the stays of exactly one (cadre, day) change.

Stays are computed from the effective records: `effective_records` applies a (cadre, day)'s
corrections to the kiosk records of that day, and the stays code pairs the result.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    insert,
    select,
)

from central.db.schema import corrections

Action = Literal["void", "replace", "add"]
ACTIONS: tuple[str, ...] = ("void", "replace", "add")
KINDS: tuple[str, ...] = ("arrival", "departure")
REASON_MAX = 500
STAFF_SOURCE = "staff"


class CorrectionError(ValueError):
    """A correction that cannot be stored; the message is for the person who entered it."""


@dataclass(frozen=True)
class NewCorrection:
    action: Action
    cadre_id: str
    site_id: str
    service_day: date
    reason: str
    staff_user: str
    target_event_id: str | None = None
    kind: str | None = None
    event_time: datetime | None = None  # naive UTC

    def check(self) -> None:
        if self.action not in ACTIONS:
            raise CorrectionError(f"unknown correction {self.action!r}")
        if not self.reason.strip():
            raise CorrectionError("a correction needs a reason")
        if len(self.reason) > REASON_MAX:
            raise CorrectionError(f"reason too long (at most {REASON_MAX} characters)")
        if self.action in ("void", "replace") and not self.target_event_id:
            raise CorrectionError("name the record to change")
        if self.action == "add" and self.target_event_id:
            raise CorrectionError("a new record does not name another")
        if self.action in ("replace", "add"):
            if self.kind not in KINDS:
                raise CorrectionError("kind must be arrival or departure")
            if self.event_time is None:
                raise CorrectionError("a time is needed")
            if self.event_time.tzinfo is not None:
                raise CorrectionError("store times as naive UTC")


def add_correction(conn: Connection, new: NewCorrection, now: datetime) -> dict[str, Any]:
    """Append one correction (in the caller's transaction); returns the stored row."""
    new.check()
    values = {
        "action": new.action,
        "target_event_id": new.target_event_id,
        "new_event_id": str(uuid.uuid4()) if new.action == "add" else None,
        "cadre_id": new.cadre_id,
        "site_id": new.site_id,
        "kind": new.kind if new.action != "void" else None,
        "event_time": new.event_time if new.action != "void" else None,
        "service_day": new.service_day,
        "reason": new.reason.strip(),
        "staff_user": new.staff_user,
        "created_at": now.replace(tzinfo=None) if now.tzinfo else now,
    }
    result = conn.execute(insert(corrections).values(**values))
    assert result.inserted_primary_key is not None  # a single-row INSERT always has one
    correction_id = result.inserted_primary_key[0]
    return {"correction_id": correction_id, **values}


def for_cadre_day(conn: Connection, cadre_id: str, day: date) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(corrections)
        .where(corrections.c.cadre_id == cadre_id, corrections.c.service_day == day)
        .order_by(corrections.c.correction_id)
    )
    return [dict(r._mapping) for r in rows]


def effective_records(
    records: Iterable[Mapping[str, Any]], day_corrections: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Records of one cadre and day as they count after staff corrections, by time.

    `records` are event rows (event_id, kind, corrected_time, site_id, kiosk_id, ...);
    `day_corrections` the corrections of the same cadre and day in the order they were made.
    Voided records are left out; replaced ones carry the new kind/time and `corrected_by`;
    added ones have kiosk_id None and source "staff".
    """
    by_id: dict[str, dict[str, Any]] = {str(r["event_id"]): dict(r) for r in records}
    for correction in day_corrections:
        action = correction["action"]
        if action == "add":
            by_id[correction["new_event_id"]] = {
                "event_id": correction["new_event_id"],
                "kind": correction["kind"],
                "corrected_time": correction["event_time"],
                "site_id": correction["site_id"],
                "cadre_id": correction["cadre_id"],
                "kiosk_id": None,
                "source": STAFF_SOURCE,
                "corrected_by": correction["correction_id"],
                "voided": False,
            }
            continue
        target = by_id.get(correction["target_event_id"])
        if target is None:
            continue  # names a record of another day or one not stored yet: nothing to change
        if action == "void":
            target["voided"] = True
        else:
            target["voided"] = False
            target["kind"] = correction["kind"]
            target["corrected_time"] = correction["event_time"]
        target["corrected_by"] = correction["correction_id"]
    effective = [r for r in by_id.values() if not r.get("voided")]
    effective.sort(key=lambda r: (r["corrected_time"], str(r["event_id"])))
    return effective
