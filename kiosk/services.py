"""Everything behind the kiosk's pages, in one object: store, rules, clock, roster, scan loop,
sync agent, and the bus the screens listen on.

    services = app.extensions["kiosk"]   # made by kiosk.app.create_app, read by kiosk.web

It sits below both the app factory (kiosk/app.py, which builds it) and the pages (kiosk/web/,
which use it), and imports neither. What it publishes must be worded in the screen's language,
which is the pages' business: the factory hands it a `ScreenWords` made by kiosk/web/words.py.

Nothing starts a thread but `start()`, called once by the serving process, so building the app in
tests or in a reloader's watcher process can never run a second scan loop against the same camera
and log. The scan path: the scan loop's thread (camera) or a request (keyboard-wedge scanner)
calls `handle_payload`; the rules append the event and fsync it before they return; only then is
the result published to the kiosk screens over server-sent events.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from kiosk.bus import EventBus
from kiosk.centre_settings import CentreSettings
from kiosk.clock import Clock, TimeKeeper
from kiosk.fleet import HostMachine, Machine
from kiosk.holders import SeveralBadges
from kiosk.lead_auth import LeadAuth, PinGuard
from kiosk.peers import SitePeers
from kiosk.photos import PhotoStore, photo_sha256
from kiosk.roster import RosterStore
from kiosk.rules import (
    FLAG_NO_FACE,
    FLAG_NO_PHOTO,
    FLAG_SEVERAL_BADGES,
    STORE_REASONS,
    CameraEvidence,
    CheckIn,
    ScanOutcome,
    normalise_wedge_input,
)
from kiosk.settings import KioskSettings
from kiosk.store import EventLog, FailedScanLog
from kiosk.stream_slots import StreamSlots
from kiosk.visitors import VisitorNames
from scanner import (
    BadgeRead,
    FaceSighting,
    FaceWatcher,
    PhotoEncodeError,
    around_face,
    reviewer_jpeg,
)
from sync.badge_token import verify_token
from sync.protocol import UpdateReport

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 1.0
STATUS_REFRESH_S = 10.0
ScanSource = Literal["camera", "wedge"]
ForcedKind = Literal["arrival", "departure"]


class ScanLoopLike(Protocol):
    """What the services need of scanner.ScanLoop (or a test's stand-in)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> Mapping[str, Any]: ...

    def latest_jpeg(self) -> bytes | None: ...

    @property
    def running(self) -> bool: ...


class SyncAgentLike(Protocol):
    """What the services need of sync.agent.SyncAgent."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wake(self) -> None: ...

    def snapshot(self) -> Any: ...


class Stoppable(Protocol):
    def stop(self) -> None: ...


class UpdaterLike(Protocol):
    """What the services need of kiosk.updates.worker.Updater."""

    def stop(self) -> None: ...

    def report(self) -> UpdateReport: ...


class SetUp(Protocol):
    """What the services need of kiosk/setup.py's CameraEnrolment."""

    def waiting(self) -> bool: ...

    def offer(self, payload: str) -> dict[str, Any]: ...


class ScreenWords(Protocol):
    """The kiosk screen's words for what the services publish, in the screen's language, from
    any thread (kiosk/web/words.py)."""

    @property
    def locale(self) -> str: ...

    def scan(self, outcome: ScanOutcome, previous_kind: str | None) -> dict[str, Any]: ...

    def mode_text(self, kind: ForcedKind) -> str: ...

    def face_prompt(self) -> str: ...

    def status(self, services: KioskServices) -> dict[str, Any]: ...

    def in_language(self, language: str) -> ScreenWords:
        """The same words in another language (the `language` setting changed)."""
        ...

    def setup(self, code: str, **values: str) -> dict[str, Any]:
        """A message of the set-up screen (enrolment through the camera), as a scan result."""
        ...


ScanLoopFactory = Callable[["KioskServices"], ScanLoopLike | None]
SyncAgentFactory = Callable[["KioskServices"], SyncAgentLike | None]


@dataclass(frozen=True)
class PendingPhoto:
    sha256: str
    jpeg: bytes


@dataclass(frozen=True)
class HeldUp:
    """Who showed a badge: its cadre and the face seen with it (for SeveralBadges)."""

    cadre_id: str
    sighting: FaceSighting
    time_ns: int


@dataclass
class ForcedMode:
    kind: ForcedKind
    until_monotonic: float


class KioskServices:
    """Everything behind the pages: store, rules, clock, roster, scan loop, sync agent, bus."""

    def __init__(
        self,
        settings: KioskSettings,
        instance: Path,
        *,
        clock: Clock,
        keeper: TimeKeeper,
        log_store: EventLog,
        failed_scans: FailedScanLog,
        roster: RosterStore,
        rules: CheckIn,
        words: ScreenWords,
        scan_loop_factory: ScanLoopFactory | None,
        sync_agent_factory: SyncAgentFactory | None,
        secret_key: bytes,
        screen_token: str,
        lead_auth: LeadAuth,
        pin_guard: PinGuard,
        monotonic: Callable[[], float] = time.monotonic,
        photos: PhotoStore | None = None,
        faces: FaceWatcher | None = None,
        machine: Machine | None = None,
    ) -> None:
        """`photos` and `faces`: the photo store and the face watcher, when photo_capture or
        require_face is on (kiosk/app.py makes them). `machine`: where the fleet report reads
        temperatures, throttling and the OS (kiosk/fleet.py; tests fake it)."""
        self.settings = settings
        self.instance = instance
        self.clock = clock
        self.keeper = keeper
        self.log = log_store
        self.failed_scans = failed_scans
        self.roster = roster
        self.visitors = VisitorNames(instance)
        self.rules = rules
        self.words = words
        self.bus = EventBus()
        self.secret_key = secret_key
        self.screen_token = screen_token
        self.lead_auth = lead_auth  # the lead's PIN and sessions, on disk
        self.pin_guard = pin_guard  # wrong PINs per client address, on disk
        self.monotonic = monotonic
        self.photos = photos
        self.faces = faces
        self.several_badges = SeveralBadges()
        self.machine: Machine = machine or HostMachine()
        self.started_monotonic = monotonic()
        self.log_opened_at = clock.now()  # when the log's recovery report was made
        self.centre_settings = CentreSettings()  # kiosk/live_settings.py keeps it
        self.setup: SetUp | None = None  # kiosk/setup.py: enrolment through the camera
        self.peers: SitePeers | None = None  # kiosk/peers/: the site's other kiosks
        self._purged_on: date | None = None
        self._scan_loop_factory = scan_loop_factory
        self._sync_agent_factory = sync_agent_factory
        self.scan_loop: ScanLoopLike | None = None
        self.sync_agent: SyncAgentLike | None = None
        # Takes the centre's release offers when the kiosk is quiet (kiosk/updates/worker.py).
        self.updater: UpdaterLike | None = None
        self.stopping = threading.Event()
        # Each open stream (events, preview) holds a waitress thread for as long as it is open;
        # a few threads stay free for the lead's pages and the watchdog's probe
        # (kiosk/stream_slots.py: per client, and two for the Pi's own screen).
        self.stream_slots = StreamSlots(
            total=max(2, settings.server_threads - 4),
            per_client=settings.stream_slots_per_client,
        )
        self._start_lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._mode_lock = threading.Lock()
        self._mode: ForcedMode | None = None
        self.store_problem: str = ""  # reason code of the last failed write, until one works
        self.last_scan_at: datetime | None = None
        self._status_thread: threading.Thread | None = None
        self._last_status_key: Any = None
        self._last_status_sent = 0.0
        self._camera_kicked_at = -1e18

    @property
    def screen_locale(self) -> str:
        """The screen speaks the kiosk's language setting, whatever its browser asks for."""
        return self.words.locale

    # ------------------------------------------------------------------ lifetime

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> bool:
        """Start the scan loop, the sync agent and the status ticker. Only the first call does."""
        with self._start_lock:
            if self._started:
                log.warning("kiosk services already started; not starting them twice")
                return False
            self._started = True
            if self._scan_loop_factory is not None:
                self.scan_loop = self._scan_loop_factory(self)
            if self._sync_agent_factory is not None:
                self.sync_agent = self._sync_agent_factory(self)
            if self.photos is not None:
                self.photos.start()
            if self.peers is not None:
                self.peers.start()
            if self.scan_loop is not None:
                self.scan_loop.start()
            if self.sync_agent is not None:
                self.ask_for_visitors_names(self.sync_agent)
                self.sync_agent.start()
            self._status_thread = threading.Thread(
                target=self._status_ticker, name="kiosk-status", daemon=True
            )
            self._status_thread.start()
            return True

    def start_sync_agent(self) -> bool:
        """Start the sync agent of a kiosk enrolled while running (kiosk/setup.py); True when
        one started."""
        with self._start_lock:
            if not self._started or self._stopped or self.sync_agent is not None:
                return False
            if self._sync_agent_factory is None:
                return False
            self.sync_agent = self._sync_agent_factory(self)
            if self.sync_agent is None:
                return False
            self.ask_for_visitors_names(self.sync_agent)
            self.sync_agent.start()
            return True

    def begin_shutdown(self) -> None:
        """Ends the streams (SSE, MJPEG) so that the server's threads can finish."""
        self.stopping.set()
        self.bus.close()

    def stop(self) -> None:
        """Stop background work and close the store. Safe to call more than once."""
        with self._start_lock:
            if self._stopped:
                return
            self._stopped = True
        self.begin_shutdown()
        parts: tuple[tuple[Stoppable | None, str], ...] = (
            (self.updater, "updater"),
            (self.scan_loop, "scan loop"),
            (self.sync_agent, "sync agent"),
        )
        for part, name in parts:
            if part is None:
                continue
            try:
                part.stop()
            except Exception:
                log.exception("stopping the %s failed", name)
        if self._status_thread is not None:
            self._status_thread.join(timeout=5)
        if self.photos is not None:
            self.photos.stop()
        if self.peers is not None:
            try:
                self.peers.stop()
            except Exception:
                log.exception("stopping the peers failed")
        self.log.close()

    def health(self) -> tuple[bool, str]:
        """For the systemd watchdog: False when a restart would help (a dead thread)."""
        if self._stopped:
            return False, "stopped"
        if self._status_thread is not None and not self._status_thread.is_alive():
            return False, "status thread died"
        if self.scan_loop is not None and not self.scan_loop.running:
            # A camera that is merely unplugged keeps the loop running (it reopens it with
            # backoff); a dead loop thread is a bug that a restart cures.
            return False, "scan loop thread stopped"
        return True, ""

    def ask_for_visitors_names(self, agent: SyncAgentLike) -> None:
        """Visitors (other sites' cadres) seen here get their names from the centre."""
        look_up = getattr(agent, "look_up_names", None)
        if look_up is None:
            return
        roster = self.roster.current
        for cadre_id in self.log.cadre_ids():
            if roster.entry(cadre_id) is None:
                self.visitors.note_seen(cadre_id)
        look_up(self.visitors.wanted, self.visitors.learned)

    # ------------------------------------------------------------------ the scan path

    def handle_payload(
        self,
        payload: str,
        source: ScanSource = "camera",
        *,
        evidence: CameraEvidence | None = None,
        photo: PendingPhoto | None = None,
        held: HeldUp | None = None,
    ) -> dict[str, Any]:
        """Run one scanned payload through the rules; publish the result once it is durable.

        `evidence` goes on the record (photo hash, no_face / no_photo); `photo` is queued for
        the photo store only when a record was made."""
        setup = self.setup
        if setup is not None and setup.waiting():
            # Not enrolled yet: the set-up screen waits for the enrolment code, not badges.
            return setup.offer(payload)
        kind = self.take_forced_kind()
        outcome = self._scan(payload, source, kind, evidence)
        if photo is not None and outcome.event is not None and self.photos is not None:
            self.photos.put(photo.sha256, photo.jpeg, outcome.time_shown.date())
        if held is not None and outcome.event is not None:
            self.several_badges.note(held.time_ns, held.cadre_id, held.sighting)
        self._note_store(outcome)
        outcome = self._with_visitors_name(outcome)
        message = self.describe(outcome)
        self.bus.publish("scan", message)
        if outcome.event is not None and self.sync_agent is not None:
            self.sync_agent.wake()
        return message

    def handle_read(self, read: BadgeRead) -> dict[str, Any]:
        """A badge read by the camera, with the frame it was read from (the scan loop's
        delivery thread calls this)."""
        evidence, photo, held = self.camera_evidence(read)
        return self.handle_payload(
            read.payload, "camera", evidence=evidence, photo=photo, held=held
        )

    def camera_evidence(
        self, read: BadgeRead
    ) -> tuple[CameraEvidence, PendingPhoto | None, HeldUp | None]:
        """The photo and flags for a camera read, with no disk access and no waiting (but for
        require_face, whose point is to wait for a face).

        The photo is of the newest frame with a face seen from face_lookback_s before the read
        on (the face watcher checked it already), cut around the face, else of the frame the
        badge was read from. A face that showed another cadre's badge within seconds flags the
        record several_badges."""
        settings = self.settings
        flags: list[str] = []
        image = read.image
        held = None
        if self.faces is not None:
            since = read.time_ns - int(settings.face_lookback_s * 1e9)
            seen = self.faces.sighting(since)
            if seen is None and settings.require_face and self._badge_is_valid(read.payload):
                self.bus.publish(
                    "prompt", {"text": self.words.face_prompt(), "wait_s": settings.face_wait_s}
                )
                seen = self.faces.wait_for_face(since, settings.face_wait_s)
            if seen is None:
                flags.append(FLAG_NO_FACE)
            else:
                face = seen.largest
                image = around_face(seen.image, (face.x, face.y, face.w, face.h))
                cadre_id = self._cadre_of(read.payload)
                if cadre_id is not None:
                    held = HeldUp(cadre_id, seen, read.time_ns)
                    if self.several_badges.others(read.time_ns, cadre_id, seen):
                        flags.append(FLAG_SEVERAL_BADGES)
        if self.photos is None or not settings.photo_capture:
            return CameraEvidence(None, tuple(flags)), None, held
        try:
            jpeg = reviewer_jpeg(image)
        except PhotoEncodeError:
            log.warning("a check-in photo could not be encoded")
            return CameraEvidence(None, (*flags, FLAG_NO_PHOTO)), None, held
        if not self.photos.can_take(len(jpeg)):
            return CameraEvidence(None, (*flags, FLAG_NO_PHOTO)), None, held
        digest = photo_sha256(jpeg)
        return CameraEvidence(digest, tuple(flags)), PendingPhoto(digest, jpeg), held

    def _badge_is_valid(self, payload: str) -> bool:
        return self._cadre_of(payload) is not None

    def _cadre_of(self, payload: str) -> str | None:
        """The cadre of a valid badge (an Ed25519 check, a fraction of a millisecond)."""
        roster = self.roster.current
        check = verify_token(payload, roster.keyring, roster.revoked_through)
        return check.cadre_id if check.valid else None

    def _scan(
        self,
        payload: str,
        source: ScanSource,
        kind: ForcedKind | None,
        evidence: CameraEvidence | None = None,
    ) -> ScanOutcome:
        if source == "wedge":
            payload = normalise_wedge_input(payload)
        # An Arrive / Leave choice goes to the rules, which record it as the kind (flagged
        # kind_chosen_on_screen) and still time a Leave from the open arrival.
        return self.rules.scan(payload, source, kind=kind, evidence=evidence)

    def _with_visitors_name(self, outcome: ScanOutcome) -> ScanOutcome:
        """A visitor's name, when the centre told it, for the screen; else ask for it."""
        if outcome.name or not outcome.cadre_id or outcome.result == "refused":
            return outcome
        entry = self.visitors.entry(outcome.cadre_id)
        if entry is None:
            if self.roster.current.entry(outcome.cadre_id) is None:
                self.visitors.note_seen(outcome.cadre_id)
            return outcome
        return replace(outcome, name=entry.name, unit=entry.unit)

    def _note_store(self, outcome: ScanOutcome) -> None:
        if outcome.reason in STORE_REASONS:
            self.store_problem = outcome.reason
        elif outcome.event is not None:
            self.store_problem = ""
            self.last_scan_at = outcome.time_shown

    def describe(self, outcome: ScanOutcome) -> dict[str, Any]:
        previous_kind = None
        if outcome.result == "repeat" and outcome.cadre_id:
            last = self.rules.last_at_any_gate(outcome.cadre_id)
            previous_kind = last.kind if last else None
        return self.words.scan(outcome, previous_kind)

    # ------------------------------------------------------------------ Arrive / Leave

    def set_forced_kind(self, kind: ForcedKind | None) -> dict[str, Any] | None:
        with self._mode_lock:
            if kind is None:
                self._mode = None
            else:
                until = self.monotonic() + self.settings.forced_kind_s
                self._mode = ForcedMode(kind, until)
        mode = self.mode_view()
        self.bus.publish("mode", {"mode": mode})
        return mode

    def take_forced_kind(self) -> ForcedKind | None:
        with self._mode_lock:
            mode, self._mode = self._mode, None
        if mode is None or mode.until_monotonic < self.monotonic():
            return None
        self.bus.publish("mode", {"mode": None})
        return mode.kind

    def mode_view(self) -> dict[str, Any] | None:
        with self._mode_lock:
            mode = self._mode
        if mode is None:
            return None
        remaining = mode.until_monotonic - self.monotonic()
        if remaining <= 0:
            return None
        text = self.words.mode_text(mode.kind)
        return {"kind": mode.kind, "remaining_s": round(remaining, 1), "text": text}

    # ------------------------------------------------------------------ status

    def sync_state(self) -> Mapping[str, Any]:
        """The sync agent's snapshot as a dict; `configured` False when there is no agent."""
        if self.sync_agent is None:
            return {"configured": False, "waiting": self.log.pending_count()}
        try:
            snapshot = self.sync_agent.snapshot()
        except Exception as exc:
            log.exception("sync agent snapshot failed")
            return {
                "configured": True,
                "online": False,
                "last_error": repr(exc),
                "last_error_code": "internal",
            }
        return {
            "configured": True,
            "online": snapshot.online,  # None until the first exchange was tried
            "waiting": snapshot.waiting,
            "last_success": snapshot.last_success_at,
            "last_error": snapshot.last_error,
            "last_error_code": getattr(snapshot, "last_error_code", None),
            "last_error_at": snapshot.last_error_at,
            "untrusted": getattr(snapshot, "last_error_code", None) == "untrusted",
        }

    @property
    def shut_out(self) -> bool:
        """The centre refused this kiosk's token (revoked at the centre): nothing is sent
        until it is enrolled again, though scans are still recorded here."""
        return self.sync_state().get("last_error_code") == "unauthorized"

    def after_lead_event(self, event: Any) -> None:
        """A manual check-in/out, void or correction was stored: send it soon."""
        if event is not None and self.sync_agent is not None:
            self.sync_agent.wake()

    def publish_status(self) -> None:
        """Push the top bar now (after the clock was set, say) instead of at the next tick."""
        try:
            status = self.screen_status()
        except Exception:
            log.exception("status snapshot failed")
            return
        self.bus.publish("status", status)
        self._last_status_key = self._status_key(status)
        self._last_status_sent = self.monotonic()

    @staticmethod
    def _status_key(status: Mapping[str, Any]) -> Any:
        """What counts as a change worth sending now: everything but the ticking time, and the
        shown time's distance from this machine's clock (it moves when the clock is set)."""
        key = {k: v for k, v in status.items() if k != "now_ms"}
        key["skew_s"] = round(status["now_ms"] / 1000 - time.time())
        return key

    def camera_health(self) -> Mapping[str, Any]:
        if self.scan_loop is None:
            return {"state": "none"}
        try:
            return self.scan_loop.health()
        except Exception:
            log.exception("camera health failed")
            return {"state": "error"}

    def disk_free(self) -> tuple[int, int]:
        usage = shutil.disk_usage(self.instance)
        return usage.free, usage.total

    def screen_status(self) -> dict[str, Any]:
        """What the kiosk screen's top bar shows, worded in the screen's language."""
        return self.words.status(self)

    def recheck_faults(self) -> None:
        """Faults that clear by themselves are noticed here (each status tick), not only when
        the next badge comes: a disk with space again, a camera plugged back in."""
        problem = self.store_problem
        if problem and self.log.can_write() and self.store_problem == problem:
            # Until now the screen said "not recorded: disk full" to everyone walking up.
            self.store_problem = ""
        loop = self.scan_loop
        restart = getattr(loop, "restart_camera", None)
        if restart is not None and self.camera_health().get("state") == "failed":
            # The scanner gave up after camera_max_restarts; the kiosk has no other job, so it
            # asks again at the slowest reopening pace instead of waiting for a restart.
            now = time.monotonic()
            if now - self._camera_kicked_at >= self.settings.camera_restart_backoff_max_s:
                self._camera_kicked_at = now
                restart()

    def purge_photos(self) -> None:
        """Photo retention, once per service day (and at the first tick after a start)."""
        if self.photos is None:
            return
        today = self.rules.local(self.keeper.read().shown).date()
        if self._purged_on == today:
            return
        self._purged_on = today
        self.photos.purge(today)

    def _status_ticker(self) -> None:
        while not self.stopping.wait(STATUS_PERIOD_S):
            try:
                self.recheck_faults()
            except Exception:
                log.exception("re-checking the disk and the camera failed")
            try:
                self.purge_photos()
            except Exception:
                log.exception("purging old photos failed")
            try:
                status = self.screen_status()
            except Exception:
                log.exception("status snapshot failed")
                continue
            key = self._status_key(status)
            now = self.monotonic()
            if key != self._last_status_key or now - self._last_status_sent >= STATUS_REFRESH_S:
                self.bus.publish("status", status)
                self._last_status_key = key
                self._last_status_sent = now
