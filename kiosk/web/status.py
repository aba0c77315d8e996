"""The kiosk's state in words: the screen's top bar and the lead page's readiness list.

Both are built from the same snapshots (clock reading, camera health, sync state, disk, roster)
so the screen and the lead page never disagree. Call inside an app context with a locale.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_babel import gettext as _

from kiosk.services import KioskServices
from kiosk.web.present import duration, reason_text

# Below this much free space the lead is warned; the store itself refuses only when writes fail.
DISK_LOW_BYTES = 200 * 1024 * 1024
ROSTER_OLD_S = 3 * 24 * 3600


@dataclass(frozen=True)
class Item:
    """One line of the readiness list: a label, a value, and ok/warn/bad."""

    key: str
    label: str
    value: str
    state: str  # "ok", "warn" or "bad"

    def as_json(self) -> dict[str, str]:
        return {"key": self.key, "label": self.label, "value": self.value, "state": self.state}


def span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return _("%(n)d s", n=round(seconds)) if seconds < 60 else duration(delta)


def epoch_ms(when: datetime) -> int:
    return int(when.astimezone(UTC).timestamp() * 1000)


# ------------------------------------------------------------------ pieces


def clock_words(services: KioskServices) -> dict[str, Any]:
    reading = services.keeper.read()
    if reading.trusted and reading.source == "ntp":
        short, long, state = _("synced"), _("Synchronised with network time"), "ok"
    elif reading.trusted:
        short = _("set")
        long = (
            _("Set from the centre's time")
            if reading.source == "centre"
            else _("Set from the site lead's phone")
        )
        state = "ok"
    elif reading.source in ("centre", "lead_phone"):
        # The system clock is off but its offset is known: what is shown is right.
        short = _("corrected")
        offset = reading.offset
        if offset >= timedelta(0):
            long = _("System clock %(amount)s behind; shown time corrected", amount=span(offset))
        else:
            long = _("System clock %(amount)s ahead; shown time corrected", amount=span(-offset))
        state = "warn"
    else:
        short, long, state = _("unverified"), _("Not verified: set it from your phone"), "bad"
    return {
        "trusted": reading.trusted,
        "source": reading.source,
        "text": short,
        "long_text": long,
        "state": state,
        "now_ms": epoch_ms(reading.shown),
        "offset_s": reading.offset.total_seconds(),
    }


def network_words(services: KioskServices) -> dict[str, str]:
    state = services.sync_state()
    if not state.get("configured"):
        return {"state": "warn", "text": _("No centre")}
    if state.get("online"):
        return {"state": "ok", "text": _("Online")}
    if state.get("online") is None:
        return {"state": "warn", "text": _("Connecting…")}
    return {"state": "bad", "text": _("Offline")}


# scanner.HealthState values (and "none" when the kiosk has no camera) -> how bad they are.
CAMERA_SEVERITY = {
    "ok": "ok",
    "starting": "warn",
    "blurry": "warn",
    "dark": "warn",
    "frozen": "bad",
    "no_frames": "bad",
    "restarting": "bad",
    "failed": "bad",
    "stopped": "bad",
    "none": "warn",
}


def _camera_state_text(code: str) -> str:
    texts = {
        "ok": _("Camera OK"),
        "starting": _("Camera starting"),
        "blurry": _("Camera out of focus"),
        "dark": _("Too dark for the camera"),
        "frozen": _("The camera picture is frozen"),
        "no_frames": _("No picture from the camera"),
        "restarting": _("Camera lost, reconnecting"),
        "failed": _("Camera failed"),
        "stopped": _("Camera stopped"),
        "none": _("No camera configured"),
    }
    return str(texts.get(code, _("Camera state unknown")))


def camera_words(health: Mapping[str, Any]) -> dict[str, str]:
    code = str(health.get("state", "error"))
    severity = CAMERA_SEVERITY.get(code, "bad")
    text = _camera_state_text(code)
    if severity == "bad":
        note = _("%(problem)s. Use the barcode scanner or tell the site lead.", problem=text)
    elif code in ("blurry", "dark"):
        note = text
    else:
        note = ""
    return {"state": severity, "text": text, "note": note, "code": code}


def banner_text(services: KioskServices) -> str:
    if services.store_problem:
        return reason_text(services.store_problem)
    if not services.roster.current.public_keys:
        return str(_("This kiosk has no badge keys yet: every badge is refused. Enrol the kiosk."))
    return ""


def screen_status(services: KioskServices) -> dict[str, Any]:
    clock = clock_words(services)
    return {
        "now_ms": clock.pop("now_ms"),
        "site_name": services.settings.site_name,
        "clock": {"trusted": clock["trusted"], "text": clock["text"], "state": clock["state"]},
        "network": network_words(services),
        "camera": camera_words(services.camera_health()),
        "banner": banner_text(services),
        "mode": services.mode_view(),
    }


# ------------------------------------------------------------------ the lead's readiness list


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return str(_("%(n)d s ago", n=seconds))
    if seconds < 90 * 60:
        return str(_("%(n)d min ago", n=seconds // 60))
    if seconds < 48 * 3600:
        return str(_("%(n)d h ago", n=seconds // 3600))
    return str(_("%(n)d days ago", n=seconds // 86400))


def _when_text(value: Any, now: datetime) -> str | None:
    if not value:
        return None
    if isinstance(value, int | float):
        when = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value
    elif isinstance(value, datetime):
        when = value
    else:
        return str(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return age_text((now - when).total_seconds())


def readiness(services: KioskServices) -> list[Item]:
    items: list[Item] = []
    now = datetime.now(UTC)

    health = services.camera_health()
    camera = camera_words(health)
    code = camera["code"]
    # The scanner's `detail` is English prose for the log; the page shows its own words.
    items.append(Item("camera", _("Camera"), camera["text"], camera["state"]))
    if health.get("brightness") is not None:
        light = float(health["brightness"])
        items.append(
            Item("light", _("Light"), f"{light:.0f} / 255", "warn" if code == "dark" else "ok")
        )
    if health.get("sharpness") is not None:
        focus = float(health["sharpness"])
        items.append(
            Item("focus", _("Focus"), f"{focus:.0f}", "warn" if code == "blurry" else "ok")
        )
    if health.get("fps") is not None and code != "none":
        items.append(Item("fps", _("Frames per second"), f"{float(health['fps']):.1f}", "ok"))

    clock = clock_words(services)
    items.append(Item("clock", _("Clock"), clock["long_text"], clock["state"]))

    free, total = services.disk_free()
    disk_state = "ok" if free >= DISK_LOW_BYTES else ("warn" if free > 0 else "bad")
    if services.store_problem:
        disk_state = "bad"
    percent = 100 * free / total if total else 0
    items.append(
        Item(
            "disk",
            _("Disk free"),
            _("%(free)s (%(percent)d%%)", free=size_text(free), percent=round(percent)),
            disk_state,
        )
    )

    snapshot = services.roster.current
    roster_file = services.roster.path
    if services.roster.problem:
        items.append(Item("roster", _("Roster"), services.roster.problem, "bad"))
    elif not roster_file.exists():
        items.append(Item("roster", _("Roster"), _("None yet: enrol the kiosk"), "bad"))
    else:
        age_s = time.time() - roster_file.stat().st_mtime
        items.append(
            Item(
                "roster",
                _("Roster"),
                _(
                    "Version %(version)d, %(count)d people, updated %(age)s",
                    version=snapshot.version,
                    count=len(snapshot.cadres),
                    age=age_text(age_s),
                ),
                "ok" if age_s < ROSTER_OLD_S else "warn",
            )
        )

    pending = services.log.pending_count()
    items.append(
        Item("pending", _("Events waiting to sync"), str(pending), "ok" if pending == 0 else "warn")
    )

    sync = services.sync_state()
    if not sync.get("configured"):
        items.append(Item("sync", _("Last sync"), _("No centre configured"), "warn"))
    else:
        success = _when_text(sync.get("last_success"), now)
        items.append(
            Item(
                "sync",
                _("Last sync"),
                success or _("Never"),
                "ok" if sync.get("online") else "warn",
            )
        )
        if sync.get("last_error"):
            items.append(Item("sync_error", _("Last sync error"), str(sync["last_error"]), "bad"))
    return items
