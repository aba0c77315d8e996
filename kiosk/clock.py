"""Time on a kiosk without a hardware clock: what the system says, and what we know better.

A Pi resumes after a power cut from a saved time, minutes to hours behind, until NTP (if any)
steps it. So every event keeps the raw wall time with the boot id, the monotonic time and whether
the clock was trusted; the centre corrects later from what the kiosk learned. The `TimeKeeper`
learns the true time from the centre or from the site lead's phone, ties it to the monotonic clock
of this boot (so a later step of the wall clock does not spoil it), shows the corrected time, and
records what it learned per boot in the instance folder.

`Clock` is the seam to the outside world: `SystemClock` on the Pi, tests/fakes/clock.py in tests.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from kiosk.store.diskio import DiskIO, atomic_write_json

log = logging.getLogger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
# A quartz oscillator without correction drifts up to about 50 ppm: an anchor's uncertainty grows
# by that much per second of age.
DRIFT_PER_SECOND = 50e-6
# The wall clock moved this far against the monotonic clock since the last look: it was set (by a
# person, or stepped by NTP), and the kernel's synchronised flag changed with it. NTP's slewing
# moves it 0.5 ms a second at most.
STEP_SEEN_S = 1.0
TimeSource = Literal["centre", "lead_phone", "ntp"]


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall time as the system has it, timezone-aware (UTC)."""

    def monotonic_ns(self) -> int:
        """Nanoseconds since boot; never goes back within one boot."""

    def boot_id(self) -> str:
        """Changes at every boot; monotonic times compare only within one boot id."""

    def synchronized(self) -> bool:
        """True when the system says its clock is NTP-synchronised."""


# --------------------------------------------------------------------------- the real clock


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>, up to `status`; the kernel writes more, hence the padding.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    ]


_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


