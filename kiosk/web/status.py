"""The kiosk's state in words: the screen's top bar and the lead page's readiness list.

Both are built from the same snapshots (clock reading, camera health, sync state, disk, roster)
so the screen and the lead page never disagree. Call inside an app context with a locale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_babel import gettext as _

from kiosk import settings as kiosk_settings
from kiosk.centre_trust import TrustError, load_pinned
from kiosk.services import KioskServices
from kiosk.web.present import duration, reason_text
from sync.centre_key import shown

# Below this much free space the lead is warned; the store itself refuses only when writes fail.
DISK_LOW_BYTES = 200 * 1024 * 1024
ROSTER_OLD_S = 3 * 24 * 3600


def span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return _("%(n)d s", n=round(seconds)) if seconds < 60 else duration(delta)


def epoch_ms(when: datetime) -> int:
    return int(when.astimezone(UTC).timestamp() * 1000)


# ------------------------------------------------------------------ pieces


def clock_long_text(source: str, trusted: bool, offset_s: float) -> str:
    """The clock's state in a sentence: where its time comes from, and how far off the system
    clock is when that is known."""
    if trusted and source == "ntp":
        return str(_("Synchronised with network time"))
    if trusted:
        if source == "centre":
            return str(_("Set from the centre's time"))
        return str(_("Set from the site lead's phone"))
    if source in ("centre", "lead_phone"):
        offset = timedelta(seconds=offset_s)
        if offset >= timedelta(0):
            return str(
                _("System clock %(amount)s behind; shown time corrected", amount=span(offset))
            )
        return str(_("System clock %(amount)s ahead; shown time corrected", amount=span(-offset)))
    return str(_("Not verified: set it from your phone"))


def clock_words(services: KioskServices) -> dict[str, Any]:
    reading = services.keeper.read()
    if reading.trusted and reading.source == "ntp":
        short, state = _("synced"), "ok"
    elif reading.trusted:
        short, state = _("set"), "ok"
    elif reading.source in ("centre", "lead_phone"):
        # The system clock is off but its offset is known: what is shown is right.
        short, state = _("corrected"), "warn"
    else:
        short, state = _("unverified"), "bad"
    offset_s = reading.offset.total_seconds()
    return {
        "trusted": reading.trusted,
        "source": reading.source,
        "text": short,
        "long_text": clock_long_text(reading.source, reading.trusted, offset_s),
        "state": state,
        "now_ms": epoch_ms(reading.shown),
        "offset_s": offset_s,
    }


def network_words(services: KioskServices) -> dict[str, str]:
    state = services.sync_state()
    if not state.get("configured"):
        return {"state": "warn", "code": "no_centre", "text": _("No centre")}
    if state.get("last_error_code") == "unauthorized":
        # The centre answered, but to refuse this kiosk: "online" would mislead the lead.
        return {"state": "bad", "code": "shut_out", "text": _("Shut out by the centre")}
    if state.get("online"):
        return {"state": "ok", "code": "online", "text": _("Online")}
    if state.get("online") is None:
        return {"state": "warn", "code": "connecting", "text": _("Connecting…")}
    return {"state": "bad", "code": "offline", "text": _("Offline")}


def shut_out_text() -> str:
    return str(
        _(
            "The centre has shut this kiosk out: badges are still recorded here but not sent. "
            "Ask the centre to enrol it again."
        )
    )


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
    if services.shut_out:
        return shut_out_text()
    if services.setup is not None and services.setup.waiting():
        return ""  # the set-up screen itself says what to do
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


@dataclass(frozen=True)
class Item:
    """One line of the readiness list: what it is about (`key`), how good (ok/warn/bad), what
    it says as a code and values a program can read; `item_words` puts it in the page's words."""

    key: str
    state: str  # "ok", "warn" or "bad"
    code: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "state": self.state,
            "code": self.code,
            "values": dict(self.values),
        }


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


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat(timespec="seconds") if when else None


