"""The kiosk's side of enrolment and of what sync brings home.

`enroll` checks the centre's key against the fingerprint of the enrolment code (before the code is
sent), trades the code for this kiosk's token and stores what the centre answers in the instance
folder (0700):

- `centre_key.json`: the centre key this kiosk trusts from now on (kiosk/centre_trust.py);
- `sync_token`: the bearer token (mode 0600, replaced atomically);
- `kiosk.toml`: kiosk_id, site_id, site_name and central_url set, every other line kept;
- `roster.json`: the site's roster, public keys and revocations (kiosk/roster.py);
- `sync_state.json`: the versions of public keys and settings the kiosk holds;
- settings the centre hands out go into kiosk.toml too, only after they pass KioskSettings, and
  never those that change what the kiosk trusts (sync.protocol.pushable).

`make_sync_agent` wires sync.agent.SyncAgent to the kiosk's log, roster store and time keeper,
with a client that takes only answers the pinned centre key signed.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import requests

from kiosk import settings as kiosk_settings
from kiosk import settings_file
from kiosk.centre_trust import (
    TrustError,
    identify_centre,
    load_pinned,
    plain_http_problem,
    save_pinned,
)
from kiosk.clock import TimeKeeper
from kiosk.peers.identity import PeerDirectory, load_key, new_key
from kiosk.private_files import PRIVATE_FILE, atomic_write, make_private_dir
from kiosk.roster import CadreEntry, RosterSnapshot, RosterStore
from kiosk.settings import KioskSettings
from kiosk.store import EventLog as KioskLog
from kiosk.store import StoreConfig
from sync.agent import AgentTuning, EventLog, PhotoQueue, SyncAgent
from sync.client import CentralClient, Reply, UntrustedCentre
from sync.config import SettingsError
from sync.events import Event
from sync.peers import public_text
from sync.protocol import (
    CameraReport,
    ClockReport,
    ClockSample,
    EnrolAnswer,
    FleetReport,
    Heartbeat,
    HeartbeatAnswer,
    KeysAnswer,
    NamesAnswer,
    NamesRequest,
    PhotoAnswer,
    PhotoBatch,
    PullAnswer,
    PullRequest,
    PushAnswer,
    RosterDelta,
    SettingsAnswer,
    SettingsReport,
    UpdateReport,
    pushable,
)
from sync.releases import SignedRelease

log = logging.getLogger(__name__)

TOKEN_FILE = "sync_token"
STATE_FILE = "sync_state.json"


class EnrolmentError(Exception):
    pass


# --- files -----------------------------------------------------------------------------------


def save_token(instance: Path, token: str) -> None:
    atomic_write(instance / TOKEN_FILE, token.encode("ascii") + b"\n", PRIVATE_FILE)


def load_token(instance: Path) -> str | None:
    """The kiosk's token; a file torn by a power cut gives what of it still reads (the centre
    then refuses it, and the lead's readiness says so), never an error at start."""
    try:
        data = (instance / TOKEN_FILE).read_bytes()
    except FileNotFoundError:
        return None
    text = data.decode("ascii", errors="ignore")
    return "".join(c for c in text if c.isprintable() and not c.isspace()) or None


def update_toml(path: Path, values: Mapping[str, Any]) -> None:
    try:
        settings_file.update_toml(path, values)
    except settings_file.SettingsFileError as exc:
        raise EnrolmentError(str(exc)) from exc


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
    atomic_write(instance / STATE_FILE, json.dumps(state.__dict__).encode("utf-8"))


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


SETTINGS_REFUSED = "settings from the centre refused"


