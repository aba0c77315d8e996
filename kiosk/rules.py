"""Check-in rules: from a scanned payload to arrival, departure, repeat or refusal.

A plain module: no Flask, no camera, no network. It is driven by the `TimeKeeper` (and so by any
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
- the site lead checks in or out by hand, voids or corrects an event, with operator and reason.

How long ago something happened is measured on the monotonic clock when it happened in this boot,
so a wall clock stepped backwards or forwards changes nothing; across boots the best known true
times are compared. Order is always `seq`.
"""

from __future__ import annotations

import errno
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from kiosk.clock import TimeKeeper, TimeReading
from kiosk.roster import RosterSnapshot
from kiosk.store import EventLog, EventSummary, FailedScanLog, StoreError, StoreWriteError
from kiosk.store.diskio import describe_os_error
from sync.badge_token import verify_token
from sync.events import Event

Result = Literal["arrival", "departure", "repeat", "refused"]
ScanSource = Literal["camera", "wedge"]

FLAG_NOT_ON_ROSTER = "not_on_roster"
FLAG_OPEN_ARRIVAL = "previous_arrival_without_departure"
FLAG_NO_ARRIVAL = "departure_without_arrival"
FLAG_OPERATOR_TIME = "time_entered_by_operator"
FLAG_CLOCK_UNCERTAIN = "clock_uncertain"
FLAG_KIND_CHOSEN = "kind_chosen_on_screen"

# Reasons for a refusal that is not about the badge.
STORE_REASONS = {"store_full", "store_read_only", "store_failed"}

REFUSAL_TEXT = {
    "store_full": "Not recorded: the kiosk's disk is full. Please tell the site lead.",
    "store_read_only": "Not recorded: the kiosk's disk is read-only. Please tell the site lead.",
    "store_failed": "Not recorded: the kiosk could not save. Please tell the site lead.",
}


@dataclass(frozen=True)
class RuleSettings:
    timezone: ZoneInfo
    repeat_window: timedelta = timedelta(minutes=2)
    longest_shift: timedelta = timedelta(hours=16)
    service_day_start: time = time(3, 0)

    @classmethod
    def from_settings(cls, settings: Any) -> RuleSettings:
        """From a `kiosk.settings.KioskSettings`."""
        hours, minutes = (int(part) for part in settings.service_day_start.split(":"))
        return cls(
            timezone=ZoneInfo(settings.timezone),
            repeat_window=timedelta(seconds=settings.repeat_window_s),
            longest_shift=timedelta(hours=settings.longest_shift_h),
            service_day_start=time(hours, minutes),
        )


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


@dataclass(frozen=True)
class Presence:
    cadre_id: str
    state: Literal["present", "departed", "no_departure"]
    since: datetime  # time of the event that put the cadre in this state (site time zone)
    arrived: datetime | None = None
    worked: timedelta | None = None


def clock_text(when: datetime) -> str:
    return when.strftime("%H:%M")


