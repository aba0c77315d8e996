"""The kiosk-centre protocol: one set of schemas both sides validate against.

HTTP + JSON under /api/v1, `Authorization: Bearer <kiosk token>` on everything but enrolment.

    POST /api/v1/enrol       EnrolRequest   -> EnrolAnswer        (no token: the one-time code)
    POST /api/v1/events      PushBatch      -> PushAnswer
    POST /api/v1/pull        PullRequest    -> PullAnswer
    POST /api/v1/heartbeat   Heartbeat      -> HeartbeatAnswer
    GET  /api/v1/time                       -> TimeAnswer         (no token)
    GET  /api/v1/centre                     -> CentreAnswer       (no token)

Every answer is signed with the centre's key (sync/centre_key.py): the kiosk sends a fresh
`X-Cadre-Nonce` with each request and takes no answer that the key it pinned at enrolment did
not sign over that nonce, its request and the answer's body.

Errors answer `ErrorAnswer` with 400 (malformed: every bad field with its reason), 401 (no,
unknown or revoked token), 404 (unknown enrolment code), 410 (code used or expired), 413 (body
over the size limit), 415 (not JSON).

Push answers one `EventResult` per event of the batch, in order. A kiosk acknowledges (moves its
cursor past) the events up to the first one the centre did not answer for: "stored" and
"duplicate" are in the event store; "rejected" events failed a check (bad hash, another kiosk's
id, ...) and are kept in the centre's quarantine with the reason, so one bad record cannot stall
a kiosk forever while staff still see it.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from sync.centre_key import Rotation, parse_fingerprint
from sync.events import INT64_MAX, check_time_range, refuse_nul
from sync.peers import Address, PeersAnswer, PublicKeyText
from sync.releases import SignedRelease

API_PREFIX = "/api/v1"
MAX_BATCH_EVENTS = 2000
MAX_CLOCK_SAMPLES = 50
INT32_MAX = 2**31 - 1  # the centre keeps counts like queue_length in 32-bit columns
MAX_OFFSET_S = 10 * 365 * 86400

# What the enrolment QR holds: "CKE2|<code>|<centre key fingerprint>|<centre URL>". ASCII, no
# names, nothing secret beyond the one-time code, which expires and works once. The fingerprint
# lets the kiosk check it talks to this centre before it sends the code. (CKE1, before it, had no
# fingerprint: it is refused, unless the fingerprint is given beside it.)
ENROL_QR_PREFIX = "CKE2|"
OLD_ENROL_QR_PREFIX = "CKE1|"

# Kiosk settings the centre can never set: who the kiosk is, which centre it trusts and how,
# where it listens and how many connections it takes, where it reads frames, who may see its
# screen, and the lead's PIN and its guard. The centre refuses to store them; a kiosk that gets
# one anyway ignores it and logs it.
UNPUSHABLE_SETTINGS = frozenset(
    {"kiosk_id", "site_id", "central_url", "sync_plain_http_allowed", "screen_remote_allowed"}
)
UNPUSHABLE_PREFIXES = ("camera_", "listen_", "lead_", "server_", "stream_")


def pushable(setting: str) -> bool:
    """Whether the centre may set this kiosk setting from afar."""
    return setting not in UNPUSHABLE_SETTINGS and not setting.startswith(UNPUSHABLE_PREFIXES)


Ident = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
]
ShortText = Annotated[str, StringConstraints(max_length=200)]
EnrolCode = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),
    StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Z2-7-]+$"),
]


class Message(BaseModel):
    """Base of every message: unknown fields refused, so a typo is an error, not a silent loss.
    No text of a message holds a NUL character (the centre's PostgreSQL cannot store one); raw
    objects (a batch's events, checked one by one) are left to their own checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _no_nul(self) -> Message:
        for name in type(self).model_fields:
            value = getattr(self, name)
            for text in value if isinstance(value, list | tuple) else [value]:
                if isinstance(text, str):
                    try:
                        refuse_nul(text)
                    except ValueError as exc:
                        raise ValueError(f"{name} {exc}") from None
        return self


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("time needs a UTC offset")
    return check_time_range(value)


class TimeAnswer(Message):
    server_time: datetime

    _check_time = field_validator("server_time")(_aware)


# --- errors ----------------------------------------------------------------------------------


class FieldProblem(Message):
    field: str  # dotted path, e.g. "events.3.device_time"
    reason: str


class ErrorAnswer(Message):
    error: str  # malformed | unauthorized | not_found | gone | too_large | not_json | ...
    message: str
    fields: list[FieldProblem] = Field(default_factory=list)


def field_problems(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """pydantic's errors as (dotted field, reason) pairs a person can act on."""
    problems = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        # A key or a message may quote what was sent, NUL characters included.
        problems.append(
            FieldProblem(
                field=(path or "(body)").replace("\x00", "\ufffd"),
                reason=err["msg"].replace("\x00", "\ufffd"),
            )
        )
    return problems


# --- clock samples ---------------------------------------------------------------------------


class ClockSample(Message):
    """One measurement of how far a kiosk's wall clock was from true time.

    offset_s = true time - kiosk wall clock, at `device_time`, which the kiosk's clock showed at
    monotonic time `monotonic_ns` of boot `boot_id`. Because the monotonic clock never steps,
    the centre can place every event of that boot on true time even if the wall clock jumped.
    """

    boot_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    monotonic_ns: int = Field(ge=0, le=INT64_MAX)
    device_time: datetime
    offset_s: float = Field(ge=-MAX_OFFSET_S, le=MAX_OFFSET_S)
    rtt_s: float | None = Field(default=None, ge=0, le=3600)  # None: not a round trip (phone)
    source: Literal["centre", "phone", "ntp"] = "centre"

    _check_time = field_validator("device_time")(_aware)


# --- the kiosk's clocks at sending ------------------------------------------------------------

# On every request a kiosk says which boot it is in and what its two clocks read as the request
# left. The centre notes the time the request arrived by its own clock: that ties the boot's
# monotonic clock to true time without taking the kiosk's word for the offset (central/ingest/
# timeclaims.py). A header, so an older centre ignores it and a body encoded ahead of time does
# not carry a stale reading.
CLOCK_HEADER = "X-Kiosk-Clock"


class ClockReading(Message):
    boot_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    monotonic_ns: int = Field(ge=0, le=INT64_MAX)
    device_time: datetime

    _check_time = field_validator("device_time")(_aware)


def clock_header(boot_id: str, monotonic_ns: int, device_time: datetime) -> str:
    return f"boot_id={boot_id}; monotonic_ns={monotonic_ns}; device_time={device_time.isoformat()}"


def parse_clock_header(text: str) -> ClockReading:
    """The reading of a CLOCK_HEADER value; ValueError (pydantic's included) when malformed."""
    parts = dict(part.strip().partition("=")[::2] for part in text.split(";") if part.strip())
    if set(parts) != {"boot_id", "monotonic_ns", "device_time"}:
        raise ValueError("expected boot_id, monotonic_ns and device_time")
    return ClockReading.model_validate(parts)


# --- push ------------------------------------------------------------------------------------


class PushBatch(Message):
    """Events in seq order. Each event is validated on its own (see EventResult), so `events`
    holds raw objects here; the centre parses them with sync.events.Event."""

    kiosk_id: Ident
    events: list[dict[str, Any]] = Field(max_length=MAX_BATCH_EVENTS)


EventStatus = Literal["stored", "duplicate", "rejected"]
ACKNOWLEDGED: frozenset[str] = frozenset({"stored", "duplicate", "rejected"})


class EventResult(Message):
    index: int = Field(ge=0)  # position in the batch
    event_id: str | None  # None when the event was too broken to have one
    seq: int | None
    status: EventStatus
    reason: str | None = None  # why it was rejected, field by field


class PushAnswer(Message):
    server_time: datetime
    results: list[EventResult]
    stored: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    rejected: int = Field(ge=0)

    _check_time = field_validator("server_time")(_aware)


# --- pull ------------------------------------------------------------------------------------


# Pull fields newer than some centres: left out while None (an older centre refuses them).
NEWER_PULL_FIELDS = ("peer_key", "peer_address")


class PullRequest(Message):
    roster_version: int = Field(0, ge=0, le=INT64_MAX)  # 0: send everything
    keys_version: str = Field("", max_length=64)
    settings_version: int = Field(0, ge=0, le=INT64_MAX)
    # The public half of this kiosk's peer key (sync/peers.py), and where its pages listen on
    # the site's LAN when its settings say so. A centre answers `peers` only to a kiosk that
    # sent a key: an older kiosk refuses the field.
    peer_key: PublicKeyText | None = None
    peer_address: Address | None = None

    @model_serializer(mode="wrap")
    def _without_absent_newer_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in NEWER_PULL_FIELDS:
                if data.get(name) is None:
                    data.pop(name, None)
        return data


class RosterCadre(Message):
    cadre_id: Ident
    name: Annotated[str, StringConstraints(max_length=200)]
    unit: Annotated[str, StringConstraints(max_length=200)] = ""
    badge_serial: int | None = None
    revoked_through: int | None = None


class RosterDelta(Message):
    """Changes to this kiosk's site roster since the version the kiosk sent.

    The roster holds the kiosk's own site's cadres only: it needs their names; a valid badge from
    another site is accepted and flagged without a name. `removed`: cadres that left this site
    (moved elsewhere or were taken off), to drop. `revocations`: cadre id -> highest revoked badge
    serial, for every site (a kiosk must refuse a revoked badge whoever's it is).
    """

    version: int = Field(ge=0)
    full: bool  # True: replace the whole roster with `cadres`
    site_id: str
    site_name: str | None = None  # None: unchanged
    cadres: list[RosterCadre] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    revocations: dict[str, int] = Field(default_factory=dict)


class PublicKey(Message):
    key_id: int = Field(ge=0, le=0xFFFF)
    public_key: Annotated[str, StringConstraints(min_length=40, max_length=100)]  # base64 raw


class KeysAnswer(Message):
    version: str
    keys: list[PublicKey]


class SettingsAnswer(Message):
    """Kiosk settings the centre sets (whole set each time it changes); the kiosk validates them
    against its own settings model before applying any."""

    version: int = Field(ge=0)
    values: dict[str, Any]


class PullAnswer(Message):
    """None in a part: unchanged since the version the kiosk sent.

    `update`: the release the centre offers this kiosk now (sync/releases.py), whether or not
    the kiosk runs it already; left out (not null) when none is offered, so a kiosk older than
    the field, which refuses unknown fields, still reads the answer."""

    server_time: datetime
    roster: RosterDelta | None = None
    public_keys: KeysAnswer | None = None
    settings: SettingsAnswer | None = None
    # The site's live peers (whole list each time), only to a kiosk that sent its peer key.
    peers: PeersAnswer | None = None
    update: SignedRelease | None = None

    _check_time = field_validator("server_time")(_aware)

    @model_serializer(mode="wrap")
    def _without_absent_newer_parts(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in ("peers", "update"):
                if data.get(name) is None:
                    data.pop(name, None)
        return data


# --- heartbeat -------------------------------------------------------------------------------


class ClockReport(Message):
    trusted: bool
    # the kiosk's current idea of true - wall, if any
    offset_s: float | None = Field(default=None, allow_inf_nan=False)
    boot_id: Annotated[str, StringConstraints(max_length=64)] = ""
    samples: list[ClockSample] = Field(default_factory=list, max_length=MAX_CLOCK_SAMPLES)


class CameraReport(Message):
    ok: bool
    detail: ShortText = ""


class RecoveryNote(Message):
    """What the kiosk's event log found when it last opened (after a power cut: what it cut,
    replayed or lost). `lost`: a record that had been confirmed may be gone."""

    clean: bool
    lost: bool = False
    lost_events: int = Field(default=0, ge=0, le=INT32_MAX)  # how many, where the log can tell
    summary: Annotated[str, StringConstraints(max_length=500)] = ""
    opened_at: datetime | None = None

    @field_validator("opened_at")
    @classmethod
    def _aware_or_none(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)


class FleetReport(Message):
    """What the centre's fleet view shows of a kiosk besides its health: what it runs, on what,
    for how long, how full its disk is, how hot its CPU and whether the Pi throttled it. Every
    field is optional: a kiosk reports what its machine says (no thermal zone, no vcgencmd off
    a Pi)."""

    os: ShortText = ""  # PRETTY_NAME of /etc/os-release
    python: Annotated[str, StringConstraints(max_length=32)] = ""
    machine: Annotated[str, StringConstraints(max_length=32)] = ""  # aarch64, x86_64, ...
    board: ShortText = ""  # /proc/device-tree/model: "Raspberry Pi 4 Model B Rev 1.4"
    uptime_s: int | None = Field(default=None, ge=0, le=INT64_MAX)  # the machine's
    kiosk_uptime_s: int | None = Field(default=None, ge=0, le=INT64_MAX)  # the kiosk process's
    disk_total_bytes: int | None = Field(default=None, ge=0, le=INT64_MAX)
    log_bytes: int | None = Field(default=None, ge=0, le=INT64_MAX)  # the event log's folder
    cpu_temp_c: float | None = Field(default=None, ge=-60, le=200, allow_inf_nan=False)
    # `vcgencmd get_throttled`: bits 0-3 now (under-voltage, frequency capped, throttled, soft
    # temperature limit), bits 16-19 the same since boot. None: not a Pi, or not said.
    throttled: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    camera: ShortText = ""  # the frame source as the scanner names it (model where known)
    camera_fps: float | None = Field(default=None, ge=0, le=1000, allow_inf_nan=False)
    recovery: RecoveryNote | None = None


class SettingsReport(Message):
    """Where the kiosk stands with the settings the centre sent (pull answer `settings`):
    the version it took, what waits for a restart, what it refused and why."""

    version: int = Field(ge=0, le=INT64_MAX)
    after_restart: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=100
    )
    refused: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=100
    )
    problem: Annotated[str, StringConstraints(max_length=500)] = ""


class Rollback(Message):
    """A release this kiosk tried and switched back from by itself (kiosk/updates)."""

    from_version: Annotated[str, StringConstraints(max_length=64)]
    to_version: Annotated[str, StringConstraints(max_length=64)]
    at: datetime
    reason: Annotated[str, StringConstraints(max_length=300)] = ""

    _check_time = field_validator("at")(_aware)


class UpdateReport(Message):
    """Where the kiosk stands with the release the centre offers: `state` is idle (nothing
    offered, or it runs it), waiting (offered; waits for quiet), installing, trial (switched;
    not yet proven), refused (a bad signature or hash, a version it rolled back from) or failed
    (could not install). `rollbacks`: the last few switches back, newest last."""

    offered: Annotated[str, StringConstraints(max_length=64)] = ""
    state: Literal["idle", "waiting", "installing", "trial", "refused", "failed"] = "idle"
    detail: Annotated[str, StringConstraints(max_length=300)] = ""
    rollbacks: list[Rollback] = Field(default_factory=list, max_length=10)


# Heartbeat fields newer than some centres: left out when empty, as an older centre refuses any
# field it does not know (even a null), and dropped by the agent when a centre refuses one.
NEWER_HEARTBEAT_FIELDS = ("fleet", "settings", "acknowledged_seq", "update")


class Heartbeat(Message):
    app_version: Annotated[str, StringConstraints(max_length=64)] = ""
    queue_length: int = Field(ge=0, le=INT32_MAX)
    last_scan_at: datetime | None = None
    camera: CameraReport
    clock: ClockReport
    disk_free_bytes: int | None = Field(default=None, ge=0, le=INT64_MAX)
    ready: bool
    ready_detail: ShortText = ""
    sent_at: datetime | None = None
    fleet: FleetReport | None = None  # None from kiosks older than the fleet view
    settings: SettingsReport | None = None
    # How far the centre has acknowledged this kiosk's log (its sync cursor). A centre restored
    # from a backup has lost what came after the backup: it answers `resend_after`. Sent only by
    # kiosks that act on the answer; a centre answers it only to them.
    acknowledged_seq: int | None = Field(default=None, ge=0, le=INT64_MAX)
    update: UpdateReport | None = None

    @field_validator("last_scan_at", "sent_at")
    @classmethod
    def _aware_or_none(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)

    @model_serializer(mode="wrap")
    def _without_absent_newer_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in NEWER_HEARTBEAT_FIELDS:
                if data.get(name) is None:
                    data.pop(name, None)
        return data


class HeartbeatAnswer(Message):
    server_time: datetime
    # The centre's stored chain of this kiosk ends here, behind the acknowledged_seq the kiosk
    # sent: it lost records it had acknowledged (restored from a backup). The kiosk sends again
    # every record after this seq. Left out (not null) when nothing is missing, so kiosks of
    # before this field, which refuse unknown fields, still read the answer.
    resend_after: int | None = Field(default=None, ge=0, le=INT64_MAX)

    _check_time = field_validator("server_time")(_aware)


# --- names of visitors ----------------------------------------------------------------------
#
# A kiosk holds its own site's roster only. It asks the centre for the names of cadres of other
# sites whose badges it read; the centre names only cadres of whom it stored a badge scan from
# this very kiosk, so a kiosk's token cannot page through the city's roster. An older centre
# answers 404 and the kiosk keeps showing ids.

NAMES_PATH = "/names"
MAX_NAMES_ASKED = 200


class NamesRequest(Message):
    cadre_ids: list[Ident] = Field(max_length=MAX_NAMES_ASKED)


class NamedCadre(Message):
    cadre_id: Ident
    name: Annotated[str, StringConstraints(max_length=200)]
    unit: Annotated[str, StringConstraints(max_length=200)] = ""
    site_id: Annotated[str, StringConstraints(max_length=64)] = ""


class NamesAnswer(Message):
    server_time: datetime
    names: list[NamedCadre] = Field(max_length=MAX_NAMES_ASKED)

    _check_time = field_validator("server_time")(_aware)


# --- photos ----------------------------------------------------------------------------------
# The photos of camera records, on their own channel (POST /api/v1/photos): sent only for events
# the centre has acknowledged, in small batches, so an event never waits behind a photo. The
# centre keeps a photo only when it matches the sha256 an event of the sending kiosk holds:
# idempotent by hash, and a photo can neither come ahead of its record nor be swapped.

PHOTOS_PATH = "/photos"
MAX_PHOTOS_PER_REQUEST = 16
MAX_PHOTO_BYTES = 256 * 1024


class PhotoUpload(Message):
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    event_id: uuid.UUID
    # The JPEG's bytes in standard base64.
    jpeg_b64: Annotated[str, StringConstraints(max_length=(MAX_PHOTO_BYTES + 2) // 3 * 4)]

    @classmethod
    def of(cls, sha256: str, event_id: uuid.UUID, jpeg: bytes) -> PhotoUpload:
        return cls(sha256=sha256, event_id=event_id, jpeg_b64=base64.b64encode(jpeg).decode())

    def jpeg(self) -> bytes:
        """The bytes; ValueError when the text is not base64."""
        try:
            return base64.b64decode(self.jpeg_b64, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"jpeg_b64 is not base64: {exc}") from None


class PhotoBatch(Message):
    kiosk_id: Ident
    photos: list[PhotoUpload] = Field(min_length=1, max_length=MAX_PHOTOS_PER_REQUEST)


PhotoStatus = Literal["stored", "duplicate", "no_event", "mismatch", "refused"]


class PhotoResult(Message):
    sha256: str
    status: PhotoStatus
    reason: str = ""


class PhotoAnswer(Message):
    server_time: datetime
    results: list[PhotoResult]

    _check_time = field_validator("server_time")(_aware)


# --- enrolment -------------------------------------------------------------------------------


class EnrolRequest(Message):
    code: EnrolCode
    hostname: ShortText = ""
    app_version: Annotated[str, StringConstraints(max_length=64)] = ""


class ChainBase(Message):
    """Where the centre's copy of a kiosk's hash chain ends, told at enrolment. A kiosk that
    enrols again after its log was wiped begins its new log after `seq` (prev_hash `hash`), so
    its chain goes on instead of starting a second one from 1 that the centre would take for a
    fork. `generation`: how many times this kiosk id has been enrolled, this one included."""

    generation: int = Field(ge=1, le=INT32_MAX)
    seq: int = Field(ge=0, le=INT64_MAX)
    hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class CentreAnswer(Message):
    """Who the centre is: its signing key and the rotations that led to it (oldest first)."""

    public_key: Annotated[str, StringConstraints(min_length=40, max_length=100)]
    fingerprint: Annotated[str, StringConstraints(min_length=32, max_length=32)]
    rotations: list[Rotation] = Field(default_factory=list, max_length=64)
    server_time: datetime

    _check_time = field_validator("server_time")(_aware)


class EnrolAnswer(Message):
    kiosk_id: Ident
    token: Annotated[str, StringConstraints(min_length=32, max_length=128)]
    site_id: str
    site_name: str
    server_time: datetime
    roster: RosterDelta
    public_keys: KeysAnswer
    settings: SettingsAnswer
    chain: ChainBase | None = None  # None: a first enrolment (or an older centre)

    _check_time = field_validator("server_time")(_aware)

    @model_serializer(mode="wrap")
    def _without_absent_chain(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A kiosk older than chain bases refuses the field; a first enrolment never sends it.
        data = handler(self)
        if isinstance(data, dict) and data.get("chain") is None:
            data.pop("chain", None)
        return data


def enrolment_qr_text(code: str, centre_fingerprint: str, central_url: str) -> str:
    return f"{ENROL_QR_PREFIX}{code}|{centre_fingerprint}|{central_url}"


def parse_enrolment_qr(text: str) -> tuple[str, str, str | None]:
    """(centre URL, code, centre key fingerprint) from what an enrolment QR holds; the
    fingerprint is None for an old CKE1 code. ValueError with a reason otherwise."""
    text = text.strip()
    if text.startswith(OLD_ENROL_QR_PREFIX):
        parts = text[len(OLD_ENROL_QR_PREFIX) :].split("|")
        if len(parts) != 2:
            raise ValueError("enrolment code damaged: expected code and URL")
        code, url, fp = parts[0], parts[1], None
    elif text.startswith(ENROL_QR_PREFIX):
        parts = text[len(ENROL_QR_PREFIX) :].split("|")
        if len(parts) != 3:
            raise ValueError("enrolment code damaged: expected code, centre key and URL")
        code, fp, url = parts[0], parse_fingerprint(parts[1]), parts[2]
    else:
        raise ValueError("not a kiosk enrolment code")
    code, url = code.strip().upper(), url.strip()
    check_central_url(url)
    EnrolRequest(code=code)  # raises ValidationError (a ValueError) when the code is malformed
    return url, code, fp


def check_central_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"centre URL {url!r} must start with http:// or https://")
    return url
