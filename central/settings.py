"""Every central setting, declared once with its default and help.

Read from `central.toml` in the instance folder, then `CENTRAL_<NAME>` environment variables.
docs/settings.md must list each one (a test checks).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from sync.config import StrictSettings, TimeZoneName, load_settings

ENV_PREFIX = "CENTRAL_"
INSTANCE_ENV = "CENTRAL_INSTANCE"
SETTINGS_FILE = "central.toml"


def _path_list(value: Any) -> Any:
    """A list of paths from TOML, or from the environment as 'a:b' (like PATH)."""
    if isinstance(value, str):
        return [part for part in value.split(":") if part.strip()]
    return value


class CentralSettings(StrictSettings):
    database_url: str = Field(
        "",
        description="SQLAlchemy URL of the store; empty: SQLite (WAL) central.db in the instance "
        "folder. PostgreSQL: postgresql+psycopg://user:pass@host/db.",
    )
    issuing_key_file: str = Field(
        "issuing_key.pem",
        description="Ed25519 private key that signs badges, relative to the instance folder.",
    )
    centre_key_file: str = Field(
        "centre_key.pem",
        description="Ed25519 private key that signs every answer to kiosks (kiosks pin its "
        "fingerprint at enrolment), relative to the instance folder.",
    )
    timezone: TimeZoneName = Field(
        "Asia/Shanghai", description="IANA time zone for pages and exports."
    )
    language: Literal["zh-CN", "en"] = Field(
        "zh-CN", description="Language of the pages when the browser does not ask for one."
    )
    badge_layout: Literal["a6-on-a4", "54x90-2x5"] = Field(
        "a6-on-a4", description="Default label layout of printed badge sheets."
    )
    badge_font_file: str = Field(
        "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
        description="TrueType font (.ttf or .ttc) embedded in badge sheets for Chinese names; "
        "the default comes from the apt package fonts-wqy-zenhei.",
    )
    badge_font_face: int = Field(
        0, ge=0, description="Face number inside a .ttc font collection (0 for a .ttf)."
    )
    badge_fallback_font_files: Annotated[list[str], BeforeValidator(_path_list)] = Field(
        [
            "/usr/share/fonts/truetype/hanazono/HanaMinA.ttf",
            "/usr/share/fonts/truetype/hanazono/HanaMinB.ttf",
        ],
        description="Fonts for characters badge_font_file lacks, tried in order (CJK "
        "Extensions B-F for rare name characters; the defaults come from the apt package "
        "fonts-hanazono). In the environment: paths separated by ':'.",
    )
    listen_host: str = Field("127.0.0.1", description="Address the central server listens on.")
    listen_port: int = Field(
        8000, ge=1, le=65535, description="Port the central server listens on."
    )
    server_threads: int = Field(
        16,
        ge=2,
        le=256,
        description="waitress worker threads per process; on PostgreSQL each process keeps up "
        "to server_threads + 4 connections (docs/central-nginx.md).",
    )
    duty_lease_s: float = Field(
        5.0,
        ge=1.0,
        le=300.0,
        description="Seconds a background duty's lease lasts unrenewed (stays, housekeeping): "
        "when the process running a duty dies, another takes it over within about this.",
    )

    # Sync with kiosks
    public_url: str = Field(
        "",
        description="Base URL kiosks reach the centre at (put in enrolment QR codes), "
        "https://... behind TLS; needed to make an enrolment code. An https URL also turns "
        "cookie_secure on.",
    )
    enrolment_code_ttl_h: float = Field(
        24.0, gt=0, le=24 * 30, description="Hours a one-time kiosk enrolment code stays valid."
    )
    api_max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        description="Largest request body the kiosk API accepts; larger ones get 413.",
    )
    roster_max_upload_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024 * 1024,
        description="Largest roster file the staff pages accept (larger ones get 413; keep "
        "nginx's client_max_body_size in step); every other staff form is limited to 1 MB.",
    )
    kiosk_dead_after_s: int = Field(
        300, ge=30, description="A kiosk silent for longer than this is shown as dead."
    )
    overview_refresh_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="Each process works out the all-sites figures at most this often, once for "
        "everyone watching, in the background while anyone does (a page shows figures at most "
        "about this much older than itself); 0 works them out for every request.",
    )
    fleet_disk_low_mb: int = Field(
        1024,
        ge=0,
        description="The kiosks page marks a kiosk whose disk has less free space than this "
        "(MiB), or less than a tenth of the disk.",
    )
    fleet_hot_c: float = Field(
        75.0,
        ge=30,
        le=120,
        description="The kiosks page marks a kiosk whose CPU is this hot (°C) or hotter; a Pi "
        "starts to slow itself at 80 °C.",
    )
    release_halt_rollbacks: int = Field(
        1,
        ge=0,
        le=10000,
        description="Stop offering a kiosk release once this many kiosks switched back from it "
        "by themselves (`central release widen` offers it again); 0: never stop.",
    )

    # Stays (the centre pairs arrivals and departures of every kiosk of a site)
    repeat_window_s: float = Field(
        120.0, ge=0, description="Scans of one cadre closer than this count as one (any kiosk)."
    )
    longest_shift_h: float = Field(
        16.0, gt=0, description="An arrival older than this is not paired with a later scan."
    )
    service_day_start: str = Field(
        "03:00", description="Local time (HH:MM) at which a new service day begins."
    )
    time_claim_tolerance_s: float = Field(
        120.0,
        ge=1,
        description="How far a record's time may be from where the centre's own measurement of "
        "the kiosk's clock places it before it is listed as an anomaly (time_claim).",
    )
    overlong_stay_h: float = Field(
        12.0, gt=0, description="Stays longer than this are listed as anomalies."
    )
    session_hours: int = Field(
        12, ge=1, le=720, description="Hours a staff login lasts before logging in again."
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        le=1000,
        description="Failed staff logins allowed for one user name from one client address "
        "within login_window_s; further attempts from that address are refused until the "
        "window passes (the same user from another address is not held back).",
    )
    login_max_failures_per_address: int = Field(
        20,
        ge=1,
        le=10000,
        description="Failed staff logins allowed from one client address, whatever the user "
        "names, within login_window_s (stops one machine guessing over many names).",
    )
    login_window_s: int = Field(
        900,
        ge=10,
        le=86400,
        description="Window of login_max_failures and login_max_failures_per_address, in seconds.",
    )
    cookie_secure: bool = Field(
        False,
        description="Send the staff session cookie over HTTPS only; set true behind a TLS proxy "
        "(docs/central-nginx.md). On whenever public_url starts with https://.",
    )
    trusted_proxies: int = Field(
        0,
        ge=0,
        le=5,
        description="Reverse proxies in front of the centre (nginx: 1) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; 0: use the connecting address as is.",
    )

    # Background jobs (badge sheets, large exports): central/jobs/
    jobs_folder: str = Field(
        "jobs",
        description="Folder of job results (badge PDFs, exports), relative to the instance "
        "folder. Every process that runs jobs or serves their downloads must see the same one.",
    )
    job_retention_h: float = Field(
        72.0, gt=0, description="Hours a finished job's result file is kept before it is deleted."
    )
    run_job_worker: bool = Field(
        True,
        description="Whether `central serve` runs queued jobs itself; false when "
        "`central jobs work` processes run them instead.",
    )
    job_isolation: Literal["process", "thread"] = Field(
        "process",
        description="Run each job in a child process (its CPU and memory apart from the "
        "pages') or on the worker thread.",
    )
    job_poll_s: float = Field(
        2.0, gt=0, le=60, description="Seconds an idle worker waits before looking for jobs."
    )
    job_lease_s: float = Field(
        60.0,
        ge=5,
        description="A running job's claim lasts this long unless its worker renews it; a job "
        "whose worker died is taken up again after it.",
    )
    job_max_attempts: int = Field(
        2, ge=1, le=10, description="Claims of one job before a lapsed lease fails it."
    )
    job_timeout_min: float = Field(
        60.0, gt=0, description="Minutes a job may run before it is stopped and failed."
    )

    export_inline_max_rows: int = Field(
        20_000,
        ge=0,
        description="Exports of up to this many rows are sent at once; bigger ones are "
        "prepared as background jobs.",
    )

    # Alerts (central/alerts.py, docs/alerts.md)
    alert_webhook_url: str = Field(
        "",
        description="Where alerts are posted as JSON; empty: alerts only show on the staff "
        "pages. A secret: a robot's URL holds its key.",
    )
    alert_webhook_format: Literal["json", "robot"] = Field(
        "json",
        description="json: kind, subject, site, message, detail; robot: the text message of a "
        'WeCom or DingTalk group robot, {"msgtype": "text", "text": {"content": ...}}.',
    )
    alert_kiosk_silent_min: float = Field(
        15.0, ge=1, description="An enrolled kiosk not heard from for this long raises an alert."
    )
    alert_absent_at: str = Field(
        "08:00",
        description="Local time (HH:MM) from which sites with many absent raise an alert each "
        "service day; empty: never.",
    )
    alert_absent_min_count: int = Field(
        5, ge=1, description="A site alerts only with at least this many absent ..."
    )
    alert_absent_min_share: float = Field(
        0.3, gt=0, le=1, description="... and at least this share of its roster absent."
    )
    alert_check_s: float = Field(
        60.0, ge=5, le=3600, description="Seconds between two checks for alerts."
    )
    photo_retention_days: int = Field(
        30,
        ge=1,
        le=365,
        description="Check-in photos of service days older than this are deleted (a log line "
        "per day purged); kiosks delete theirs after the same time (their photo_retention_days).",
    )
    photo_viewers_allowed: bool = Field(
        False,
        description="Let viewer accounts see check-in photos too; off: only admins (and the "
        "site lead, on the kiosk's own page).",
    )

    @field_validator("alert_absent_at")
    @classmethod
    def _optional_clock_time(cls, value: str) -> str:
        if value and not re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value):
            raise ValueError("must be HH:MM, 24-hour, or empty")
        return value

    @field_validator("service_day_start")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value):
            raise ValueError("must be HH:MM, 24-hour")
        return value

    @property
    def session_cookie_secure(self) -> bool:
        return self.cookie_secure or self.public_url.strip().lower().startswith("https://")

    def database_url_for(self, instance: Path) -> str:
        return self.database_url or f"sqlite:///{(instance / 'central.db').resolve()}"

    def issuing_key_path(self, instance: Path) -> Path:
        return instance / self.issuing_key_file

    def centre_key_path(self, instance: Path) -> Path:
        return instance / self.centre_key_file


def default_instance() -> Path:
    if INSTANCE_ENV in os.environ:
        return Path(os.environ[INSTANCE_ENV])
    return Path("instance") / "central"


def load(instance: Path, env: dict[str, str] | None = None, **overrides: object) -> CentralSettings:
    return load_settings(
        CentralSettings,
        instance / SETTINGS_FILE,
        env=env,
        env_prefix=ENV_PREFIX,
        overrides=overrides,
        reserved_env=frozenset({INSTANCE_ENV}),
    )
