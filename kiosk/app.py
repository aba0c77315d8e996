"""The kiosk's Flask app factory: opens the store and builds the services and the pages.

    app = create_app(instance_path, settings, camera=..., clock=...)
    app.extensions["kiosk"]          # the KioskServices (kiosk/services.py)
    kiosk run                        # kiosk/server.py: waitress, services started once

The factory builds everything but starts no thread: only the serving process calls
`KioskServices.start()` (once; a second call does nothing), so building the app in tests or in a
reloader's watcher process can never run a second scan loop against the same camera and log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

from flask import Flask

from kiosk import settings as kiosk_settings
from kiosk.clock import Clock, SystemClock, TimeKeeper
from kiosk.fleet import FleetFacts, Machine, fleet_report, recovery_note
from kiosk.lead_auth import GUARD_FILE, LeadAuth, PinGuard
from kiosk.live_settings import LiveSettings
from kiosk.peers import PeerDirectory, make_site_peers
from kiosk.photos import PhotoStore
from kiosk.private_files import make_private_dir
from kiosk.roster import RosterStore
from kiosk.rules import CheckIn, RuleSettings
from kiosk.services import (
    KioskServices,
    ScanLoopFactory,
    ScanLoopLike,
    SyncAgentFactory,
    SyncAgentLike,
)
from kiosk.settings import KioskSettings
from kiosk.settings_file import remove_keys
from kiosk.setup import CameraEnrolment, needs_setup
from kiosk.store import DiskIO, EventLog, FailedScanLog, StoreConfig
from kiosk.store.diskio import make_dirs
from kiosk.web import i18n, register
from kiosk.web.auth import load_secret_key, screen_token
from kiosk.web.words import ScreenWording
from scanner import FaceWatcher, FrameSource, ScanLoop, ScannerOptions

if TYPE_CHECKING:
    import requests
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from kiosk.updates.worker import Updater

PHOTO_FOLDER = "photos"

log = logging.getLogger(__name__)


def open_event_log(instance: Path, settings: KioskSettings) -> EventLog:
    """The kiosk's log as its settings shape it (the app's, and `kiosk verify-log`'s)."""
    return EventLog(
        instance / "log",
        StoreConfig(
            segment_events=settings.store_segment_events,
            checkpoint_events=settings.store_checkpoint_events,
            retention_days=settings.retention_days,
        ),
    )


def scanner_options(settings: KioskSettings) -> ScannerOptions:
    """The kiosk's camera settings as the scanner's options. The scanner's own repeat window
    stays short (a badge held in view is reported once); the rules' window (repeat_window_s)
    decides what counts as a repeat scan."""
    return ScannerOptions(
        source=settings.camera_source,
        device=settings.camera_device,
        width=settings.camera_width,
        height=settings.camera_height,
        fps=settings.camera_fps,
        repeat_window_s=settings.camera_repeat_s,
        restart_backoff_s=settings.camera_restart_backoff_s,
        restart_backoff_max_s=settings.camera_restart_backoff_max_s,
        max_restarts=settings.camera_max_restarts,
        preview_fps=settings.camera_preview_fps,
        demo_seed=settings.camera_demo_seed,
        # The demo room has someone holding the badges when there are photos to take of them.
        demo_person=settings.photo_capture or settings.require_face,
    )


def build_scan_loop(services: KioskServices, source: FrameSource | None = None) -> ScanLoop:
    """The scanner's loop over `source` (default: the camera the settings name), feeding the
    rules from its delivery thread."""

    def on_payload(payload: str, _frame_time_ns: int) -> None:
        services.handle_payload(payload, "camera")

    keeps_frames = services.photos is not None or services.faces is not None
    return ScanLoop(
        scanner_options(services.settings),
        on_payload,
        source=source,
        on_read=services.handle_read if keeps_frames else None,
        faces=services.faces,
    )


def photo_parts(
    settings: KioskSettings, instance: Path
) -> tuple[PhotoStore | None, FaceWatcher | None]:
    """The photo store (photo_capture) and the face watcher (photo_capture or require_face).
    A store already on disk is opened even with capture off, so the lead still sees the photos
    taken until then and retention still deletes them."""
    folder = instance / PHOTO_FOLDER
    photos = None
    if settings.photo_capture or folder.is_dir():
        photos = PhotoStore(
            folder,
            cap_bytes=settings.photo_store_mb * 1024 * 1024,
            retention_days=settings.photo_retention_days,
        )
    faces = None
    if settings.photo_capture or settings.require_face:
        try:
            faces = FaceWatcher(max_fps=settings.face_check_fps)
        except RuntimeError as exc:  # an OpenCV without the cascade: photos still work
            logging.getLogger(__name__).error("no face check: %s", exc)
    return photos, faces