def duration_text(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


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
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ time helpers

    def local(self, when: datetime) -> datetime:
        return when.astimezone(self.settings.timezone)

    def service_day(self, when: datetime) -> date:
        """The service day `when` belongs to: the local date, starting at service_day_start."""
        local = self.local(when)
        start = self.settings.service_day_start
        shifted = local - timedelta(hours=start.hour, minutes=start.minute)
        return shifted.date()

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        start = datetime.combine(day, self.settings.service_day_start, self.settings.timezone)
        end = datetime.combine(
            day + timedelta(days=1), self.settings.service_day_start, self.settings.timezone
        )
        return start, end

    def true_time(self, row: EventSummary | Event) -> datetime:
        if FLAG_OPERATOR_TIME in row.flags:
            return row.device_time
        return self.keeper.true_time_of(
            row.device_time, row.boot_id, row.monotonic_ns, row.clock_trusted
        )

    def _elapsed(self, row: EventSummary, now: TimeReading) -> timedelta | None:
        """How long ago `row` happened; None when the clocks cannot tell (negative)."""
        if FLAG_OPERATOR_TIME not in row.flags and row.boot_id == now.boot_id:
            return timedelta(microseconds=(now.monotonic_ns - row.monotonic_ns) / 1000)
        span = now.shown - self.true_time(row)
        return span if span >= timedelta(0) else None

    def _when(self, row: EventSummary, now: TimeReading) -> datetime:
        """When `row` happened, on the timeline shown now."""
        if FLAG_OPERATOR_TIME not in row.flags and row.boot_id == now.boot_id:
            return now.shown - timedelta(microseconds=(now.monotonic_ns - row.monotonic_ns) / 1000)
        return self.true_time(row)

    # ------------------------------------------------------------------ scanning

    def scan(
        self,
        payload: str,
        source: ScanSource = "camera",
        kind: Literal["arrival", "departure"] | None = None,
    ) -> ScanOutcome:
        """Verify `payload` and record what the rules decide; durable before it returns.

        `kind` is for a screen with Arrive / Leave buttons: the person's choice replaces the
        toggle (flagged `kind_chosen_on_screen`); the repeat window still swallows a double scan
        of the same kind."""
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
            return self._toggle(check.cadre_id, check.serial, source, now, roster, kind)

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
    ) -> ScanOutcome:
        entry = roster.entry(cadre_id)
        name = entry.name if entry else None
        unit = entry.unit if entry else None
        shown = self.local(now.shown)
        flags: list[str] = []
        if not roster.on_site(cadre_id):
            flags.append(FLAG_NOT_ON_ROSTER)
        rows = self.log.recent(cadre_id)
        last = rows[-1] if rows else None
        kind: Literal["arrival", "departure"]
        worked = None
        elapsed = None
        if last is not None:
            elapsed = self._elapsed(last, now)
            if elapsed is None:
                flags.append(FLAG_CLOCK_UNCERTAIN)
            elif elapsed < self.settings.repeat_window and chosen in (None, last.kind):
                before = self.local(self._when(last, now))
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
        open_arrival = unclosed and self._arrival_still_open(last, now, elapsed)
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
        fields = self._fields(cadre_id, serial, kind, source, now, flags)
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
        return self.service_day(self._when(arrival, now)) >= self.service_day(now.shown)

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
            self.local(now.shown),
            now.trusted,
            reason=reason,
            message=f"{REFUSAL_TEXT[reason]} ({detail})",
            cadre_id=cadre_id,
            name=name,
            unit=unit,
        )

    # ------------------------------------------------------------------ the site lead

    @staticmethod
    def _require(operator: str, reason: str) -> None:
        if not operator.strip() or not reason.strip():
            raise ValueError("the operator and a reason are required")

    def _operator_time(self, at: datetime | None, now: TimeReading) -> datetime | None:
        if at is None:
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=self.settings.timezone)
        if at > now.shown + timedelta(minutes=5):
            raise ValueError("a time in the future cannot be entered")
        return at

    def manual(
        self,
        cadre_id: str,
        kind: Literal["arrival", "departure"],
        *,
        operator: str,
        reason: str,
        at: datetime | None = None,
    ) -> ScanOutcome:
        """Check a cadre in or out by hand; `at` is the time the lead gives (default: now).

        A time given by the lead is stored as device_time with the flag
        `time_entered_by_operator`. Raises ValueError for missing operator/reason or a future time.
        """
        self._require(operator, reason)
        roster = self.roster()
        with self._lock:
            now = self.keeper.read()
            when = self._operator_time(at, now)
            flags: list[str] = []
            if not roster.on_site(cadre_id):
                flags.append(FLAG_NOT_ON_ROSTER)
            rows = self.log.recent(cadre_id)
            last = rows[-1] if rows else None
            worked = None
            moment = when or now.shown
            if kind == "departure":
                if last is not None and last.kind == "arrival":
                    worked = moment - self._when(last, now)
                    worked = worked if worked >= timedelta(0) else None
                else:
                    flags.append(FLAG_NO_ARRIVAL)
            elif last is not None and last.kind == "arrival":
                flags.append(FLAG_OPEN_ARRIVAL)
            extra: dict[str, Any] = {"operator": operator.strip(), "reason": reason.strip()}
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

    def void(self, event_id: uuid.UUID | str, *, operator: str, reason: str) -> Event:
        """Cancel an event. Raises LookupError when there is no such event, ValueError when it
        is itself a void, StoreWriteError when the disk refuses."""
        self._require(operator, reason)
        with self._lock:
            target = self.log.find(event_id)
            if target is None:
                raise LookupError(f"no event {event_id} in this kiosk's log")
            if target.kind == "void":
                raise ValueError("a void cannot be voided; record a correction instead")
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
    ) -> Event:
        """Replace an arrival or departure with one of another kind and/or time.

        The replacement names the original in `corrects`; its device_time is the corrected time
        (default: the original's best known time), flagged `time_entered_by_operator`."""
        self._require(operator, reason)
        with self._lock:
            target = self.log.find(event_id)
            if target is None:
                raise LookupError(f"no event {event_id} in this kiosk's log")
            if target.kind == "void":
                raise ValueError("a void cannot be corrected")
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
            )
            return self.log.append(fields)

    # ------------------------------------------------------------------ what the pages show

    def last_event(self, cadre_id: str) -> Event | None:
        return self.log.last_event(cadre_id)

    def events_of_day(self, day: date) -> list[Event]:
        """Every event (voids and corrections too) whose best known time falls in `day`."""
        start, end = self.day_bounds(day)
        # Untrusted clocks can be hours off, so ask the log for a wider window, then decide
        # on the corrected time.
        margin = timedelta(days=1)
        return [
            event
            for event in self.log.events_between(start - margin, end + margin)
            if start <= self.true_time(event) < end
        ]

    def presence(self, day: date | None = None) -> dict[str, Presence]:
        """Who is present, departed, or arrived without departing, on `day` (default: today)."""
        now = self.keeper.read()
        today = self.service_day(now.shown)
        day = day or today
        out: dict[str, Presence] = {}
        for cadre_id in self.log.cadre_ids():
            rows = self.log.recent(cadre_id)
            on_day = [
                (i, row)
                for i, row in enumerate(rows)
                if self.service_day(self._when(row, now)) == day
            ]
            if not on_day:
                continue
            index, row = on_day[-1]
            when = self.local(self._when(row, now))
            if row.kind == "departure":
                arrival = (
                    rows[index - 1] if index > 0 and rows[index - 1].kind == "arrival" else None
                )
                worked = when - self._when(arrival, now) if arrival else None
                arrived = self.local(self._when(arrival, now)) if arrival else None
                out[cadre_id] = Presence(cadre_id, "departed", when, arrived, worked)
                continue
            later = index < len(rows) - 1
            elapsed = self._elapsed(row, now)
            open_now = (
                not later
                and day == today
                and (elapsed is None or elapsed <= self.settings.longest_shift)
            )
            state: Literal["present", "no_departure"] = "present" if open_now else "no_departure"
            out[cadre_id] = Presence(cadre_id, state, when, when)
        return out

    def absent(self, day: date | None = None) -> list[str]:
        """Cadres of this site's roster with no arrival on `day`."""
        seen = self.presence(day)
        roster = self.roster()
        return sorted(c for c in roster.cadres if roster.on_site(c) and c not in seen)
