"""The fleet view: what each kiosk runs and how its machine fares, from its latest heartbeat.

A kiosk's heartbeat carries a FleetReport (sync/protocol.py; kiosk/fleet.py makes it): software
version, OS and Python, uptime, disk, the log's size, CPU temperature and the Pi's throttling,
camera, and the event log's last recovery. The centre keeps the whole heartbeat as JSON in
kiosk_status.report; this module reads it back into flat fields the kiosks page sorts and
filters by, and marks what needs someone's attention:

    old_version       behind the newest version any active kiosk reports
    disk_low          free space under fleet_disk_low_mb, or under a tenth of the disk
    hot               CPU at or above fleet_hot_c
    throttled         the Pi says it is throttled, capped or under-voltage right now
    throttled_before  it was, since its last boot (no longer)
    log_lost          the log's last opening dropped records that had been confirmed
    log_repaired      the log's last opening repaired something (a power cut), nothing lost
    restart_needed    settings from the centre wait for the kiosk's next start
    settings_refused  the kiosk refused settings from the centre (a value that does not fit, or
                      one it keeps local)
    rolled_back       the kiosk switched back by itself from a release that failed its trial
    update_refused    the kiosk refused or could not install the release it is offered (a bad
                      signature or hash, no update layout, pip failed)

Kiosks older than the fleet view send no report: their fields are empty and they get no marks
but old_version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from central import kiosk_settings
from sync.protocol import FleetReport, UpdateReport

MARKS = (
    "old_version",
    "disk_low",
    "hot",
    "throttled",
    "throttled_before",
    "log_lost",
    "log_repaired",
    "restart_needed",
    "settings_refused",
    "rolled_back",
    "update_refused",
)
THROTTLED_NOW = 0x0000F  # under-voltage, ARM frequency capped, throttled, soft temperature limit
THROTTLED_SINCE_BOOT = 0xF0000

# Sort keys of the kiosks page -> the field of a fleet row they sort by.
SORTS = {
    "kiosk": "kiosk_id",
    "site": "site_id",
    "seen": "last_heartbeat_at",
    "version": "version_key",
    "os": "os",
    "python": "python",
    "uptime": "uptime_s",
    "disk": "disk_free_bytes",
    "log": "log_bytes",
    "temp": "cpu_temp_c",
    "throttled": "throttled",
    "camera": "camera",
    "fps": "camera_fps",
    "recovery": "recovery_rank",
    "clock": "clock_offset_abs",
    "queue": "queue_length",
}


@dataclass(frozen=True)
class FleetLimits:
    disk_low_bytes: int
    hot_c: float


def version_key(version: str) -> tuple[int, ...]:
    """ "0.10.2" -> (0, 10, 2): numbers compared as numbers. A suffix (".dev1", "rc1") is read
    as more numbers, so it is rough for pre-releases, which a fleet does not run."""
    return tuple(int(n) for n in re.findall(r"\d+", version or ""))


def report_of(row: dict[str, Any]) -> FleetReport | None:
    """The fleet part of the heartbeat the centre keeps for this kiosk, if it sent one."""
    raw = row.get("report")
    if not raw:
        return None
    try:
        fleet = json.loads(raw).get("fleet")
        return None if fleet is None else FleetReport.model_validate(fleet)
    except (ValueError, AttributeError):  # a report stored by an older centre, or damaged
        return None


def update_report_of(row: dict[str, Any]) -> UpdateReport | None:
    """The update part of the kiosk's last heartbeat (kiosk/updates), if it sent one."""
    raw = row.get("report")
    if not raw:
        return None
    try:
        said = json.loads(raw).get("update")
        return None if said is None else UpdateReport.model_validate(said)
    except (ValueError, AttributeError):
        return None


def fleet_rows(
    rows: Iterable[dict[str, Any]],
    limits: FleetLimits,
    offers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """kiosk_health rows with the fleet fields and marks added (`fleet`, `marks`, flat fields).
    `offers`: kiosk id -> the release the centre offers it now (central/releases.py)."""
    rows = list(rows)
    for row in rows:
        fleet = report_of(row)
        row["fleet"] = fleet
        row["update_report"] = update_report_of(row)
        row["offered_version"] = (offers or {}).get(row["kiosk_id"], "")
        row["settings_report"] = kiosk_settings.report_of(row)
        row["version_key"] = version_key(row.get("app_version") or "")
        recovery = fleet.recovery if fleet else None
        offset = row.get("clock_offset_s")
        row.update(
            os=fleet.os if fleet else "",
            python=fleet.python if fleet else "",
            uptime_s=fleet.uptime_s if fleet else None,
            kiosk_uptime_s=fleet.kiosk_uptime_s if fleet else None,
            disk_total_bytes=fleet.disk_total_bytes if fleet else None,
            log_bytes=fleet.log_bytes if fleet else None,
            cpu_temp_c=fleet.cpu_temp_c if fleet else None,
            throttled=fleet.throttled if fleet else None,
            camera=fleet.camera if fleet else "",
            camera_fps=fleet.camera_fps if fleet else None,
            recovery=recovery,
            # worst first when sorted descending: lost > repaired > clean
            recovery_rank=None
            if recovery is None
            else (2 if recovery.lost else int(not recovery.clean)),
            clock_offset_abs=None if offset is None else abs(offset),
        )
    newest = max((r["version_key"] for r in rows if _active(r) and r["version_key"]), default=())
    for row in rows:
        row["marks"] = marks_of(row, newest, limits)
    return rows


def _active(row: dict[str, Any]) -> bool:
    return bool(row.get("enrolled_at")) and not row.get("revoked_at")


def marks_of(row: dict[str, Any], newest: tuple[int, ...], limits: FleetLimits) -> list[str]:
    if not _active(row) or row.get("last_heartbeat_at") is None:
        return []
    marks = []
    if row["version_key"] and row["version_key"] < newest:
        marks.append("old_version")
    free, total = row.get("disk_free_bytes"), row.get("disk_total_bytes")
    if free is not None and (free < limits.disk_low_bytes or (total and free < total / 10)):
        marks.append("disk_low")
    if row.get("cpu_temp_c") is not None and row["cpu_temp_c"] >= limits.hot_c:
        marks.append("hot")
    bits = row.get("throttled")
    if bits is not None:
        if bits & THROTTLED_NOW:
            marks.append("throttled")
        elif bits & THROTTLED_SINCE_BOOT:
            marks.append("throttled_before")
    recovery = row.get("recovery")
    if recovery is not None:
        if recovery.lost:
            marks.append("log_lost")
        elif not recovery.clean:
            marks.append("log_repaired")
    said = row.get("settings_report")
    if said is not None:
        if said.after_restart:
            marks.append("restart_needed")
        if said.problem or said.refused:
            marks.append("settings_refused")
    update = row.get("update_report")
    if update is not None:
        if update.rollbacks:
            marks.append("rolled_back")
        if update.state in ("refused", "failed") and update.offered != row.get("app_version"):
            marks.append("update_refused")
    return marks


def sort_rows(rows: list[dict[str, Any]], sort: str, descending: bool) -> list[dict[str, Any]]:
    """Rows sorted by one of SORTS; kiosks that did not say come last either way."""
    field = SORTS.get(sort, "kiosk_id")
    known = [r for r in rows if r.get(field) not in (None, "", ())]
    unknown = [r for r in rows if r.get(field) in (None, "", ())]
    known.sort(key=lambda r: (r[field], r["kiosk_id"]), reverse=descending)
    return known + unknown