def _default_scan_loop(services: KioskServices) -> ScanLoopLike | None:
    return build_scan_loop(services)


def _default_sync_agent(
    services: KioskServices, session: requests.Session | None = None
) -> SyncAgentLike | None:
    """The sync agent when the kiosk is enrolled (central_url and a token); None otherwise.
    `session`: how it reaches the centre (tests hand in one that calls the centre's app)."""
    from kiosk.enrolment import KioskFacts, make_sync_agent

    def facts() -> KioskFacts:
        camera = services.camera_health()
        camera_ok = camera.get("state") == "ok"
        problems = [p for p in (services.store_problem,) if p]
        sync = services.sync_state()
        if sync.get("untrusted"):
            # The centre sees its heartbeat even while the kiosk refuses its answers.
            problems.append(f"refusing the centre's answers: {sync.get('last_error')}")
        if not camera_ok:
            problems.insert(0, f"camera {camera.get('state')}")
        usage = services.machine.disk_usage(services.instance)
        return KioskFacts(
            camera_ok=camera_ok,
            camera_detail=str(camera.get("detail") or camera.get("state") or ""),
            last_scan_at=services.last_scan_at,
            ready=not problems,
            ready_detail="; ".join(problems),
            fleet=fleet_report(fleet_facts(services)),
            disk_free_bytes=usage[1] if usage else None,
            settings=services.centre_settings.report(),
            update=services.updater.report() if services.updater is not None else None,
        )

    from kiosk.photo_outbox import PhotoOutbox

    photos = services.photos
    updater = _updater(services, session)
    agent = make_sync_agent(
        services.instance,
        services.settings,
        services.log,
        services.roster,
        services.keeper,
        facts,
        app_version=_app_version(),
        photos=PhotoOutbox(services.log, photos) if photos is not None else None,
        session=session,
        on_settings=_live_settings(services),
        peers=_peer_directory(services),
        on_update=updater.offer if updater is not None else None,
    )
    if agent is not None and updater is not None:
        services.updater = updater
        updater.start()
    return agent


def _updater(services: KioskServices, session: requests.Session | None) -> Updater | None:
    """The update worker of an enrolled kiosk (kiosk/updates); None when not enrolled."""
    from kiosk.centre_trust import TrustError, load_pinned
    from kiosk.enrolment import load_token
    from kiosk.updates.fetch import wheel_fetcher
    from kiosk.updates.layout import UpdateLayout
    from kiosk.updates.supervisor import SystemdSupervisor
    from kiosk.updates.worker import Updater

    token = load_token(services.instance)
    if not services.settings.central_url or not token:
        return None

    def pinned() -> Ed25519PublicKey | None:
        try:
            pin = load_pinned(services.instance)
        except TrustError:
            return None
        return pin.key if pin is not None else None

    def last_scan() -> datetime | None:
        return services.last_scan_at

    return Updater(
        UpdateLayout.find(),
        _app_version(),
        settings=lambda: services.settings,
        pinned_key=pinned,
        download=wheel_fetcher(
            services.settings.central_url,
            token,
            timeout_s=max(services.settings.sync_timeout_s, 60.0),
            session=session,
        ),
        supervisor=SystemdSupervisor(),
        now=services.clock.now,
        last_scan_at=last_scan,
    )


def _peer_directory(services: KioskServices) -> PeerDirectory | None:
    return services.peers.directory if services.peers is not None else None


def _live_settings(services: KioskServices) -> Callable[[int, str, list[str]], object]:
    from kiosk.enrolment import load_state

    known = load_state(services.instance)
    services.centre_settings.version = known.settings_version
    services.centre_settings.problem = known.settings_problem
    return LiveSettings(services).take_from_centre


def fleet_facts(services: KioskServices) -> FleetFacts:
    return FleetFacts(
        instance=services.instance,
        log_folder=services.log.directory,
        camera_health=services.camera_health,
        recovery=lambda: recovery_note(services.log.recovery, services.log_opened_at),
        machine=services.machine,
        started_monotonic=services.started_monotonic,
        monotonic=services.monotonic,
    )


def _app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cadre-kiosk")
    except PackageNotFoundError:
        return ""