def readiness(services: KioskServices) -> list[Item]:
    """The kiosk's state for the lead, as codes and values (ISO times, numbers)."""
    items: list[Item] = []
    now = datetime.now(UTC)

    health = services.camera_health()
    camera = camera_words(health)
    code = camera["code"]
    # The scanner's `detail` is English prose for the log; the page shows its own words.
    items.append(Item("camera", camera["state"], code))
    if health.get("brightness") is not None:
        light = float(health["brightness"])
        items.append(Item("light", "warn" if code == "dark" else "ok", "level", {"value": light}))
    if health.get("sharpness") is not None:
        focus = float(health["sharpness"])
        items.append(Item("focus", "warn" if code == "blurry" else "ok", "level", {"value": focus}))
    if health.get("fps") is not None and code != "none":
        items.append(Item("fps", "ok", "level", {"value": round(float(health["fps"]), 1)}))

    reading = services.keeper.read()
    clock = clock_words(services)
    clock_code = reading.source if reading.trusted else f"{reading.source}_untrusted"
    if not reading.trusted and reading.source in ("centre", "lead_phone"):
        clock_code = "corrected"
    items.append(
        Item(
            "clock",
            clock["state"],
            clock_code,
            {
                "source": reading.source,
                "trusted": reading.trusted,
                "offset_s": round(reading.offset.total_seconds(), 3),
            },
        )
    )

    free, total = services.disk_free()
    disk_state = "ok" if free >= DISK_LOW_BYTES else ("warn" if free > 0 else "bad")
    if services.store_problem:
        disk_state = "bad"
    items.append(
        Item(
            "disk",
            disk_state,
            services.store_problem or ("low" if disk_state != "ok" else "ok"),
            {"free_bytes": free, "total_bytes": total},
        )
    )

    snapshot = services.roster.current
    roster_file = services.roster.path
    if services.roster.problem:
        # The roster store's problem is English prose for the log: the code says enough.
        items.append(Item("roster", "bad", "unreadable", {"detail": services.roster.problem}))
    elif not roster_file.exists():
        items.append(Item("roster", "bad", "missing"))
    else:
        updated = datetime.fromtimestamp(roster_file.stat().st_mtime, UTC)
        age_s = (now - updated).total_seconds()
        items.append(
            Item(
                "roster",
                "ok" if age_s < ROSTER_OLD_S else "warn",
                "ok" if age_s < ROSTER_OLD_S else "old",
                {
                    "version": snapshot.version,
                    "count": len(snapshot.cadres),
                    "updated_at": _iso(updated),
                },
            )
        )

    report = services.log.recovery
    if report.lost_anything:
        recovery_state, recovery_code = "bad", "lost"
    elif report.clean:
        recovery_state, recovery_code = "ok", "clean"
    else:
        recovery_state, recovery_code = "ok", "repaired"
    items.append(
        Item(
            "recovery",
            recovery_state,
            recovery_code,
            {
                "opened_at": _iso(services.log_opened_at),
                "lost_events": report.lost_events,
                "dropped_seqs": [list(pair) for pair in report.dropped_seqs],
                # English, for a program's log; the page words the code and the count instead.
                "detail": report.summary(),
            },
        )
    )

    damaged = kiosk_settings.damaged_file(services.instance)
    if damaged:
        # kiosk.toml no longer reads: the kiosk runs on its copy from before its last rewrite
        # ("previous") or on the lines that still read ("lines").
        items.append(Item("settings", "bad", damaged))
    centre = services.centre_settings
    if centre.version or centre.problem:
        if centre.problem:
            code = "problem"
        elif centre.after_restart:
            code = "after_restart"
        else:
            code = "refused" if centre.refused else "applied"
        items.append(
            Item(
                "centre_settings",
                "ok" if code == "applied" else "warn",
                code,
                {
                    "version": centre.version,
                    "applied": list(centre.applied),
                    "after_restart": list(centre.after_restart),
                    "refused": list(centre.refused),
                    "detail": centre.problem,  # English, for a program's log
                },
            )
        )

    items.extend(peer_items(services))

    sync = services.sync_state()
    pending = services.log.pending_count()
    error_code = sync.get("last_error_code")
    last_success = _moment(sync.get("last_success"))
    interval = services.settings.sync_interval_s
    # "Behind": the last exchange that worked is older than two rounds of the agent, so what
    # waits is not being sent.
    behind = last_success is None or (now - last_success).total_seconds() > 2 * interval
    if not sync.get("configured"):
        pending_state = "ok" if pending == 0 else "warn"
    elif pending == 0:
        pending_state = "ok"
    elif error_code == "unauthorized" or (behind and error_code):
        pending_state = "bad"
    else:
        pending_state = "warn" if behind else "ok"
    items.append(Item("pending", pending_state, "count", {"count": pending}))

    if not sync.get("configured"):
        items.append(Item("sync", "warn", "not_configured"))
        return items
    if error_code == "unauthorized":
        sync_state, sync_code = "bad", "shut_out"
    elif last_success is None:
        sync_state, sync_code = ("warn", "never") if not error_code else ("bad", "never")
    elif error_code or behind:
        sync_state, sync_code = "bad" if behind else "warn", "failing"
    else:
        sync_state, sync_code = "ok", "ok"
    items.append(
        Item(
            "sync",
            sync_state,
            sync_code,
            {
                "last_success_at": _iso(last_success),
                "last_error_at": _iso(_moment(sync.get("last_error_at"))),
                "error_code": error_code,
                # English, for a program's log; the page words `error_code` instead.
                "detail": sync.get("last_error"),
            },
        )
    )
    items.append(centre_key_item(services, sync))
    return items


