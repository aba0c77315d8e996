"""A settable clock for tests: wall time, monotonic time, boot id and NTP state under control.

clock = FakeClock(datetime(2026, 11, 29, 5, 20, tzinfo=CST))
clock.advance(minutes=5)          # time passes: wall and monotonic move together
clock.jump(timedelta(hours=-1))   # the wall clock is stepped; monotonic does not move
clock.reboot("boot-2", wall=...)  # a power cut: new boot id, monotonic starts again
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(
        self,
        wall: datetime,
        *,
        boot_id: str = "boot-1",
        monotonic_ns: int = 10_000_000_000,
        synchronized: bool = True,
    ) -> None:
        if wall.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._wall = wall.astimezone(UTC)
        self._mono = monotonic_ns
        self._boot_id = boot_id
        self._synchronized = synchronized

    # the Clock protocol
    def now(self) -> datetime:
        return self._wall

    def monotonic_ns(self) -> int:
        return self._mono

    def boot_id(self) -> str:
        return self._boot_id

    def synchronized(self) -> bool:
        return self._synchronized

    # control
    def advance(
        self, seconds: float = 0, *, minutes: float = 0, hours: float = 0, days: float = 0
    ) -> None:
        step = timedelta(seconds=seconds, minutes=minutes, hours=hours, days=days)
        if step < timedelta(0):
            raise ValueError("time does not run backwards; use jump() to step the wall clock")
        self._wall += step
        self._mono += int(step.total_seconds() * 1e9)

    def jump(self, delta: timedelta) -> None:
        """Step the wall clock only (NTP correction, or a person setting the date)."""
        self._wall += delta

    def set_wall(self, wall: datetime) -> None:
        self._wall = wall.astimezone(UTC)

    def set_synchronized(self, value: bool) -> None:
        self._synchronized = value

    def reboot(
        self,
        boot_id: str,
        *,
        wall: datetime | None = None,
        synchronized: bool = False,
        monotonic_ns: int = 5_000_000_000,
    ) -> None:
        if wall is not None:
            self._wall = wall.astimezone(UTC)
        self._boot_id = boot_id
        self._mono = monotonic_ns
        self._synchronized = synchronized
