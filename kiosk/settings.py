"""Every kiosk setting, declared once with its default and help.

Read from `kiosk.toml` in the instance folder, then `KIOSK_<NAME>` environment variables.
docs/settings.md must list each one (a test checks). A kiosk.toml that no longer reads as TOML
does not stop the kiosk from starting (`load_at_start`).
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from sync.config import SettingsError, StrictSettings, TimeZoneName, env_name, load_settings

log = logging.getLogger(__name__)

ENV_PREFIX = "KIOSK_"
INSTANCE_ENV = "KIOSK_INSTANCE"
SETTINGS_FILE = "kiosk.toml"
# kiosk.toml as it was before the kiosk last rewrote it (enrolment, settings from the centre).
PREVIOUS_FILE = "kiosk.toml.prev"


class KioskSettings(StrictSettings):
    # Identity (written at enrolment)
    kiosk_id: str = Field("kiosk-1", description="This kiosk's id, unique across all sites.")
    site_id: str = Field("", description="Id of the assembly point this kiosk stands at.")
    site_name: str = Field("", description="Name of the site shown on the kiosk screen.")
    timezone: TimeZoneName = Field("Asia/Shanghai", description="IANA time zone of the site.")
    language: Literal["zh-CN", "en"] = Field(
        "zh-CN",
        description="Language of the kiosk screen, and of the lead page when the phone's "
        "browser asks for neither Chinese nor English.",
    )

    # Camera
    camera_source: Literal["usb", "picamera", "file", "images", "url", "demo"] = Field(
        "usb",
        description="Where frames come from: usb (OpenCV), picamera (picamera2), file (a video), "
        "images (a folder), url (HTTP/RTSP stream) or demo (synthesised badges).",
    )
    camera_device: str = Field(
        "0",
        description="Camera index or /dev/videoN for usb; path for file and images; URL for url.",
    )
    camera_width: int = Field(640, ge=160, le=4096, description="Frame width in pixels.")
    camera_height: int = Field(480, ge=120, le=3072, description="Frame height in pixels.")
    camera_fps: float = Field(
        15.0, gt=0, le=120, description="Frames per second asked of the camera."
    )
    camera_repeat_s: float = Field(
        3.0,
        ge=0,
        le=60,
        description="A badge held in view is read once; it is read again only after it has been "
        "out of view this many seconds (the check-in repeat window is repeat_window_s).",
    )
    camera_restart_backoff_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="A camera that fails is reopened after this many seconds, doubling after "
        "each failed attempt up to camera_restart_backoff_max_s.",
    )
    # 5 s: a camera plugged back in is seen within seconds (measured: 30 s left a replugged
    # camera unused for up to 22 s), and a failed open of a USB device costs next to nothing.
    camera_restart_backoff_max_s: float = Field(
        5.0, gt=0, le=3600, description="Longest wait between two attempts to reopen the camera."
    )
    camera_max_restarts: int = Field(
        20,
        ge=0,
        description="Reopenings in a row (with no 30 s of steady frames between) before the "
        "scanner gives up and shows the camera as failed (the kiosk still asks again every "
        "camera_restart_backoff_max_s); 0 never gives up.",
    )
    camera_preview_fps: float = Field(
        5.0,
        gt=0,
        le=30,
        description="Most preview pictures per second made for the pages (JPEG, made only while "
        "someone watches).",
    )
    camera_demo_seed: int = Field(
        0, ge=0, description="Seed of the demo camera's synthesised scene (camera_source = demo)."
    )

    # Photos (docs/decisions.md: "A photo with every camera check-in")
    photo_capture: bool = Field(
        False,
        description="Keep a photo (320 px, greyscale JPEG) with every camera check-in and check "
        "for a face in view; the screen then says so. Usually pushed from the centre per site.",
    )
    photo_retention_days: int = Field(
        30,
        ge=1,
        le=365,
        description="Photos older than this many days are deleted (here and at the centre).",
    )
    photo_store_mb: int = Field(
        1024,
        ge=1,
        le=1_000_000,
        description="Most megabytes of photos kept; past it check-ins are recorded without a "
        "photo (flagged no_photo).",
    )
    require_face: bool = Field(
        False,
        description="With no face in view when a badge is read, ask the person to face the "
        "camera and wait up to face_wait_s for a face before recording (flagged no_face if none).",
    )
    face_wait_s: float = Field(
        2.0, ge=0, le=10, description="Seconds require_face waits for a face."
    )
    face_check_fps: float = Field(
        2.0,
        gt=0,
        le=15,
        description="Frames checked for a face per second at most (each check costs 20-40 ms "
        "of a core, beside the scan loop): face_lookback_s should span two or more.",
    )
    face_lookback_s: float = Field(
        1.5,
        ge=0.2,
        le=10,
        description="A face seen this many seconds before the badge was read counts as in view.",
    )

    # Check-in rules
    repeat_window_s: float = Field(
        120.0, ge=0, description="A badge seen again within this many seconds makes no new event."
    )
    longest_shift_h: float = Field(
        16.0, gt=0, description="An arrival older than this is flagged 'no departure'."
    )
    service_day_start: str = Field(
        "03:00", description="Local time (HH:MM) at which a new service day begins."
    )
    failed_scan_log_per_minute: int = Field(
        20, ge=1, le=600, description="At most this many refused scans are logged per minute."
    )
    failed_scan_payload_chars: int = Field(
        64, ge=8, le=1000, description="Refused payloads are cut to this many characters."
    )

    # Local store
    retention_days: int = Field(
        90,
        ge=1,
        description="Events acknowledged by the centre and older than this many days are moved "
        "to the log's archive folder (never deleted).",
    )
    store_segment_events: int = Field(
        1000, ge=10, le=100_000, description="Events per TinyDB segment file of the local log."
    )
    store_checkpoint_events: int = Field(
        250,
        ge=1,
        le=10_000,
        description="Journalled events moved into the segment files in one batch.",
    )
    clock_trust_tolerance_s: float = Field(
        5.0,
        gt=0,
        description="An unsynchronised clock within this many seconds of a trusted time (centre "
        "or the lead's phone) counts as trusted.",
    )

    # Site lead
    lead_pin: str = Field(
        "",
        description="Do not use: set the lead's PIN with `kiosk set-pin`, which keeps only a "
        "scrypt hash. A PIN in clear found here (or in KIOSK_LEAD_PIN) is hashed at start and "
        "removed from kiosk.toml.",
    )
    lead_max_failures: int = Field(
        10,
        ge=1,
        le=1000,
        description="Wrong PINs from one address (an IPv6 /64) that lock the login for it.",
    )
    lead_lockout_s: float = Field(
        900.0,
        ge=1,
        description="Seconds an address stays locked out after too many wrong PINs; each "
        "further lockout of it doubles, up to a day. Kept across restarts.",
    )
    lead_session_h: float = Field(
        12.0, gt=0, le=168, description="Hours a site lead stays logged in on a phone."
    )

    # Kiosk screen
    sounds: bool = Field(True, description="Play a sound for each scan result on the kiosk screen.")
    show_arrive_leave_buttons: bool = Field(
        False,
        description="Show Arrive / Leave buttons on the kiosk screen that fix the kind of the "
        "next scan.",
    )
    forced_kind_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Seconds an Arrive / Leave choice waits for a badge before it lapses.",
    )
    result_display_s: float = Field(
        6.0, gt=0, le=120, description="Seconds a scan result stays on the kiosk screen."
    )
    screen_remote_allowed: bool = Field(
        False,
        description="Let other machines open the kiosk screen (preview, names, wedge input); "
        "off: only the Pi's own browser.",
    )

    # Sync
    central_url: str = Field(
        "", description="Base URL of the central server (https://...); empty: no sync."
    )
    sync_plain_http_allowed: bool = Field(
        False,
        description="Let central_url be plain http://. Only on a network nobody else can listen "
        "on or change (the demo, on one machine): over http the token, the roster and every "
        "record cross in clear. Never set from the centre.",
    )
    sync_interval_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="Seconds between pulls and heartbeats; events also go at once after a scan.",
    )
    sync_batch_size: int = Field(
        500, ge=1, le=2000, description="Events sent to the centre per request."
    )
    sync_timeout_s: float = Field(
        15.0, gt=0, le=300, description="Seconds to wait for the centre before giving up."
    )
    sync_backoff_base_s: float = Field(
        2.0, gt=0, le=600, description="First retry delay after a failed exchange (doubles)."
    )
    sync_backoff_cap_s: float = Field(
        60.0, gt=0, le=3600, description="Longest retry delay after failed exchanges."
    )
    sync_wake_min_interval_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="While the centre is unreachable, a scan retries no sooner than this.",
    )

    # Peers: the other kiosks of this site (kiosk/peers/)
    peers_enabled: bool = Field(
        True,
        description="Exchange records with the site's other kiosks on the LAN (the centre names "
        "them), so every gate knows who arrived at another while the centre is away.",
    )
    peer_address: str = Field(
        "",
        max_length=100,
        pattern=r"^[A-Za-z0-9.:\[\]-]*$",
        description="host:port where the site's other kiosks reach this one's pages; sent to "
        "the centre, which tells them. Empty: not told.",
    )
    peer_discovery: bool = Field(
        True,
        description="Also find the site's other kiosks on the LAN by mDNS/DNS-SD (for those the "
        "centre names without a peer_address), from when the centre names any; who is a peer "
        "is still the centre's word.",
    )
    peer_interval_s: float = Field(
        0.5, ge=0.1, le=600, description="Seconds between two asks of each reachable peer."
    )
    peer_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Seconds a peer has to answer before it counts as down."
    )

    # Server
    listen_host: str = Field("0.0.0.0", description="Address the kiosk's pages listen on.")
    listen_port: int = Field(8080, ge=1, le=65535, description="Port the kiosk's pages listen on.")
    server_threads: int = Field(
        16,
        ge=6,
        le=256,
        description="waitress worker threads (each open preview or event stream holds one; four "
        "stay free for the lead's pages and the watchdog's probe).",
    )
    server_connection_limit: int = Field(
        200,
        ge=20,
        le=1000,
        description="Connections open at once, from everyone; past it new ones wait.",
    )
    server_connections_per_client: int = Field(
        16,
        ge=4,
        le=1000,
        description="Connections open at once from one client address (an IPv6 /64); more are "
        "closed as they come, so one host cannot take the kiosk's connections.",
    )
    server_idle_timeout_s: int = Field(
        10,
        ge=2,
        le=600,
        description="A connection that sends and gets nothing for this long (an idle keep-alive, "
        "a request started and never finished) is closed; streams are never idle that long.",
    )
    stream_slots_per_client: int = Field(
        4,
        ge=1,
        le=64,
        description="Event and preview streams one client address may hold; a new one ends its "
        "oldest. The Pi's own screen always has two slots the network cannot take.",
    )

    # Updates (kiosk/updates): releases the centre offers, signed with its key
    updates_enabled: bool = Field(
        True,
        description="Take releases the centre offers (checked against the pinned centre key and "
        "their sha256, switched back by themselves when they fail); false: report offers only.",
    )
    update_busy_hours: str = Field(
        "04:00-10:00,16:00-21:00",
        description="Local times (HH:MM-HH:MM, comma-separated; may wrap past midnight) when the "
        "kiosk never installs an update or restarts for one: the site's gathering hours.",
    )
    update_idle_s: float = Field(
        300.0,
        ge=0,
        le=86400,
        description="An update waits until no badge was scanned for this long.",
    )

    @field_validator("service_day_start")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value)
        if not match:
            raise ValueError("must be HH:MM, 24-hour")
        return value

    @field_validator("camera_restart_backoff_max_s")
    @classmethod
    def _backoff_cap(cls, value: float, info: ValidationInfo) -> float:
        start = info.data.get("camera_restart_backoff_s")
        if start is not None and value < start:
            raise ValueError("must be at least camera_restart_backoff_s")
        return value

    @field_validator("update_busy_hours")
    @classmethod
    def _hour_ranges(cls, value: str) -> str:
        busy_ranges(value)
        return value

    @field_validator("lead_pin")
    @classmethod
    def _pin(cls, value: str) -> str:
        if value and not re.fullmatch(r"\d{4,12}", value):
            raise ValueError("must be 4-12 digits")
        return value


def busy_ranges(text: str) -> list[tuple[int, int]]:
    """ "04:00-10:00,16:00-21:00" -> [(240, 600), (960, 1260)] in minutes of the day; "" -> [].
    ValueError when a range is not HH:MM-HH:MM."""
    ranges = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)", part)
        if not match:
            raise ValueError(f"{part!r} must be HH:MM-HH:MM (24-hour)")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        ranges.append((h1 * 60 + m1, h2 * 60 + m2))
    return ranges


def default_instance() -> Path:
    """systemd's StateDirectory= on the Pi; ./instance/kiosk when run by hand."""
    if INSTANCE_ENV in os.environ:
        return Path(os.environ[INSTANCE_ENV])
    if "STATE_DIRECTORY" in os.environ:
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    return Path("instance") / "kiosk"