def apply_settings(
    instance: Path, answer: SettingsAnswer, env: dict[str, str] | None = None
) -> str:
    """Write the centre's kiosk settings into kiosk.toml if they pass validation.

    Returns "" when applied, else the reason they were not (the file is then unchanged). A
    running kiosk then takes what it safely can at once (kiosk/live_settings.py), the rest at
    its next start.
    """
    values = {k: v for k, v in answer.values.items() if pushable(k)}
    refused = sorted(set(answer.values) - set(values))
    if refused:
        log.warning("settings from the centre ignored (never set from afar): %s", refused)
    try:
        current = kiosk_settings.load(instance, env=env if env is not None else {})
        KioskSettings.model_validate(current.model_dump() | values)
    except (SettingsError, ValueError) as exc:
        return f"{SETTINGS_REFUSED}: {exc}"
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
        peers: PeerDirectory | None = None,
        peer_address: str = "",
        on_update: Callable[[SignedRelease | None], object] | None = None,
    ):
        """`on_settings(version, problem, refused)`: called after the centre's settings were
        taken into kiosk.toml (or refused), for the running kiosk to apply them. `peers`: where
        the site's peers the centre names go (None: this kiosk does not take part).
        `on_update(offer)`: the release offered in each answer (None: none), for kiosk/updates."""
        self.instance = instance
        self.roster = roster
        self.on_settings = on_settings
        self.peers = peers
        self.peer_address = peer_address
        self.on_update = on_update

    def versions(self) -> PullRequest:
        state = load_state(self.instance)
        peer_key = public_text(load_key(self.instance)) if self.peers is not None else None
        return PullRequest(
            roster_version=self.roster.current.version,
            keys_version=state.keys_version,
            settings_version=state.settings_version,
            peer_key=peer_key,
            peer_address=self.peer_address if peer_key is not None else None,
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
        if answer.peers is not None and self.peers is not None:
            self.peers.replace(answer.peers)
        if answer.settings is not None and self.on_settings is not None:
            refused = sorted(k for k in answer.settings.values if not pushable(k))
            # Settings kept local are said as refused; a problem is a set not taken at all.
            whole = state.settings_problem.startswith(SETTINGS_REFUSED)
            problem = state.settings_problem if whole else ""
            self.on_settings(answer.settings.version, problem, refused)
        if self.on_update is not None:
            self.on_update(answer.update)


# --- enrolment -------------------------------------------------------------------------------


def enroll(
    instance: Path,
    url: str,
    code: str,
    centre_fingerprint: str,
    *,
    client: CentralClient | None = None,
    app_version: str = "",
    event_log: KioskLog | None = None,
    env: dict[str, str] | None = None,
) -> EnrolAnswer:
    """Enrol this kiosk with the centre at `url` whose key has `centre_fingerprint`.

    The centre's key is checked before the code leaves the kiosk; then every answer must be
    signed by it. Raises EnrolmentError (or sync.client.SyncError) on failure. `event_log`: the
    kiosk's event log when it is open (a running kiosk enrolling through its camera); otherwise
    it is opened here if the centre says where its chain goes on.
    """
    settings = kiosk_settings.load(instance, env=env)
    problem = plain_http_problem(url, settings.sync_plain_http_allowed)
    if problem:
        raise EnrolmentError(problem)
    client = client or CentralClient(url)
    try:
        client.pinned = identify_centre(client, centre_fingerprint)
    except TrustError as exc:
        raise EnrolmentError(str(exc)) from exc
    answer = client.enrol(code, hostname=socket.gethostname(), app_version=app_version).answer
    make_private_dir(instance)
    # The code works once: keep the token (and whom it is for) before anything else can fail.
    save_pinned(instance, client.pinned.key, via="enrolment")
    save_token(instance, answer.token)
    new_key(instance)  # enrolled again: a new peer too, the old key is dropped by the centre
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
    problem = apply_settings(instance, answer.settings, env=env)
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


def pin_centre(
    instance: Path,
    centre_fingerprint: str,
    *,
    client: CentralClient | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Pin the key of this kiosk's centre (central_url) when it has `centre_fingerprint`; the
    fingerprint pinned. For a kiosk enrolled before keys were pinned, or a centre key replaced
    after a leak."""
    settings = kiosk_settings.load(instance, env=env)
    if not settings.central_url:
        raise EnrolmentError("this kiosk has no central_url: enrol it first")
    problem = plain_http_problem(settings.central_url, settings.sync_plain_http_allowed)
    if problem:
        raise EnrolmentError(problem)
    client = client or CentralClient(settings.central_url, timeout_s=settings.sync_timeout_s)
    try:
        pinned = identify_centre(client, centre_fingerprint)
    except TrustError as exc:
        raise EnrolmentError(str(exc)) from exc
    save_pinned(instance, pinned.key, via="pinned by hand")
    return pinned.fingerprint


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


class GuardedClient:
    """The centre's client as a running kiosk uses it: nothing is sent or taken while the URL
    is plain http without `sync_plain_http_allowed`, or while no centre key is pinned (checked
    again before each exchange, so `kiosk pin-centre` takes effect without a restart). Each
    refusal is an UntrustedCentre error, which the lead's readiness shows."""

    def __init__(self, client: CentralClient, instance: Path, problem: str) -> None:
        self.client = client
        self.instance = instance
        self.problem = problem  # a fixed reason (the URL): the kiosk's settings must change

    def _ready(self) -> CentralClient:
        if self.problem:
            raise UntrustedCentre(self.problem)
        if self.client.pinned is None:
            try:
                self.client.pinned = load_pinned(self.instance)
            except TrustError as exc:
                raise UntrustedCentre(str(exc)) from exc
            if self.client.pinned is None:
                raise UntrustedCentre(NOT_PINNED)
        return self.client

    def encode_push(self, kiosk_id: str, events: list[Event]) -> bytes:
        return CentralClient.encode_push(kiosk_id, events)

    def push(
        self, kiosk_id: str, events: list[Event], body: bytes | None = None
    ) -> Reply[PushAnswer]:
        return self._ready().push(kiosk_id, events, body)

    def pull(self, asked: PullRequest) -> Reply[PullAnswer]:
        return self._ready().pull(asked)

    def heartbeat(self, beat: Heartbeat) -> Reply[HeartbeatAnswer]:
        return self._ready().heartbeat(beat)

    def names(self, asked: NamesRequest) -> Reply[NamesAnswer]:
        return self._ready().names(asked)

    def photos(self, batch: PhotoBatch) -> Reply[PhotoAnswer]:
        return self._ready().photos(batch)


NOT_PINNED = (
    "no centre key is pinned: this kiosk takes nothing from the centre until it is "
    "(`kiosk pin-centre FINGERPRINT`, the fingerprint from `central centre-key show`, or enrol "
    "it again)"
)


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
    update: UpdateReport | None = None


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
    peers: PeerDirectory | None = None,
    on_update: Callable[[SignedRelease | None], object] | None = None,
) -> SyncAgent | None:
    """The agent for a running kiosk; None when it has no centre URL or token yet.

    Offsets are measured with the kiosk's own clock (the keeper's), as events are stamped.
    """
    token = load_token(instance)
    if not settings.central_url or not token:
        return None
    problem = plain_http_problem(settings.central_url, settings.sync_plain_http_allowed)
    if problem:
        log.error("sync: %s", problem)
    client = GuardedClient(
        CentralClient(
            settings.central_url,
            token,
            timeout_s=settings.sync_timeout_s,
            session=session,
            wall_clock=keeper.clock.now,
            monotonic_ns=keeper.clock.monotonic_ns,
            boot_id=keeper.clock.boot_id(),
        ),
        instance,
        problem,
    )
    applier = PullApplier(instance, roster, on_settings, peers, settings.peer_address, on_update)

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
            update=known.update,
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
