"""Stays: the centre pairs every kiosk's records of a cadre into arrival-departure pairs.

Two kiosks at one site work offline from each other, so a cadre may arrive at one and leave at
the other, and each kiosk's "arrival"/"departure" is only its guess from what it saw. The centre
sees everything, so it decides again, per cadre and service day, over the records of all kiosks
of a site ordered by corrected time, with the kiosks' own rule:

- a camera or wedge scan toggles: it is a departure when an arrival is open and less than
  `longest_shift` old, else an arrival (an older open arrival is closed as "no departure");
- a scan less than `repeat_window` after the last counted one (at any kiosk of the site) is a
  repeat and changes nothing (a cadre who scanned at both kiosks);
- manual entries, kiosk corrections and staff corrections say what they are and are taken as said.

Voided and replaced records are left out first: a kiosk's void or replacement (an event whose
`corrects` names another), then staff corrections (central/corrections.py). Where the centre's
reading differs from the kiosk's guess, the stay is flagged `kiosk_disagrees` and an anomaly says
which record and what each side made of it: shown, not hidden.

This module only pairs (no database): central/stays/store.py keeps the `stays` table from it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from central import corrections as staff_corrections
from central.timefix import DayRule

EXPLICIT_SOURCES = frozenset({"manual", staff_corrections.STAFF_SOURCE})
# Records a badge proves (the centre verified the badge token they carry: central/ingest/).
BADGE_SOURCES = frozenset({"camera", "wedge"})


def by_hand(record: dict[str, Any] | None) -> bool | None:
    """Whether a record counts on a person's word rather than a badge: entered by the lead or by
    staff, or its kind or time changed by a staff correction. None: no record."""
    if record is None:
        return None
    return record.get("source") not in BADGE_SOURCES or record.get("corrected_by") is not None


@dataclass(frozen=True)
class StayRules:
    day: DayRule
    repeat_window: timedelta
    longest_shift: timedelta
    overlong: timedelta

    @classmethod
    def from_settings(cls, settings: Any) -> StayRules:
        """From CentralSettings (timezone, service_day_start, repeat_window_s, ...)."""
        return cls(
            DayRule.of(settings.timezone, settings.service_day_start),
            timedelta(seconds=settings.repeat_window_s),
            timedelta(hours=settings.longest_shift_h),
            timedelta(hours=settings.overlong_stay_h),
        )


@dataclass
class Stay:
    cadre_id: str
    site_id: str
    service_day: date
    arrival: dict[str, Any] | None = None  # the record that opened it
    departure: dict[str, Any] | None = None
    state: str = "open"  # open | closed | no_departure | no_arrival
    flags: list[str] = field(default_factory=list)

    def flag(self, name: str) -> None:
        if name not in self.flags:
            self.flags.append(name)

    def row(self) -> dict[str, Any]:
        arrival_time = self.arrival["corrected_time"] if self.arrival else None
        departure_time = self.departure["corrected_time"] if self.departure else None
        duration = None
        if arrival_time is not None and departure_time is not None:
            duration = int((departure_time - arrival_time).total_seconds())
        return {
            "cadre_id": self.cadre_id,
            "site_id": self.site_id,
            "service_day": self.service_day,
            "arrival_time": arrival_time,
            "departure_time": departure_time,
            "arrival_event_id": self.arrival["event_id"] if self.arrival else None,
            "departure_event_id": self.departure["event_id"] if self.departure else None,
            "arrival_kiosk_id": self.arrival.get("kiosk_id") if self.arrival else None,
            "departure_kiosk_id": self.departure.get("kiosk_id") if self.departure else None,
            "duration_s": duration,
            "arrival_by_hand": by_hand(self.arrival),
            "departure_by_hand": by_hand(self.departure),
            "state": self.state,
            "flags": json.dumps(self.flags) if self.flags else "[]",
        }


@dataclass(frozen=True)
class Finding:
    kind: str
    site_id: str | None
    event_id: str | None
    detail: str


def without_kiosk_corrections(
    day_records: Sequence[dict[str, Any]], corrective: Iterable[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The day's records that count: voids dropped, voided and replaced records dropped.

    `corrective`: records of other days that correct something (their `corrects` is set). A
    correction that is itself voided or replaced no longer counts, so what it named counts again.
    """
    if not corrective and not any(r.get("corrects") for r in day_records):
        return [r for r in day_records if r["kind"] != "void"]  # the usual case: nothing to undo
    by_id = {r["event_id"]: r for r in day_records}
    for r in corrective:
        by_id.setdefault(r["event_id"], r)
    correctors: dict[str, list[str]] = defaultdict(list)
    for r in by_id.values():
        if r.get("corrects"):
            correctors[r["corrects"]].append(r["event_id"])
    memo: dict[str, bool] = {}

    def removed(event_id: str, visiting: frozenset[str] = frozenset()) -> bool:
        if event_id in memo:
            return memo[event_id]
        if event_id in visiting:  # a loop of corrections: break it by letting the record stand
            return False
        inner = visiting | {event_id}
        result = any(not removed(c, inner) for c in correctors.get(event_id, ()))
        memo[event_id] = result
        return result

    return [r for r in day_records if r["kind"] != "void" and not removed(r["event_id"])]