def centre_settings_text(item: Item) -> str:
    values = item.values
    parts = [str(_("version %(n)d", n=int(values.get("version") or 0)))]
    if item.code == "problem":
        parts.append(str(_("not taken: a value does not fit this kiosk")))
    if values.get("after_restart"):
        names = ", ".join(values["after_restart"])
        parts.append(str(_("after restart: %(names)s", names=names)))
    if values.get("refused"):
        names = ", ".join(values["refused"])
        parts.append(str(_("kept as set on this kiosk: %(names)s", names=names)))
    if item.code in ("applied", "after_restart") and values.get("applied"):
        names = ", ".join(values["applied"])
        parts.append(str(_("in effect now: %(names)s", names=names)))
    return " · ".join(parts)


def peer_items(services: KioskServices) -> list[Item]:
    """One line per peer the centre named (reachable, how far behind, or why dropped), and the
    conflicts late records showed. None when peers are off."""
    peers = services.peers
    if peers is None:
        return []
    items = []
    for status in peers.link.status():
        if status.state == "ok":
            state = "ok" if not status.behind else "warn"
        elif status.state == "not_yet":
            state = "warn"
        else:
            state = "bad"
        last_ok = datetime.fromtimestamp(status.last_ok_at, UTC) if status.last_ok_at else None
        items.append(
            Item(
                "peer",
                state,
                status.state,
                {
                    "kiosk_id": status.kiosk_id,
                    "address": status.address,
                    "behind": status.behind,
                    "known_seq": status.known_seq,
                    "last_ok_at": _iso(last_ok),
                    # English, for a program's log; the page words the code instead.
                    "detail": status.detail,
                },
            )
        )
    conflicts = len(peers.store.conflicts())
    if conflicts:
        items.append(Item("peer_conflicts", "warn", "count", {"count": conflicts}))
    return items


def peer_text(item: Item, now: datetime) -> str:
    values = item.values
    texts = {
        "ok": _("Reachable"),
        "not_yet": _("Not asked yet"),
        "no_address": _("Dropped: its address is not known"),
        "unreachable": _("Dropped: cannot be reached"),
        "slow": _("Dropped: too slow to answer"),
        "garbage": _("Dropped: answered garbage"),
        "too_large": _("Dropped: answer too large"),
        "bad_signature": _("Dropped: answer not signed by that kiosk"),
        "refused": _("Dropped: it refused this kiosk"),
        "malformed": _("Dropped: a record it sent is malformed"),
        "bad_hash": _("Dropped: a record's hash does not hold"),
        "other_kiosk": _("Dropped: it sent another kiosk's record"),
        "other_site": _("Dropped: it sent another site's record"),
        "broken_chain": _("Dropped: its records do not chain"),
        "no_proof": _("Dropped: a scan without its badge proof"),
        "bad_proof": _("Dropped: a badge proof that does not verify"),
    }
    parts = [str(texts.get(item.code, item.code))]
    behind = values.get("behind")
    if behind:
        parts.append(str(_("%(count)d record(s) behind", count=int(behind))))
    last_ok = _moment(values.get("last_ok_at"))
    if last_ok is not None and item.code != "ok":
        parts.append(str(_("last heard %(age)s", age=age_text((now - last_ok).total_seconds()))))
    return " · ".join(parts)


def centre_key_item(services: KioskServices, sync: Mapping[str, Any]) -> Item:
    """Whether the kiosk trusts what its centre says: the key pinned at enrolment, and whether
    the latest answer was refused for not being signed by it (docs/security.md)."""
    try:
        pinned = load_pinned(services.instance)
    except TrustError as exc:
        return Item("centre_key", "bad", "damaged", {"detail": str(exc)})
    if pinned is None:
        return Item("centre_key", "bad", "none_pinned")
    fingerprint = shown(pinned.fingerprint)
    if sync.get("last_error_code") == "untrusted":
        # English, for a program's log (and the page: the reason names keys and what failed).
        detail = str(sync.get("last_error") or "")
        return Item("centre_key", "bad", "refused", {"fingerprint": fingerprint, "detail": detail})
    return Item("centre_key", "ok", "pinned", {"fingerprint": fingerprint})


