"""The kiosk's side of enrolment and of what sync brings home.

`enroll` trades a one-time code for this kiosk's token and stores what the centre answers in the
instance folder:

- `sync_token`: the bearer token (mode 0600, replaced atomically);
- `kiosk.toml`: kiosk_id, site_id, site_name and central_url set, every other line kept;
- `roster.json`: the site's roster, public keys and revocations (kiosk/roster.py);
- `sync_state.json`: the versions of public keys and settings the kiosk holds;
- settings the centre hands out go into kiosk.toml too, only after they pass KioskSettings.

`make_sync_agent` wires sync.agent.SyncAgent to the kiosk's log, roster store and time keeper.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import requests

from kiosk import settings as kiosk_settings
from kiosk.clock import TimeKeeper
from kiosk.roster import CadreEntry, RosterSnapshot, RosterStore
from kiosk.settings import KioskSettings
from kiosk.store import EventLog as KioskLog
from kiosk.store import StoreConfig
from kiosk.store.diskio import DiskIO, atomic_write_bytes, make_dirs
from sync.agent import AgentTuning, EventLog, PhotoQueue, SyncAgent
from sync.client import CentralClient
from sync.config import SettingsError, render_toml_value
from sync.protocol import (
    CameraReport,
    ClockReport,
    ClockSample,
    EnrolAnswer,
    FleetReport,
    Heartbeat,
    KeysAnswer,
    PullAnswer,
    PullRequest,
    RosterDelta,
    SettingsAnswer,
    SettingsReport,
)

log = logging.getLogger(__name__)

TOKEN_FILE = "sync_token"
STATE_FILE = "sync_state.json"
# Settings the centre may not change from afar: who the kiosk is and where it listens.
PROTECTED_SETTINGS = frozenset(
    {"kiosk_id", "site_id", "central_url", "listen_host", "listen_port", "lead_pin"}
)


class EnrolmentError(Exception):
    pass


# --- files -----------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file, fsync, rename over `path`, fsync the folder (kiosk.store's helpers, which
    every file the kiosk writes goes through)."""
    disk = DiskIO()
    make_dirs(disk, path.parent)
    atomic_write_bytes(disk, path, data, mode=mode)


def save_token(instance: Path, token: str) -> None:
    _atomic_write(instance / TOKEN_FILE, token.encode("ascii") + b"\n", mode=0o600)


def load_token(instance: Path) -> str | None:
    try:
        return (instance / TOKEN_FILE).read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        return None


def update_toml(path: Path, values: Mapping[str, Any]) -> None:
    """Set top-level `key = value` lines in a flat TOML file, keeping every other line.

    The result is parsed back before it replaces the file, so a value that would not read back
    the same leaves the file untouched. The file as it was is kept as kiosk.toml.prev; a file
    that no longer reads as TOML (damaged) keeps only its lines that read on their own.
    """
    current = path.read_bytes().decode("utf-8", errors="replace") if path.exists() else ""
    lines = current.splitlines()
    try:
        tomllib.loads(current)
        damaged = False
    except ValueError:
        damaged = True
        lines = [line for line in lines if _reads_alone(line)]
    pending = dict(values)
    out = []
    for line in lines:
        match = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", line)
        if match and match.group(1) in pending:
            key = match.group(1)
            out.append(f"{key} = {render_toml_value(pending.pop(key))}")
        else:
            out.append(line)
    out.extend(f"{key} = {render_toml_value(value)}" for key, value in pending.items())
    text = "\n".join(out) + "\n"
    parsed = tomllib.loads(text)
    for key, value in values.items():
        if parsed.get(key) != value:
            raise EnrolmentError(f"{path.name}: {key} would not read back as {value!r}")
    if current and not damaged:
        # The file as it was, for a start after this one finds it damaged (kiosk.settings).
        _atomic_write(path.with_name(kiosk_settings.PREVIOUS_FILE), current.encode("utf-8"))
    _atomic_write(path, text.encode("utf-8"))


def _reads_alone(line: str) -> bool:
    try:
        tomllib.loads(line)
    except ValueError:
        return False
    return True


@dataclass
class SyncState:
    keys_version: str = ""
    settings_version: int = 0
    settings_problem: str = ""  # why the centre's latest settings were not applied
    generation: int = 0  # how many times the centre has enrolled this kiosk id (0: not said)


