"""CheckIn: a scan or a lead's entry in, a durable event and the outcome out.

One instance per kiosk, shared by the scan loop's thread, the wedge requests and the lead's page;
its lock serialises decisions, so two scans of one badge cannot both become arrivals. The rules it
applies are listed in the package's docstring (kiosk/rules/__init__.py).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Literal

from kiosk.clock import TimeKeeper, TimeReading
from kiosk.roster import RosterSnapshot
from kiosk.rules import presence as attendance
from kiosk.rules.outcome import (
    FLAG_CLOCK_UNCERTAIN,
    FLAG_KIND_CHOSEN,
    FLAG_NO_ARRIVAL,
    FLAG_NOT_ON_ROSTER,
    FLAG_OPEN_ARRIVAL,
    FLAG_OPERATOR_TIME,
    REFUSE_ALREADY_VOIDED,
    REFUSE_CORRECT_VOID,
    REFUSE_FUTURE,
    REFUSE_NO_OPERATOR,
    REFUSE_UNDO_GONE,
    REFUSE_UNDO_OF_UNDO,
    CameraEvidence,
    LeadRefusal,
    NoSuchEvent,
    ScanOutcome,
    ScanSource,
    clock_text,
    duration_text,
    store_refusal,
)
from kiosk.rules.presence import OtherGates, Presence
from kiosk.rules.timeline import RuleSettings, SiteTime
from kiosk.store import EventLog, EventSummary, FailedScanLog, StoreError, StoreWriteError
from sync.badge_token import verify_token
from sync.events import Event


def normalise_wedge_input(typed: str) -> str:
    """A keyboard-wedge scanner types the payload followed by Enter (or Tab), sometimes with
    prefix/suffix control characters, and in lower case when Caps Lock is on. Badge tokens are
    upper-case base32, so upper-casing a badge-looking input is lossless."""
    cleaned = "".join(ch for ch in typed if ch.isprintable()).strip()
    if cleaned[:2].upper() == "CB":
        cleaned = cleaned.upper()
    return cleaned


class CheckIn:
    """The rules of one kiosk. Share one instance; scans are serialised by its lock."""

    def __init__(
        self,
        log: EventLog,
        roster: Callable[[], RosterSnapshot],
        keeper: TimeKeeper,
        settings: RuleSettings,
        *,
        kiosk_id: str,
        site_id: str,
        failed_scans: FailedScanLog | None = None,
    ) -> None:
        self.log = log
        self.roster = roster
        self.keeper = keeper
        self.settings = settings
        self.kiosk_id = kiosk_id
        self.site_id = site_id
        self.failed_scans = failed_scans
        self.time = SiteTime(keeper, settings)
        self._lock = threading.Lock()
        # The site's other kiosks' records (kiosk/peers/store.py), set once peers are made:
        # the toggle, the repeat window and "already checked in" read the last record at any
        # gate. Never the network: the store is filled by the peers' own threads.
        self.other_gates: OtherGates | None = None

    def _last(self, cadre_id: str, now: TimeReading) -> EventSummary | None:
        """The cadre's last record at any gate of the site (this kiosk's own when the same)."""
        rows = self.log.recent(cadre_id)
        last = rows[-1] if rows else None
        other = self.other_gates.latest(cadre_id) if self.other_gates is not None else None
        if other is not None and (last is None or other.when > self.time.when(last, now)):
            return other.summary
        return last

    def last_at_any_gate(self, cadre_id: str) -> EventSummary | None:
        return self._last(cadre_id, self.keeper.read())

    def use_settings(self, settings: RuleSettings) -> None:
        """New rule settings (from the centre, while running): the next scan uses them."""
        with self._lock:
            self.settings = settings
            self.time = SiteTime(self.keeper, settings)

    # ------------------------------------------------------------------ the site's time

    def local(self, when: datetime) -> datetime:
        return self.time.local(when)

    def service_day(self, when: datetime) -> date:
        """The service day `when` belongs to: the local date, starting at service_day_start."""
        return self.time.service_day(when)

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        return self.time.day_bounds(day)

    def true_time(self, row: EventSummary | Event) -> datetime:
        return self.time.true_time(row)

    # ------------------------------------------------------------------ scanning

    def scan(
        self,
        payload: str,
        source: ScanSource = "camera",
        kind: Literal["arrival", "departure"] | None = None,
        evidence: CameraEvidence | None = None,
    ) -> ScanOutcome:
        """Verify `payload` and record what the rules decide; durable before it returns.

        `kind` is for a screen with Arrive / Leave buttons: the person's choice replaces the
        toggle (flagged `kind_chosen_on_screen`); the repeat window still swallows a double scan
        of the same kind. `evidence`: the photo's hash and the camera's flags, put on the
        record if one is made."""
        roster = self.roster()
        check = verify_token(payload, roster.keyring, roster.revoked_through)
        with self._lock:
            now = self.keeper.read()
            shown = self.local(now.shown)
            if not check.valid:
                if self.failed_scans is not None:
                    self.failed_scans.record(check.reason, payload, source, now.shown)
                return ScanOutcome(
                    "refused",
                    shown,
                    now.trusted,
                    reason=check.reason,
                    message=f"Refused: {check.message}",
                    cadre_id=check.cadre_id if check.reason == "revoked" else None,
                )
            assert check.cadre_id is not None
            return self._toggle(
                check.cadre_id, check.serial, source, now, roster, kind, payload, evidence
            )

    def scan_wedge(self, typed: str) -> ScanOutcome:
        """A payload typed by a keyboard-wedge barcode scanner, through the same rules."""
        return self.scan(normalise_wedge_input(typed), source="wedge")

    def _toggle(
        self,
        cadre_id: str,
        serial: int | None,
        source: ScanSource,
        now: TimeReading,
        roster: RosterSnapshot,
        chosen: Literal["arrival", "departure"] | None = None,
        token: str | None = None,
        evidence: CameraEvidence | None = None,
    ) -> ScanOutcome:
        """`token`: the badge as read, kept on the event as its proof for the centre."""
        entry = roster.entry(cadre_id)
        name = entry.name if entry else None
        unit = entry.unit if entry else None
        shown = self.local(now.shown)
        flags: list[str] = []
        if not roster.on_site(cadre_id):
            flags.append(FLAG_NOT_ON_ROSTER)
        last = self._last(cadre_id, now)
        kind: Literal["arrival", "departure"]
        worked = None
        elapsed = None
        if last is not None:
            elapsed = self.time.elapsed(last, now)
            if elapsed is None:
                flags.append(FLAG_CLOCK_UNCERTAIN)
            elif elapsed < self.settings.repeat_window and chosen in (None, last.kind):
                before = self.local(self.time.when(last, now))
                verb = "checked in" if last.kind == "arrival" else "checked out"
                return ScanOutcome(
                    "repeat",
                    shown,
                    now.trusted,
                    reason="repeat",
                    message=f"Already {verb} {clock_text(before)}",
                    cadre_id=cadre_id,
                    name=name,
                    unit=unit,
                    previous_time=before,
                    flags=tuple(flags),
                )
        unclosed = last is not None and last.kind == "arrival"
        open_arrival = (
            unclosed and last is not None and self._arrival_still_open(last, now, elapsed)
        )
        if chosen is None:
            kind = "departure" if open_arrival else "arrival"
        else:
            kind = chosen
            flags.append(FLAG_KIND_CHOSEN)
        if kind == "departure":
            if open_arrival:
                worked = elapsed
            else:
                flags.append(FLAG_NO_ARRIVAL)
        elif unclosed:
            flags.append(FLAG_OPEN_ARRIVAL)
        extra: dict[str, Any] = {"badge_token": token}
        if evidence is not None:
            flags.extend(f for f in evidence.flags if f not in flags)
            extra["photo_sha256"] = evidence.photo_sha256
        fields = self._fields(cadre_id, serial, kind, source, now, flags, **extra)
        try:
            event = self.log.append(fields)
        except (StoreWriteError, StoreError) as exc:
            return self._store_refusal(exc, now, cadre_id, name, unit)
        if kind == "arrival":
            message = f"Welcome, {name or cadre_id} — arrived {clock_text(shown)}"
        elif worked is not None:
            message = f"Goodbye, {name or cadre_id} — {duration_text(worked)}"
        else:
            message = f"Goodbye, {name or cadre_id}"
        return ScanOutcome(
            kind,
            shown,
            now.trusted,
            message=message,
            cadre_id=cadre_id,
            name=name,
            unit=unit,
            worked=worked,
            flags=tuple(flags),
            event=event,
        )

    def _arrival_still_open(
        self, arrival: EventSummary, now: TimeReading, elapsed: timedelta | None
    ) -> bool:
        """Whether the next scan after `arrival` is its departure."""
        if elapsed is not None and elapsed > self.settings.longest_shift:
            return False
        return self.service_day(self.time.when(arrival, now)) >= self.service_day(now.shown)

    def _fields(
        self,
        cadre_id: str,
        serial: int | None,
        kind: str,
        source: str,
        now: TimeReading,
        flags: list[str],
        **extra: Any,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "event_id": uuid.uuid4(),
            "kiosk_id": self.kiosk_id,
            "site_id": self.site_id,
            "cadre_id": cadre_id,
            "badge_serial": serial,
            "kind": kind,
            "source": source,
            "device_time": now.wall,
            "boot_id": now.boot_id,
            "monotonic_ns": now.monotonic_ns,
            "clock_trusted": now.trusted,
            "flags": list(flags),
        }
        fields.update(extra)
        return fields

    def _store_refusal(
        self,
        exc: Exception,
        now: TimeReading,
        cadre_id: str | None,
        name: str | None,
        unit: str | None,
    ) -> ScanOutcome:
        return store_refusal(exc, self.local(now.shown), now.trusted, cadre_id, name, unit)

    # ------------------------------------------------------------------ the site lead

    @staticmethod
    def _require(operator: str, reason: str) -> None:
        if not operator.strip() or not reason.strip():
            raise LeadRefusal(REFUSE_NO_OPERATOR, "the operator and a reason are required")

    def _operator_time(self, at: datetime | None, now: TimeReading) -> datetime | None:
        if at is None:
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=self.settings.timezone)
        if at > now.shown + timedelta(minutes=5):
            raise LeadRefusal(REFUSE_FUTURE, "a time in the future cannot be entered")
        return at

    def manual(
        self,
        cadre_id: str,
        kind: Literal["arrival", "departure"],
        *,
        operator: str,
        reason: str,
        at: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> ScanOutcome:
        """Check a cadre in or out by hand; `at` is the time the lead gives (default: now).

        A time given by the lead is stored as device_time with the flag
        `time_entered_by_operator`. Raises LeadRefusal for missing operator/reason or a future
        time. `event_id` is the id a lead's form chose (kiosk/web/forms.py makes sure one form
        records once); default a new one."""
        self._require(operator, reason)
        roster = self.roster()
        with self._lock:
            now = self.keeper.read()
            when = self._operator_time(at, now)
            flags: list[str] = []
            if not roster.on_site(cadre_id):
                flags.append(FLAG_NOT_ON_ROSTER)
            last = self._last(cadre_id, now)
            worked = None
            moment = when or now.shown
            if kind == "departure":
                if last is not None and last.kind == "arrival":
                    worked = moment - self.time.when(last, now)
                    worked = worked if worked >= timedelta(0) else None
                else:
                    flags.append(FLAG_NO_ARRIVAL)
            elif last is not None and last.kind == "arrival":
                flags.append(FLAG_OPEN_ARRIVAL)
            extra: dict[str, Any] = {
                "operator": operator.strip(),
                "reason": reason.strip(),
                "event_id": event_id or uuid.uuid4(),
            }
            if when is not None:
                flags.append(FLAG_OPERATOR_TIME)
                extra["device_time"] = when
            fields = self._fields(cadre_id, None, kind, "manual", now, flags, **extra)
            entry = roster.entry(cadre_id)
            try:
                event = self.log.append(fields)
            except (StoreWriteError, StoreError) as exc:
                return self._store_refusal(
                    exc, now, cadre_id, entry.name if entry else None, entry.unit if entry else None
                )
            return ScanOutcome(
                kind,
                self.local(moment),
                now.trusted,
                message=f"{'Checked in' if kind == 'arrival' else 'Checked out'} by hand",
                cadre_id=cadre_id,
                name=entry.name if entry else None,
                unit=entry.unit if entry else None,
                worked=worked,
                flags=tuple(flags),
                event=event,
            )

    def void(
        self,
        event_id: uuid.UUID | str,
        *,
        operator: str,
        reason: str,
        new_id: uuid.UUID | None = None,
    ) -> Event:
        """Cancel an event; a void of a void is the lead's undo and puts the record back.

        Raises LeadRefusal when there is no such event, when it is voided already, when the
        target is an undo (undo once; to cancel the record again, void the record), or when the
        void is too old for this kiosk to put back what it voided; StoreWriteError when the disk
        refuses."""
        self._require(operator, reason)
        with self._lock:
            target = self.log.find(event_id)
            if target is None:
                raise NoSuchEvent(f"no event {event_id} in this kiosk's log")
            target_id = str(target.event_id)
            if target.kind == "void":
                inner = self.log.find(target.corrects) if target.corrects else None
                if inner is None or inner.kind == "void":
                    raise LeadRefusal(REFUSE_UNDO_OF_UNDO, "an undo cannot be undone")
                if not self.log.can_undo(target.cadre_id, target_id):
                    raise LeadRefusal(REFUSE_UNDO_GONE, "this void cannot be undone here")
            elif self.log.is_voided(target.cadre_id, target_id):
                raise LeadRefusal(REFUSE_ALREADY_VOIDED, f"event {target_id} is voided already")
            now = self.keeper.read()
            fields = self._fields(
                target.cadre_id,
                None,
                "void",
                "manual",
                now,
                [],
                operator=operator.strip(),
                reason=reason.strip(),
                corrects=target.event_id,
                event_id=new_id or uuid.uuid4(),
            )
            return self.log.append(fields)

    def correct(
        self,
        event_id: uuid.UUID | str,
        *,
        operator: str,
        reason: str,
        kind: Literal["arrival", "departure"] | None = None,
        at: datetime | None = None,
        new_id: uuid.UUID | None = None,
    ) -> Event:
        """Replace an arrival or departure with one of another kind and/or time.

        The replacement names the original in `corrects`; its device_time is the corrected time
        (default: the original's best known time), flagged `time_entered_by_operator`."""
        self._require(operator, reason)
        with self._lock:
            target = self.log.find(event_id)
            if target is None:
                raise NoSuchEvent(f"no event {event_id} in this kiosk's log")
            if target.kind == "void":
                raise LeadRefusal(REFUSE_CORRECT_VOID, "a void cannot be corrected")
            if self.log.is_voided(target.cadre_id, str(target.event_id)):
                raise LeadRefusal(REFUSE_ALREADY_VOIDED, "a voided event cannot be corrected")
            now = self.keeper.read()
            when = self._operator_time(at, now) or self.true_time(target)
            fields = self._fields(
                target.cadre_id,
                target.badge_serial,
                kind or target.kind,
                "manual",
                now,
                [FLAG_OPERATOR_TIME],
                operator=operator.strip(),
                reason=reason.strip(),
                corrects=target.event_id,
                device_time=when,
                event_id=new_id or uuid.uuid4(),
            )
            return self.log.append(fields)

    # ------------------------------------------------------------------ what the pages show

    def last_event(self, cadre_id: str) -> Event | None:
        return self.log.last_event(cadre_id)

    def events_of_day(self, day: date) -> list[Event]:
        """Every event (voids and corrections too) whose best known time falls in `day`."""
        return attendance.events_of_day(self.log, self.time, day)

    def presence(self, day: date | None = None) -> dict[str, Presence]:
        """Who is present, departed, or arrived without departing, on `day` (default: today)."""
        return attendance.presence(self.log, self.time, day, self.other_gates)

    def absent(self, day: date | None = None) -> list[str]:
        """Cadres of this site's roster with no arrival on `day`."""
        return attendance.absent(self.log, self.time, self.roster(), day, self.other_gates)
