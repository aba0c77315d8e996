"""The site's time: service days, the best known true time of an event, and how long ago it was.

A Pi's wall clock can be hours off after a power cut. Within one boot the monotonic clock says
how long ago something happened whatever the wall clock did; across boots the `TimeKeeper`'s best
known true times are compared. A time the site lead typed is taken as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.clock import TimeKeeper, TimeReading
from kiosk.rules.outcome import FLAG_OPERATOR_TIME
from kiosk.store import EventSummary
from sync.events import Event


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


class SiteTime:
    def __init__(self, keeper: TimeKeeper, settings: RuleSettings) -> None:
        self.keeper = keeper
        self.settings = settings

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

    def elapsed(self, row: EventSummary, now: TimeReading) -> timedelta | None:
        """How long ago `row` happened; None when the clocks cannot tell (negative)."""
        if FLAG_OPERATOR_TIME not in row.flags and row.boot_id == now.boot_id:
            return timedelta(microseconds=(now.monotonic_ns - row.monotonic_ns) / 1000)
        span = now.shown - self.true_time(row)
        return span if span >= timedelta(0) else None

    def when(self, row: EventSummary, now: TimeReading) -> datetime:
        """When `row` happened, on the timeline shown now."""
        if FLAG_OPERATOR_TIME not in row.flags and row.boot_id == now.boot_id:
            return now.shown - timedelta(microseconds=(now.monotonic_ns - row.monotonic_ns) / 1000)
        return self.true_time(row)