def adjtimex_synchronized() -> bool | None:
    """What `timedatectl show -p NTPSynchronized` reports, read straight from the kernel.

    None when adjtimex cannot be called (not Linux, no libc found)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR and not timex.status & _STA_UNSYNC


def timedatectl_synchronized() -> bool | None:
    if shutil.which("timedatectl") is None:
        return None
    try:
        done = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = done.stdout.strip()
    return value == "yes" if value in ("yes", "no") else None


def system_synchronized() -> bool:
    for probe in (adjtimex_synchronized, timedatectl_synchronized):
        answer = probe()
        if answer is not None:
            return answer
    return False


def read_boot_id(path: Path = BOOT_ID_PATH) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        # Without a boot id, claim a fresh one per process: monotonic times from another
        # process are then never compared, which is the safe mistake.
        return f"process-{uuid.uuid4()}"


class SystemClock:
    def __init__(
        self,
        sync_probe: Callable[[], bool] = system_synchronized,
        boot_id_path: Path = BOOT_ID_PATH,
        sync_cache_s: float = 5.0,
    ) -> None:
        self._sync_probe = sync_probe
        self._boot_id = read_boot_id(boot_id_path)
        self._sync_cache_s = sync_cache_s
        self._sync_value = False
        self._sync_checked = -1e18
        self._skew_at_check: float | None = None  # wall minus monotonic seconds, at the probe
        # CLOCK_BOOTTIME keeps counting during suspend; CLOCK_MONOTONIC where it is missing.
        self._clock_id = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic_ns(self) -> int:
        return time.clock_gettime_ns(self._clock_id)

    def boot_id(self) -> str:
        return self._boot_id

    def synchronized(self) -> bool:
        """The kernel's answer, asked again after `sync_cache_s`, and at once after a step of
        the wall clock: setting the time clears the flag, and a cached True would stamp
        events made at the wrong time as trusted."""
        now = time.monotonic()
        skew = self.now().timestamp() - self.monotonic_ns() / 1e9
        stepped = self._skew_at_check is not None and abs(skew - self._skew_at_check) > STEP_SEEN_S
        if stepped or now - self._sync_checked >= self._sync_cache_s:
            self._sync_value = bool(self._sync_probe())
            self._sync_checked = now
            self._skew_at_check = skew
        return self._sync_value


# --------------------------------------------------------------------------- the keeper


@dataclass(frozen=True)
class TimeAnchor:
    """At `monotonic_ns` of boot `boot_id` the true time was `true_time` (the wall clock said
    `wall_time`), learned from `source` to within `uncertainty_s`."""

    boot_id: str
    monotonic_ns: int
    true_time: datetime
    wall_time: datetime
    source: TimeSource
    uncertainty_s: float

    @property
    def offset(self) -> timedelta:
        """True minus wall, when learned. Add it to the boot's wall times to correct them."""
        return self.true_time - self.wall_time

    def true_at(self, monotonic_ns: int) -> datetime:
        return self.true_time + timedelta(microseconds=(monotonic_ns - self.monotonic_ns) / 1000)

    def uncertainty_at(self, monotonic_ns: int) -> float:
        age_s = abs(monotonic_ns - self.monotonic_ns) / 1e9
        return self.uncertainty_s + age_s * DRIFT_PER_SECOND

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["true_time"] = self.true_time.isoformat()
        data["wall_time"] = self.wall_time.isoformat()
        data["offset_s"] = self.offset.total_seconds()
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TimeAnchor:
        return cls(
            boot_id=str(data["boot_id"]),
            monotonic_ns=int(data["monotonic_ns"]),  # type: ignore[call-overload]
            true_time=datetime.fromisoformat(str(data["true_time"])),
            wall_time=datetime.fromisoformat(str(data["wall_time"])),
            source=str(data["source"]),  # type: ignore[arg-type]
            uncertainty_s=float(data["uncertainty_s"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class TimeReading:
    """One look at the clock: what an event stores, and what the kiosk shows."""

    wall: datetime  # the system's time: stored as the event's device_time
    shown: datetime  # best known true time: shown on screen, used by the rules
    monotonic_ns: int
    boot_id: str
    trusted: bool  # the wall time itself is right (NTP, or confirmed by a trusted source)
    source: TimeSource | Literal["unverified"]

    @property
    def offset(self) -> timedelta:
        return self.shown - self.wall


class TimeKeeper:
    """Best known time per boot, kept across restarts in `state_path` (JSON)."""

    def __init__(
        self,
        clock: Clock,
        state_path: Path | None = None,
        *,
        trust_tolerance_s: float = 5.0,
        keep_boots: int = 50,
        disk: DiskIO | None = None,
    ) -> None:
        self.clock = clock
        self.state_path = state_path
        self.trust_tolerance_s = trust_tolerance_s
        self.keep_boots = keep_boots
        self._disk = disk or DiskIO()
        self._lock = threading.Lock()
        self._anchors: dict[str, TimeAnchor] = {}
        self._load()

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            data = json.loads(self.state_path.read_bytes())
            for row in data["anchors"]:
                anchor = TimeAnchor.from_json(row)
                self._anchors[anchor.boot_id] = anchor
        except (ValueError, KeyError, TypeError) as exc:
            # Only corrections are lost; raw times and boot ids are in every event.
            log.error("clock state %s unreadable (%s); no offsets known", self.state_path, exc)
            self._anchors = {}

    def _save(self) -> None:
        if self.state_path is None:
            return
        rows = [a.as_json() for a in list(self._anchors.values())[-self.keep_boots :]]
        try:
            atomic_write_json(self._disk, self.state_path, {"anchors": rows})
        except OSError as exc:
            log.warning("could not save clock offsets: %s", exc)

    def read(self) -> TimeReading:
        wall = self.clock.now()
        mono = self.clock.monotonic_ns()
        boot = self.clock.boot_id()
        if self.clock.synchronized():
            self._note_ntp(boot, mono, wall)
            return TimeReading(wall, wall, mono, boot, True, "ntp")
        anchor = self._anchors.get(boot)
        if anchor is None:
            return TimeReading(wall, wall, mono, boot, False, "unverified")
        shown = anchor.true_at(mono)
        close_enough = abs((shown - wall).total_seconds()) <= self.trust_tolerance_s
        return TimeReading(wall, shown, mono, boot, close_enough, anchor.source)

    def _note_ntp(self, boot: str, mono: int, wall: datetime) -> None:
        """The first synchronised reading of a boot also dates the events made before it."""
        current = self._anchors.get(boot)
        if current is not None and current.source == "ntp":
            return
        self._consider(TimeAnchor(boot, mono, wall, wall, "ntp", 0.5))

    def learn(
        self,
        true_time: datetime,
        source: Literal["centre", "lead_phone"],
        *,
        uncertainty_s: float,
        at_monotonic_ns: int | None = None,
    ) -> TimeAnchor:
        """Take the true time from `source`, measured at `at_monotonic_ns` (default: now).

        The sync agent passes the centre's time with half the round trip as uncertainty; the lead
        page passes the phone's time. A better (less uncertain) anchor of this boot is kept.
        Returns the anchor in force afterwards.
        """
        if true_time.tzinfo is None:
            raise ValueError("the true time needs a UTC offset")
        mono_now = self.clock.monotonic_ns()
        wall_now = self.clock.now()
        mono = mono_now if at_monotonic_ns is None else at_monotonic_ns
        wall = wall_now - timedelta(microseconds=(mono_now - mono) / 1000)
        anchor = TimeAnchor(
            self.clock.boot_id(), mono, true_time.astimezone(UTC), wall, source, uncertainty_s
        )
        return self._consider(anchor)

    def _consider(self, anchor: TimeAnchor) -> TimeAnchor:
        with self._lock:
            current = self._anchors.get(anchor.boot_id)
            if current is None or anchor.uncertainty_s <= current.uncertainty_at(
                anchor.monotonic_ns
            ):
                self._anchors.pop(anchor.boot_id, None)
                self._anchors[anchor.boot_id] = anchor  # newest last, for trimming
                self._save()
                return anchor
            return current

    def anchor(self, boot_id: str | None = None) -> TimeAnchor | None:
        return self._anchors.get(boot_id or self.clock.boot_id())

    def anchors(self) -> list[TimeAnchor]:
        """Every boot's best anchor, oldest first: what the centre needs to correct old times."""
        return list(self._anchors.values())

    def true_time_of(
        self, device_time: datetime, boot_id: str, monotonic_ns: int, clock_trusted: bool
    ) -> datetime:
        """Best estimate of when an event really happened."""
        if clock_trusted:
            return device_time
        anchor = self._anchors.get(boot_id)
        if anchor is None:
            return device_time
        return anchor.true_at(monotonic_ns)