def load_state(instance: Path) -> SyncState:
    try:
        data = json.loads((instance / STATE_FILE).read_text(encoding="utf-8"))
        return SyncState(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return SyncState()


def save_state(instance: Path, state: SyncState) -> None:
    _atomic_write(instance / STATE_FILE, json.dumps(state.__dict__).encode("utf-8"))


# --- what the centre sends -------------------------------------------------------------------


def merge_roster(
    current: RosterSnapshot, delta: RosterDelta | None, keys: KeysAnswer | None
) -> RosterSnapshot:
    """The snapshot after applying a roster delta and new public keys (None: unchanged)."""
    cadres = {} if delta is not None and delta.full else dict(current.cadres)
    revoked = {} if delta is not None and delta.full else dict(current.revoked_through)
    version, site_id = current.version, current.site_id
    if delta is not None:
        version, site_id = delta.version, delta.site_id
        for cadre_id in delta.removed:
            cadres.pop(cadre_id, None)
        for cadre in delta.cadres:
            cadres[cadre.cadre_id] = CadreEntry(
                name=cadre.name[:100], unit=cadre.unit, site_id=delta.site_id
            )
        for cadre_id, serial in delta.revocations.items():
            revoked[cadre_id] = max(serial, revoked.get(cadre_id, serial))
    public_keys = (
        {k.key_id: k.public_key for k in keys.keys} if keys is not None else current.public_keys
    )
    return RosterSnapshot(
        version=version,
        site_id=site_id,
        cadres=cadres,
        public_keys=public_keys,
        revoked_through=revoked,
    )


def apply_settings(
    instance: Path, answer: SettingsAnswer, env: dict[str, str] | None = None
) -> str:
    """Write the centre's kiosk settings into kiosk.toml if they pass validation.

    Returns "" when applied, else the reason they were not (the file is then unchanged). A
    running kiosk then takes what it safely can at once (kiosk/live_settings.py), the rest at
    its next start.
    """
    values = {k: v for k, v in answer.values.items() if k not in PROTECTED_SETTINGS}
    refused = sorted(set(answer.values) - set(values))
    try:
        current = kiosk_settings.load(instance, env=env if env is not None else {})
        KioskSettings.model_validate(current.model_dump() | values)
    except (SettingsError, ValueError) as exc:
        return f"settings from the centre refused: {exc}"
    if values:
        update_toml(instance / kiosk_settings.SETTINGS_FILE, values)
    return f"not changed from afar: {', '.join(refused)}" if refused else ""


class PullApplier:
    """Takes pull answers on the agent's thread: roster, keys, settings; remembers versions."""

    def __init__(
        self,
        instance: Path,
        roster: RosterStore,
        on_settings: Callable[[int, str, list[str]], object] | None = None,
    ):
        """`on_settings(version, problem, refused)`: called after the centre's settings were
        taken into kiosk.toml (or refused), for the running kiosk to apply them."""
        self.instance = instance
        self.roster = roster
        self.on_settings = on_settings

    def versions(self) -> PullRequest:
        state = load_state(self.instance)
        return PullRequest(
            roster_version=self.roster.current.version,
            keys_version=state.keys_version,
            settings_version=state.settings_version,
        )

    def __call__(self, answer: PullAnswer) -> None:
        state = load_state(self.instance)
        if answer.roster is not None or answer.public_keys is not None:
            self.roster.save(merge_roster(self.roster.current, answer.roster, answer.public_keys))
            if answer.public_keys is not None:
                state.keys_version = answer.public_keys.version
        if answer.settings is not None:
            state.settings_problem = apply_settings(self.instance, answer.settings)
            state.settings_version = answer.settings.version
            if state.settings_problem:
                log.warning("%s", state.settings_problem)
        save_state(self.instance, state)
        if answer.settings is not None and self.on_settings is not None:
            refused = sorted(set(answer.settings.values) & PROTECTED_SETTINGS)
            self.on_settings(answer.settings.version, state.settings_problem, refused)


# --- enrolment -------------------------------------------------------------------------------


def enroll(
    instance: Path,
    url: str,
    code: str,
    *,
    client: CentralClient | None = None,
    app_version: str = "",
    event_log: KioskLog | None = None,
) -> EnrolAnswer:
    """Enrol this kiosk with the centre at `url`; raises sync.client.SyncError on failure.
    `event_log`: the kiosk's event log when it is open (a running kiosk enrolling through its
    camera); otherwise it is opened here if the centre says where its chain goes on."""
    client = client or CentralClient(url)
    answer = client.enrol(code, hostname=socket.gethostname(), app_version=app_version).answer
    instance.mkdir(parents=True, exist_ok=True)
    # The code works once: keep the token before anything else can fail.
    save_token(instance, answer.token)
    update_toml(
        instance / kiosk_settings.SETTINGS_FILE,
        {
            "kiosk_id": answer.kiosk_id,
            "site_id": answer.site_id,
            "site_name": answer.site_name,
            "central_url": url,
        },
    )
    store = RosterStore(instance)
    store.save(merge_roster(RosterSnapshot(), answer.roster, answer.public_keys))
    problem = apply_settings(instance, answer.settings)
    save_state(
        instance,
        SyncState(
            keys_version=answer.public_keys.version,
            settings_version=answer.settings.version,
            settings_problem=problem,
        ),
    )
    continue_chain(instance, answer, event_log)
    return answer


def continue_chain(instance: Path, answer: EnrolAnswer, event_log: KioskLog | None = None) -> bool:
    """A kiosk enrolled again whose log is empty (wiped, or a new card) begins it where the
    centre's copy of its chain ends (central/generations.py). True when it did."""
    base = answer.chain
    state = load_state(instance)
    state.generation = base.generation if base is not None else 1
    save_state(instance, state)
    if base is None or base.seq == 0:
        return False
    if event_log is not None:
        done = event_log.continue_chain(base.seq, base.hash)
    else:
        with KioskLog(instance / "log", StoreConfig()) as opened:
            done = opened.continue_chain(base.seq, base.hash)
    if done:
        log.info(
            "enrolment %d of %s: the log goes on after seq %d",
            base.generation,
            answer.kiosk_id,
            base.seq,
        )
    else:
        log.warning(
            "enrolled again, but the log already holds events: it keeps its own chain "
            "(the centre had %s up to seq %d)",
            answer.kiosk_id,
            base.seq,
        )
    return done


# --- the running kiosk's agent ---------------------------------------------------------------


# A clock anchor's source -> how a clock sample names it.
SAMPLE_SOURCES: dict[str, Literal["centre", "phone", "ntp"]] = {
    "centre": "centre",
    "lead_phone": "phone",
    "ntp": "ntp",
}


def samples_of(keeper: TimeKeeper) -> list[ClockSample]:
    """Every boot's best known offset, for the centre to correct that boot's times."""
    samples = []
    for anchor in keeper.anchors():
        source = SAMPLE_SOURCES.get(anchor.source)
        if source is None:
            continue
        samples.append(
            ClockSample(
                boot_id=anchor.boot_id,
                monotonic_ns=anchor.monotonic_ns,
                device_time=anchor.wall_time,
                offset_s=anchor.offset.total_seconds(),
                rtt_s=2 * anchor.uncertainty_s if source != "phone" else None,
                source=source,
            )
        )
    return samples[-20:]


def learn_from(keeper: TimeKeeper) -> Callable[[ClockSample], None]:
    def learn(sample: ClockSample) -> None:
        true_time = sample.device_time + timedelta(seconds=sample.offset_s)
        keeper.learn(
            true_time,
            "centre",
            uncertainty_s=(sample.rtt_s or 0.0) / 2,
            at_monotonic_ns=sample.monotonic_ns,
        )

    return learn


@dataclass(frozen=True)
class KioskFacts:
    """What the kiosk app knows for the heartbeat besides the queue and the clock."""

    camera_ok: bool
    camera_detail: str = ""
    last_scan_at: datetime | None = None
    ready: bool = True
    ready_detail: str = ""
    fleet: FleetReport | None = None
    disk_free_bytes: int | None = None  # None: the agent asks the disk itself
    settings: SettingsReport | None = None


def make_sync_agent(
    instance: Path,
    settings: KioskSettings,
    event_log: EventLog,
    roster: RosterStore,
    keeper: TimeKeeper,
    facts: Callable[[], KioskFacts],
    app_version: str = "",
    session: requests.Session | None = None,
    on_settings: Callable[[int, str, list[str]], object] | None = None,
    photos: PhotoQueue | None = None,
) -> SyncAgent | None:
    """The agent for a running kiosk; None when it has no centre URL or token yet.

    Offsets are measured with the kiosk's own clock (the keeper's), as events are stamped.
    """
    token = load_token(instance)
    if not settings.central_url or not token:
        return None
    client = CentralClient(
        settings.central_url,
        token,
        timeout_s=settings.sync_timeout_s,
        session=session,
        wall_clock=keeper.clock.now,
        monotonic_ns=keeper.clock.monotonic_ns,
        boot_id=keeper.clock.boot_id(),
    )
    applier = PullApplier(instance, roster, on_settings)

    def heartbeat() -> Heartbeat:
        known = facts()
        reading = keeper.read()
        disk_free = known.disk_free_bytes
        if disk_free is None:
            try:
                disk_free = shutil.disk_usage(instance).free
            except OSError:
                disk_free = None
        return Heartbeat(
            app_version=app_version,
            queue_length=0,  # the agent fills it in
            last_scan_at=known.last_scan_at,
            camera=CameraReport(ok=known.camera_ok, detail=known.camera_detail[:200]),
            clock=ClockReport(
                trusted=reading.trusted,
                offset_s=reading.offset.total_seconds(),
                boot_id=reading.boot_id,
                samples=samples_of(keeper),
            ),
            disk_free_bytes=disk_free,
            ready=known.ready,
            ready_detail=known.ready_detail[:200],
            fleet=known.fleet,
            settings=known.settings,
        )

    return SyncAgent(
        event_log,
        client,
        settings.kiosk_id,
        keeper.clock.boot_id(),
        tuning=AgentTuning(
            batch_size=settings.sync_batch_size,
            interval_s=settings.sync_interval_s,
            backoff_base_s=settings.sync_backoff_base_s,
            backoff_cap_s=settings.sync_backoff_cap_s,
            wake_min_interval_s=settings.sync_wake_min_interval_s,
        ),
        pull_versions=applier.versions,
        on_pull=applier,
        heartbeat=heartbeat,
        on_clock_sample=learn_from(keeper),
        wall_clock=keeper.clock.now,
        photos=photos,
    )