def load(instance: Path, env: dict[str, str] | None = None, **overrides: object) -> KioskSettings:
    return load_settings(
        KioskSettings,
        instance / SETTINGS_FILE,
        env=env,
        env_prefix=ENV_PREFIX,
        overrides=overrides,
        reserved_env=frozenset({INSTANCE_ENV}),
    )


def _reads_as_toml(path: Path) -> bool:
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def damaged_file(instance: Path) -> Literal["", "previous", "lines"]:
    """ "" when kiosk.toml reads (or is not there); else what the kiosk runs with instead: its
    copy from before the kiosk last rewrote it, or the lines that still read on their own."""
    path = instance / SETTINGS_FILE
    if not path.exists() or _reads_as_toml(path):
        return ""
    return "previous" if _reads_as_toml(instance / PREVIOUS_FILE) else "lines"


def _readable_lines(path: Path) -> dict[str, Any]:
    """Each `key = value` line of a damaged flat TOML file that still reads on its own."""
    values: dict[str, Any] = {}
    text = path.read_bytes().decode("utf-8", errors="replace")
    for line in text.splitlines():
        try:
            values.update(tomllib.loads(line))
        except ValueError:
            continue
    return {k: v for k, v in values.items() if k in KioskSettings.model_fields}


def load_at_start(instance: Path, env: dict[str, str] | None = None) -> KioskSettings:
    """The settings the kiosk starts with. A kiosk.toml that no longer reads as TOML (a power cut
    while an editor rewrote it in place, a bad sector) must not keep the kiosk from starting and
    scanning: the copy kept before the kiosk's last rewrite of it is used, else every line that
    still reads on its own (kiosk.toml is flat). `damaged_file` tells the lead's page.
    Values that are invalid still stop the kiosk, with their reasons (`kiosk check-config`)."""
    try:
        return load(instance, env=env)
    except SettingsError as exc:
        if not any(problem.key == "(file)" for problem in exc.problems):
            raise
        log.error("%s", exc)
    previous = instance / PREVIOUS_FILE
    if _reads_as_toml(previous):
        return load_settings(
            KioskSettings,
            previous,
            env=env,
            env_prefix=ENV_PREFIX,
            reserved_env=frozenset({INSTANCE_ENV}),
        )
    values = _readable_lines(instance / SETTINGS_FILE)
    environment = os.environ if env is None else env
    # The file's values come before the environment's, as when it reads.
    kept = {k: v for k, v in values.items() if env_name(ENV_PREFIX, k) not in environment}
    while True:
        try:
            return load_settings(
                KioskSettings,
                None,
                env=env,
                env_prefix=ENV_PREFIX,
                overrides=kept,
                reserved_env=frozenset({INSTANCE_ENV}),
            )
        except SettingsError as exc:
            # A line cut in the middle can read as a wrong value: leave it out too.
            bad = {problem.key.split(".")[0] for problem in exc.problems} & set(kept)
            if not bad:
                raise
            kept = {k: v for k, v in kept.items() if k not in bad}