def _explicit(record: dict[str, Any]) -> bool:
    return (
        record.get("source") in EXPLICIT_SOURCES
        or bool(record.get("corrects"))
        or record.get("corrected_by") is not None
    )


def _when(record: dict[str, Any]) -> str:
    return f"{record['corrected_time']:%Y-%m-%d %H:%M:%S} UTC"


def pair_site(
    cadre_id: str, site_id: str, day: date, records: Sequence[dict[str, Any]], rules: StayRules
) -> tuple[list[Stay], list[Finding]]:
    """Stays of one cadre at one site on one service day, from records sorted by time."""
    result: list[Stay] = []
    findings: list[Finding] = []
    current: Stay | None = None
    last_counted: datetime | None = None
    for record in records:
        at = record["corrected_time"]
        if _explicit(record):
            role = record["kind"]
        elif last_counted is not None and at - last_counted < rules.repeat_window:
            continue  # a repeat: evidence only
        elif (
            current is not None
            and current.arrival is not None
            and at - current.arrival["corrected_time"] <= rules.longest_shift
        ):
            role = "departure"
        else:
            role = "arrival"
        last_counted = at
        stay_of_record: Stay
        if role == "arrival":
            if current is not None:
                current.state = "no_departure"
                findings.append(
                    Finding(
                        "no_departure",
                        site_id,
                        current.arrival["event_id"] if current.arrival else None,
                        f"arrival at {_when(current.arrival)} has no departure"
                        if current.arrival
                        else "no departure",
                    )
                )
            current = Stay(cadre_id, site_id, day, arrival=record)
            result.append(current)
            stay_of_record = current
        else:
            if current is not None:
                current.departure = record
                current.state = "closed"
                stay_of_record = current
                current = None
            else:
                stay_of_record = Stay(cadre_id, site_id, day, departure=record, state="no_arrival")
                result.append(stay_of_record)
                findings.append(
                    Finding(
                        "no_arrival",
                        site_id,
                        record["event_id"],
                        f"departure at {_when(record)} without an arrival",
                    )
                )
        if record.get("source") not in EXPLICIT_SOURCES and record["kind"] != role:
            stay_of_record.flag("kiosk_disagrees")
            findings.append(
                Finding(
                    "kiosk_disagrees",
                    site_id,
                    record["event_id"],
                    f"kiosk {record.get('kiosk_id')} recorded {record['kind']} at "
                    f"{_when(record)}; with every kiosk's records it counts as {role}",
                )
            )
    for stay in result:
        members = [r for r in (stay.arrival, stay.departure) if r is not None]
        if any(r.get("time_status") == "uncorrected" for r in members):
            stay.flag("uncorrected_time")
        if stay.arrival and stay.departure:
            # A staff-added record has no kiosk: that is not "left at another kiosk".
            kiosks_of_stay = (stay.arrival.get("kiosk_id"), stay.departure.get("kiosk_id"))
            if None not in kiosks_of_stay and kiosks_of_stay[0] != kiosks_of_stay[1]:
                stay.flag("cross_kiosk")
            length = stay.departure["corrected_time"] - stay.arrival["corrected_time"]
            if length > rules.overlong:
                stay.flag("overlong")
                findings.append(
                    Finding(
                        "overlong_stay",
                        site_id,
                        stay.arrival["event_id"],
                        f"stay of {length.total_seconds() / 3600:.1f} h from {_when(stay.arrival)}",
                    )
                )
    return result, findings


def pair_day(
    cadre_id: str, day: date, records: Sequence[dict[str, Any]], rules: StayRules
) -> tuple[list[Stay], list[Finding]]:
    """Stays of one cadre on one day, every site; records already stripped of voided ones."""
    by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in sorted(
        records, key=lambda r: (r["corrected_time"], r.get("kiosk_id") or "", r["event_id"])
    ):
        by_site[record["site_id"]].append(record)
    all_stays: list[Stay] = []
    findings: list[Finding] = []
    for site_id in sorted(by_site):
        site_stays, site_findings = pair_site(cadre_id, site_id, day, by_site[site_id], rules)
        all_stays.extend(site_stays)
        findings.extend(site_findings)
    if len(by_site) > 1:
        for stay in all_stays:
            stay.flag("two_sites")
        findings.append(
            Finding("two_sites", None, None, "seen at sites " + ", ".join(sorted(by_site)))
        )
    return all_stays, findings
