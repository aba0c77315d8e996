"""The kiosk's side of a release: take the centre's offer, wait for a quiet moment, fetch the
wheel, check it, install it beside the running version, switch, restart.

The offer comes in the pull answer (signed over the kiosk's nonce by the pinned centre key); the
wheel comes from the centre with the kiosk's token, and is trusted only for the sha256 the
centre key signed in its manifest (sync/releases.py). Nothing here runs on the scan path: the
worker has its own thread, and it never restarts the kiosk in its busy hours
(`update_busy_hours`) or while badges are being scanned (none for `update_idle_s`).

After the switch the guard decides (kiosk/updates/guard.py): the new version proves itself
within a minute or `current` goes back, and this kiosk never takes that version again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.settings import KioskSettings, busy_ranges
from kiosk.updates import install as installing
from kiosk.updates.layout import Trial, UpdateLayout
from kiosk.updates.supervisor import Supervisor
from sync.protocol import UpdateReport
from sync.releases import ReleaseRefused, SignedRelease, parse_version

log = logging.getLogger(__name__)

State = Literal["idle", "waiting", "installing", "trial", "refused", "failed"]
RETRY_FAILED = timedelta(hours=1)  # a release that failed to install is tried again after this

Download = Callable[[SignedRelease, Path], None]
Install = Callable[[UpdateLayout, Ed25519PublicKey, SignedRelease, Path], Path]


def in_busy_hours(when: datetime, ranges: str) -> bool:
    minute = when.hour * 60 + when.minute
    for start, end in busy_ranges(ranges):
        inside = start <= minute < end if start <= end else (minute >= start or minute < end)
        if inside:
            return True
    return False


@dataclass
class UpdateStatus:
    offered: str = ""
    state: State = "idle"
    detail: str = ""


class Updater:
    def __init__(
        self,
        layout: UpdateLayout | None,
        running_version: str,
        *,
        settings: Callable[[], KioskSettings],
        pinned_key: Callable[[], Ed25519PublicKey | None],
        download: Download,
        supervisor: Supervisor,
        now: Callable[[], datetime],
        last_scan_at: Callable[[], datetime | None],
        install: Install | None = None,
        interval_s: float = 15.0,
    ) -> None:
        self.layout = layout
        self.running = running_version
        self._settings = settings
        self._pinned_key = pinned_key
        self._download = download
        self._supervisor = supervisor
        self._now = now
        self._last_scan_at = last_scan_at
        self._install = install or (
            lambda lay, key, signed, wheel: installing.install(lay, key, signed, wheel)
        )
        self.interval_s = interval_s
        self.status = UpdateStatus()
        self._offer: SignedRelease | None = None
        self._refused: dict[str, str] = {}  # sha256 -> why, this run: not fetched again
        self._failed_at: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- from the sync agent's thread -------------------------------------------------------

    def offer(self, signed: SignedRelease | None) -> None:
        with self._lock:
            changed = signed != self._offer
            self._offer = signed
        if changed:
            self._wake.set()

    def report(self) -> UpdateReport:
        rollbacks = self.layout.rollbacks() if self.layout is not None else []
        status = self.status
        return UpdateReport(
            offered=status.offered,
            state=status.state,
            detail=status.detail[:300],
            rollbacks=rollbacks[-10:],
        )

    # --- the worker's thread ----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="updates", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # the kiosk keeps scanning whatever an update does
                log.exception("update step failed")
                self._say("failed", str(exc))
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def _say(self, state: State, detail: str = "") -> State:
        if (state, detail) != (self.status.state, self.status.detail):
            (log.warning if state in ("refused", "failed") else log.info)(
                "update %s: %s %s", self.status.offered or "-", state, detail
            )
        self.status.state = state
        self.status.detail = detail
        return state

    def step(self) -> State:
        """One look at the offer: what it did, as the state the heartbeat reports."""
        with self._lock:
            signed = self._offer
        if signed is None:
            self.status.offered = ""
            return self._say("idle")
        version = signed.manifest.version
        self.status.offered = version
        if version == self.running:
            return self._say("idle")
        try:
            if self.running and parse_version(version) <= parse_version(self.running):
                return self._say("idle", f"runs {self.running}, newer than {version}")
        except ValueError:
            pass  # a running version that is no version (a clone): any release is newer
        if self.layout is None:
            return self._say("refused", "not installed in an update layout (scripts/install-pi.sh)")
        if version in self.layout.refused_versions():
            return self._say("refused", f"switched back from {version} before: not again")
        if signed.manifest.sha256 in self._refused:
            return self._say("refused", self._refused[signed.manifest.sha256])
        failed = self._failed_at.get(signed.manifest.sha256)
        if failed is not None and self._now() - failed < RETRY_FAILED:
            return self.status.state
        busy = self._busy()
        if busy:
            return self._say("waiting", busy)
        key = self._pinned_key()
        if key is None:
            return self._say("refused", "no centre key pinned: enrol again to take updates")
        self._say("installing")
        try:
            venv = self._fetch_and_install(key, signed)
        except ReleaseRefused as exc:
            self._refused[signed.manifest.sha256] = str(exc)
            return self._say("refused", str(exc))
        except (installing.InstallFailed, OSError) as exc:
            self._failed_at[signed.manifest.sha256] = self._now()
            return self._say("failed", str(exc))
        busy = self._busy()  # a badge may have come while it installed
        if busy:
            return self._say("waiting", f"installed; {busy}")
        self.switch(version, venv)
        self._say("trial", f"switched to {version}; restarting")
        self._supervisor.restart(f"release {version}")
        return "trial"

    def _busy(self) -> str:
        settings = self._settings()
        if not settings.updates_enabled:
            return "updates are turned off (updates_enabled)"
        now = self._now()
        local = now.astimezone(ZoneInfo(settings.timezone))
        if in_busy_hours(local, settings.update_busy_hours):
            return f"busy hours ({settings.update_busy_hours})"
        last = self._last_scan_at()
        if last is not None and now - last < timedelta(seconds=settings.update_idle_s):
            return f"badges scanned in the last {settings.update_idle_s:.0f} s"
        return ""

    def _fetch_and_install(self, key: Ed25519PublicKey, signed: SignedRelease) -> Path:
        assert self.layout is not None
        manifest = signed.manifest
        done = self.layout.venv_of(manifest.version) / installing.MARKER
        if done.is_file():
            return done.parent
        self.layout.downloads.mkdir(parents=True, exist_ok=True)
        wheel = self.layout.downloads / manifest.wheel
        if not wheel.is_file() or wheel.stat().st_size != manifest.size:
            partial = wheel.with_name(f".{wheel.name}.part")
            self._download(signed, partial)
            partial.replace(wheel)
        try:
            return self._install(self.layout, key, signed, wheel)
        except ReleaseRefused:
            wheel.unlink(missing_ok=True)  # not what the centre signed: never kept
            raise

    def switch(self, version: str, venv: Path) -> None:
        """The trial first, then `current`: a power cut between them leaves a trial the guard
        drops (current still runs the old version), never a switch without a trial."""
        assert self.layout is not None
        previous = self.layout.version_at(self.layout.good)
        self.layout.save_trial(Trial(version=version, previous=previous, switched_at=self._now()))
        self.layout.point(self.layout.current, venv)
