"""What a kiosk tells the centre's fleet view about itself (sync.protocol.FleetReport).

The machine is read through a seam, `Machine`: files under /sys, /proc and /etc, one command
(`vcgencmd get_throttled`, the Pi firmware's word on under-voltage and throttling) and the disk's
usage. `HostMachine` reads the real ones; tests hand in a fake that says what a hot, throttled Pi
would. Whatever a machine does not say (no thermal zone in a container, no vcgencmd off a Pi)
is left out of the report rather than guessed.

Nothing here runs on the scan path: the sync agent asks for a report with each heartbeat
(every `sync_interval_s`), on its own thread.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sync.protocol import FleetReport, RecoveryNote

log = logging.getLogger(__name__)

THERMAL_ZONES = Path("/sys/class/thermal")
OS_RELEASE = Path("/etc/os-release")
PROC_UPTIME = Path("/proc/uptime")
BOARD_MODEL = Path("/proc/device-tree/model")
VCGENCMD = ("vcgencmd", "get_throttled")
COMMAND_TIMEOUT_S = 2.0


class Machine(Protocol):
    """The outside world the report is read from."""

    def read_text(self, path: Path) -> str | None:
        """The file's text, or None when it is missing or unreadable."""

    def list_dir(self, path: Path) -> list[str]:
        """Names in a folder ([] when there is none)."""

    def run(self, argv: tuple[str, ...]) -> str | None:
        """A short command's standard output, or None when it is absent or fails."""

    def disk_usage(self, path: Path) -> tuple[int, int] | None:
        """(total, free) bytes of the file system holding `path`."""

    def tree_bytes(self, path: Path) -> int | None:
        """Bytes of the files under `path`."""


class HostMachine:
    """The machine the kiosk runs on."""

    def read_text(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def list_dir(self, path: Path) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def run(self, argv: tuple[str, ...]) -> str | None:
        if shutil.which(argv[0]) is None:
            return None
        try:
            done = subprocess.run(  # a fixed command, no shell
                argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("%s failed: %s", " ".join(argv), exc)
            return None
        return done.stdout if done.returncode == 0 else None

    def disk_usage(self, path: Path) -> tuple[int, int] | None:
        try:
            usage = shutil.disk_usage(path)
        except OSError:
            return None
        return usage.total, usage.free

    def tree_bytes(self, path: Path) -> int | None:
        total = 0
        try:
            for folder, _dirs, files in os.walk(path):
                for name in files:
                    try:
                        total += os.stat(os.path.join(folder, name)).st_size
                    except OSError:  # folded or archived away while we walked
                        continue
        except OSError:
            return None
        return total


def os_name(text: str | None) -> str:
    """PRETTY_NAME of an os-release file ("Debian GNU/Linux 12 (bookworm)")."""
    for line in (text or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PRETTY_NAME":
            return value.strip().strip('"').strip("'")[:200]
    return ""


def cpu_temperature(machine: Machine) -> float | None:
    """The CPU's temperature in °C: the thermal zone of type cpu-thermal (a Pi) or the first
    one that reads, in millidegrees as the kernel gives it."""
    zones = [n for n in machine.list_dir(THERMAL_ZONES) if n.startswith("thermal_zone")]
    readings: list[tuple[bool, float]] = []
    for zone in zones:
        raw = machine.read_text(THERMAL_ZONES / zone / "temp")
        try:
            value = int((raw or "").strip()) / 1000.0
        except ValueError:
            continue
        kind = (machine.read_text(THERMAL_ZONES / zone / "type") or "").strip()
        readings.append((kind in ("cpu-thermal", "cpu_thermal", "x86_pkg_temp"), value))
    if not readings:
        return None
    preferred = [value for is_cpu, value in readings if is_cpu]
    value = preferred[0] if preferred else readings[0][1]
    return round(value, 1) if -60 <= value <= 200 else None


def throttled_bits(output: str | None) -> int | None:
    """The mask `vcgencmd get_throttled` prints ("throttled=0x50005")."""
    if not output:
        return None
    _, _, value = output.strip().partition("=")
    try:
        bits = int(value.strip(), 16)
    except ValueError:
        return None
    return bits if 0 <= bits <= 0xFFFFFFFF else None


def uptime_seconds(text: str | None) -> int | None:
    try:
        return int(float((text or "").split()[0]))
    except (ValueError, IndexError):
        return None


def recovery_note(report: Any, opened_at: datetime | None) -> RecoveryNote | None:
    """kiosk.store's RecoveryReport of the last open, as the heartbeat carries it."""
    if report is None:
        return None
    return RecoveryNote(
        clean=bool(report.clean),
        lost=bool(report.lost_anything),
        lost_events=int(getattr(report, "lost_events", 0)),
        summary=str(report.summary())[:500],
        opened_at=opened_at,
    )


@dataclass
class FleetFacts:
    """What the report needs of the running kiosk."""

    instance: Path
    log_folder: Path
    camera_health: Callable[[], Mapping[str, Any]]
    recovery: Callable[[], RecoveryNote | None]
    machine: Machine
    started_monotonic: float
    monotonic: Callable[[], float] = time.monotonic


def fleet_report(facts: FleetFacts) -> FleetReport:
    machine = facts.machine
    usage = machine.disk_usage(facts.instance)
    camera = facts.camera_health()
    fps = camera.get("fps")
    return FleetReport(
        os=os_name(machine.read_text(OS_RELEASE)),
        python=platform.python_version(),
        machine=platform.machine()[:32],
        board=(machine.read_text(BOARD_MODEL) or "").replace("\x00", "").strip()[:200],
        uptime_s=uptime_seconds(machine.read_text(PROC_UPTIME)),
        kiosk_uptime_s=max(0, int(facts.monotonic() - facts.started_monotonic)),
        disk_total_bytes=usage[0] if usage else None,
        log_bytes=machine.tree_bytes(facts.log_folder),
        cpu_temp_c=cpu_temperature(machine),
        throttled=throttled_bits(machine.run(VCGENCMD)),
        camera=str(camera.get("source") or "")[:200],
        camera_fps=float(fps) if isinstance(fps, int | float) and 0 <= fps <= 1000 else None,
        recovery=facts.recovery(),
    )