def item_words(item: Item, now: datetime | None = None) -> tuple[str, str]:
    """The readiness line's label and value in the page's language."""
    now = now or datetime.now(UTC)
    values = item.values
    labels = {
        "camera": _("Camera"),
        "light": _("Light"),
        "focus": _("Focus"),
        "fps": _("Frames per second"),
        "clock": _("Clock"),
        "disk": _("Disk free"),
        "roster": _("Roster"),
        "settings": _("Settings file"),
        "recovery": _("Log at start"),
        "centre_settings": _("Settings from the centre"),
        "pending": _("Events waiting to sync"),
        "sync": _("Centre"),
        "centre_key": _("Centre's key"),
    }
    label = str(labels.get(item.key, item.key))
    if item.key == "peer":
        return str(_("Gate %(kiosk)s", kiosk=values.get("kiosk_id", ""))), peer_text(item, now)
    if item.key == "peer_conflicts":
        return str(_("Records in conflict between gates")), str(
            _("%(count)d: see the site's gates", count=int(values.get("count") or 0))
        )
    if item.key == "camera":
        return label, _camera_state_text(item.code)
    if item.key == "light":
        return label, f"{values['value']:.0f} / 255"
    if item.key in ("focus", "fps"):
        value = values["value"]
        return label, f"{value:.0f}" if item.key == "focus" else f"{value:.1f}"
    if item.key == "clock":
        return label, clock_long_text(
            str(values.get("source")), bool(values.get("trusted")), float(values.get("offset_s", 0))
        )
    if item.key == "disk":
        free, total = int(values["free_bytes"]), int(values["total_bytes"])
        percent = round(100 * free / total) if total else 0
        text = _("%(free)s (%(percent)d%%)", free=size_text(free), percent=percent)
        if item.code in STORE_PROBLEMS:
            text = f"{text} · {reason_text(item.code)}"
        return label, str(text)
    if item.key == "roster":
        if item.code == "unreadable":
            return label, str(_("Cannot be read: enrol the kiosk again or ask the centre"))
        if item.code == "missing":
            return label, str(_("None yet: enrol the kiosk"))
        updated = _moment(values.get("updated_at"))
        age = age_text((now - updated).total_seconds()) if updated else "?"
        return label, str(
            _(
                "Version %(version)d, %(count)d people, updated %(age)s",
                version=int(values["version"]),
                count=int(values["count"]),
                age=age,
            )
        )
    if item.key == "recovery":
        started = _moment(values.get("opened_at"))
        since = (
            _("started %(age)s", age=age_text((now - started).total_seconds())) if started else ""
        )
        texts = {
            "clean": _("Opened clean"),
            # A power cut left work half done (a line never confirmed, a fold unfinished): the
            # log finished or cut it; every event confirmed is there.
            "repaired": _("Repaired after an unclean stop; nothing lost"),
            "lost": _(
                "%(count)d event(s) could not be read back: kept aside in damaged/; "
                "tell the centre",
                count=int(values.get("lost_events") or 0),
            ),
        }
        text = str(texts.get(item.code, item.code))
        return label, f"{text} · {since}" if since else text
    if item.key == "settings":
        if item.code == "previous":
            return label, str(
                _("kiosk.toml is damaged: running with its copy from before its last change")
            )
        return label, str(
            _("kiosk.toml is damaged: running with the lines that could still be read")
        )
    if item.key == "centre_settings":
        return label, centre_settings_text(item)
    if item.key == "pending":
        return label, str(values["count"])
    if item.key == "sync":
        success = _moment(values.get("last_success_at"))
        last = (
            _("last sync %(age)s", age=age_text((now - success).total_seconds()))
            if success
            else _("never synced")
        )
        texts = {
            "not_configured": _("No centre configured"),
            "shut_out": shut_out_text(),
            "never": _("Not reached yet"),
            "ok": _("Online"),
            "failing": _(
                "Not reached: %(problem)s", problem=sync_problem_text(values.get("error_code"))
            ),
        }
        text = str(texts.get(item.code, item.code))
        if item.code != "not_configured":
            text = f"{text} · {last}"
        return label, text
    if item.key == "centre_key":
        if item.code == "none_pinned":
            return label, str(
                _("None pinned: the kiosk takes nothing from the centre (kiosk pin-centre)")
            )
        if item.code in ("refused", "damaged"):
            return label, str(_("Answers refused: %(reason)s", reason=values.get("detail", "")))
        return label, str(
            _(
                "%(fingerprint)s: every answer checked",
                fingerprint=str(values.get("fingerprint", ""))[:19],
            )
        )
    return label, item.code


STORE_PROBLEMS = frozenset({"store_full", "store_read_only", "store_failed"})


def sync_problem_text(code: Any) -> str:
    texts = {
        "unreachable": _("the network or the centre cannot be reached"),
        "refused": _("the centre refused the request"),
        "incomplete": _("the centre answered for part of the events; the rest is sent again"),
        "internal": _("an error inside the kiosk (see its log)"),
        "unauthorized": _("the centre refused this kiosk's token"),
        "untrusted": _("an answer not signed by this kiosk's centre was refused"),
    }
    return str(texts.get(str(code), _("the last sync ended early")))
