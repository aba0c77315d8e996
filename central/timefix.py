"""Putting kiosk events on true time, per boot.

A Pi has no clock that survives a power cut: after one, its wall clock may be hours behind until
NTP or the centre sets it, and it may jump forward in the middle of a boot. The monotonic clock
never jumps within a boot. So each time a kiosk learns how far its wall clock is from true time
(a `ClockSample`: at monotonic time m the wall clock showed w and true time was w + offset), the
centre keeps an *anchor* for that boot: true time T at monotonic time m. Any event of the boot is
then placed at T + (event.monotonic_ns - m), whatever its wall clock said. An event written
while the kiosk's clock was synchronised (`clock_trusted`) keeps its own time.

The anchor is the latest sample of the boot (monotonic clocks drift a few seconds a day, so the
nearest sample is the best one); an event is corrected with the anchor known when it arrives, and
events that arrived before their boot had any anchor are corrected when the first one comes.
Both times are kept: `device_time` as the kiosk wrote it, `corrected_time` as the centre places
it, and `time_status` says which: "trusted" (the kiosk's clock was synchronised), "corrected"
(placed from an anchor) or "uncorrected" (neither: listed as an anomaly until an anchor comes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sync.protocol import ClockSample

# A sample from a round trip slower than this says too little about the offset to be used.
MAX_USEFUL_RTT_S = 10.0


def to_utc_naive(value: datetime) -> datetime:
    """The storage form of every time: naive, in UTC. Naive input is taken to be UTC already."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def from_utc_naive(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DayRule:
    """Service days: a day runs from `day_start` local time to the same time the next day."""

    zone: ZoneInfo
    day_start: time
    # The last day looked up and its bounds: events come in runs of one day, and converting
    # each one's time zone was a good part of storing it.
    _last: list[tuple[datetime, datetime, date]] = field(
        default_factory=list, compare=False, hash=False, repr=False
    )

    @classmethod
    def of(cls, timezone: str, day_start: str) -> DayRule:
        hours, minutes = (int(part) for part in day_start.split(":"))
        return cls(ZoneInfo(timezone), time(hours, minutes))

    def service_day(self, utc_naive: datetime) -> date:
        last = self._last[-1] if self._last else None
        if last is not None and last[0] <= utc_naive < last[1]:
            return last[2]
        local = from_utc_naive(utc_naive).astimezone(self.zone).replace(tzinfo=None)
        shift = timedelta(hours=self.day_start.hour, minutes=self.day_start.minute)
        day = (local - shift).date()
        start, end = self.bounds(day)
        self._last[:] = [(start, end, day)]
        return day

    def bounds(self, day: date) -> tuple[datetime, datetime]:
        """[start, end) of a service day as naive UTC."""
        start = datetime.combine(day, self.day_start, tzinfo=self.zone)
        end = datetime.combine(day + timedelta(days=1), self.day_start, tzinfo=self.zone)
        return to_utc_naive(start), to_utc_naive(end)


@dataclass(frozen=True)
class Anchor:
    mono_ns: int
    true_time: datetime  # naive UTC
    offset_s: float
    rtt_s: float | None
    source: str

    def place(self, monotonic_ns: int) -> datetime:
        return self.true_time + timedelta(microseconds=(monotonic_ns - self.mono_ns) // 1000)


def anchor_of(sample: ClockSample) -> Anchor:
    true_time = to_utc_naive(sample.device_time) + timedelta(seconds=sample.offset_s)
    return Anchor(sample.monotonic_ns, true_time, sample.offset_s, sample.rtt_s, sample.source)


def usable(sample: ClockSample) -> bool:
    return sample.rtt_s is None or sample.rtt_s <= MAX_USEFUL_RTT_S


def newer_anchor(current: Anchor | None, candidate: Anchor) -> bool:
    """Whether `candidate` should replace the boot's anchor: the latest sample wins."""
    return current is None or candidate.mono_ns >= current.mono_ns


def correct(
    device_time_utc: datetime, monotonic_ns: int, clock_trusted: bool, anchor: Anchor | None
) -> tuple[datetime, str]:
    """(corrected_time, time_status) of one event.

    A synchronised clock is more precise than any anchor (which is off by up to half a round
    trip, plus drift), so a trusted event keeps its own time.
    """
    if clock_trusted:
        return device_time_utc, "trusted"
    if anchor is not None:
        return anchor.place(monotonic_ns), "corrected"
    return device_time_utc, "uncorrected"