def create_app(
    instance_path: Path | str | None = None,
    settings: KioskSettings | None = None,
    *,
    camera: FrameSource | None = None,
    clock: Clock | None = None,
    scan_loop_factory: ScanLoopFactory | None = None,
    sync_agent_factory: SyncAgentFactory | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    machine: Machine | None = None,
) -> Flask:
    """The kiosk app over the instance folder (default: $KIOSK_INSTANCE, $STATE_DIRECTORY or
    ./instance/kiosk). `camera` is a scanner frame source to use instead of the settings' one;
    `clock` replaces the system clock and `machine` what the fleet report reads (tests)."""
    instance = Path(instance_path) if instance_path else kiosk_settings.default_instance()
    instance = instance.resolve()
    make_dirs(DiskIO(), instance)  # synced: a power cut must not take the folder back
    make_private_dir(instance)  # names, records, photos, the token and the PIN hash: ours only
    settings = settings or kiosk_settings.load_at_start(instance)

    app = Flask(
        "kiosk",
        instance_path=str(instance),
        static_folder="web/static",
        template_folder="web/templates",
    )
    secret = load_secret_key(instance)
    app.config.update(
        SECRET_KEY=secret,
        SESSION_COOKIE_NAME="kiosk_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.lead_session_h),
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_AS_ASCII=False,
        TEMPLATES_AUTO_RELOAD=False,
    )

    clock = clock or SystemClock()

    def wall_seconds() -> float:
        return clock.now().timestamp()

    lead_auth = LeadAuth(instance, settings.lead_session_h, clock=wall_seconds)
    take_clear_pin(instance, settings, lead_auth)
    pin_guard = PinGuard(
        instance / GUARD_FILE,
        settings.lead_max_failures,
        settings.lead_lockout_s,
        clock=wall_seconds,
    )
    keeper = TimeKeeper(
        clock, instance / "clock.json", trust_tolerance_s=settings.clock_trust_tolerance_s
    )
    log_store = open_event_log(instance, settings)
    failed = FailedScanLog(
        instance / "failed-scans.log",
        per_minute=settings.failed_scan_log_per_minute,
        payload_chars=settings.failed_scan_payload_chars,
    )
    roster = RosterStore(instance)
    rules = CheckIn(
        log_store,
        lambda: roster.current,
        keeper,
        RuleSettings.from_settings(settings),
        kiosk_id=settings.kiosk_id,
        site_id=settings.site_id,
        failed_scans=failed,
    )
    if scan_loop_factory is None:
        if camera is not None:

            def scan_loop_factory(services: KioskServices) -> ScanLoopLike | None:
                return build_scan_loop(services, source=camera)

        else:
            scan_loop_factory = _default_scan_loop
    photos, faces = photo_parts(settings, instance)
    services = KioskServices(
        settings,
        instance,
        clock=clock,
        keeper=keeper,
        log_store=log_store,
        failed_scans=failed,
        roster=roster,
        rules=rules,
        words=ScreenWording(app, settings.language),
        scan_loop_factory=scan_loop_factory,
        sync_agent_factory=sync_agent_factory or _default_sync_agent,
        secret_key=secret,
        screen_token=screen_token(secret),
        lead_auth=lead_auth,
        pin_guard=pin_guard,
        monotonic=monotonic,
        photos=photos,
        faces=faces,
        machine=machine,
    )
    if settings.peers_enabled and settings.site_id:
        site_peers = make_site_peers(instance, settings, log_store, rules, roster)
        rules.other_gates = site_peers.store
        services.peers = site_peers
    app.extensions["kiosk"] = services
    if needs_setup(services):
        services.setup = CameraEnrolment(services, app_version=_app_version())
    i18n.init_babel(app)
    register(app)
    return app


def take_clear_pin(instance: Path, settings: KioskSettings, auth: LeadAuth) -> None:
    """A PIN in clear (lead_pin in kiosk.toml or KIOSK_LEAD_PIN, as before `kiosk set-pin`)
    becomes the lead's PIN as a scrypt hash, and leaves kiosk.toml."""
    clear = settings.lead_pin
    if not clear:
        return
    if auth.state().pin_hash and auth.verify_pin(clear):
        pass  # the same PIN: nothing to change (KIOSK_LEAD_PIN set at every start)
    else:
        auth.set_pin(clear)
        log.warning("lead_pin: the PIN in clear is now kept as a scrypt hash (%s)", auth.path.name)
    if remove_keys(instance / kiosk_settings.SETTINGS_FILE, ["lead_pin"]):
        log.warning("lead_pin removed from kiosk.toml: `kiosk set-pin` changes the PIN from now on")
    settings.lead_pin = ""


def services_of(app: Flask) -> KioskServices:
    return cast(KioskServices, app.extensions["kiosk"])


def utc_now_ms(now: datetime) -> int:
    return int(now.astimezone(UTC).timestamp() * 1000)
