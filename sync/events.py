"""The event record: made on a kiosk, append-only, never edited; the unit that sync carries.

One schema for both sides, so the kiosk writes exactly what the centre validates. Each event
carries the hash of the kiosk's previous event, so the centre can prove nothing confirmed was
removed or reordered.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

GENESIS_HASH = "0" * 64
# What the stores can hold: 64-bit integers, and times that still have a UTC value days away
# from either end of the calendar (0001-01-01T00:00+14:00 has none; the centre moves times by
# clock offsets of up to years and by service days).
INT64_MAX = 2**63 - 1
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9000, 1, 1, tzinfo=UTC)


def refuse_nul(value: str | None) -> str | None:
    """`value` unless it holds a NUL character, which PostgreSQL text cannot store (ValueError)."""
    if value is not None and "\x00" in value:
        raise ValueError("may not hold a NUL character")
    return value


def check_time_range(value: datetime) -> datetime:
    """`value` (aware) when the stores can hold it; ValueError otherwise."""
    if not EARLIEST_TIME <= value <= LATEST_TIME:
        raise ValueError("time out of range (years 1900 to 9000)")
    return value


Kind = Literal["arrival", "departure", "void"]
Source = Literal["camera", "wedge", "manual"]
ShortText = Annotated[str, StringConstraints(max_length=200)]
# A badge token as read (sync/badge_token.py): 130 characters for a 20-character cadre id, 170
# for the longest id. Judged by the centre (central/ingest/proofs.py), not by the schema, so a
# record with a bad proof is kept and shown rather than refused.
BadgeToken = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# Fields added after the first release: left out of the wire form (and so of the hash) while
# they hold None, so the events of logs written before them keep their hashes.
LATER_FIELDS = ("badge_token", "photo_sha256")
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Ident = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
]


class Event(BaseModel):
    """One record of the local log. `hash` covers every other field, `prev_hash` included.

    kind "void" cancels the event named in `corrects`; an arrival or departure with `corrects`
    set replaces that event (a correction). Both need an operator and a reason.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID
    kiosk_id: Ident
    site_id: Annotated[str, StringConstraints(max_length=64)]
    seq: int = Field(ge=1, le=INT64_MAX)
    cadre_id: Ident
    badge_serial: int | None = Field(default=None, ge=0, le=0xFFFF)
    kind: Kind
    source: Source
    device_time: datetime
    boot_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    monotonic_ns: int = Field(ge=0, le=INT64_MAX)
    clock_trusted: bool
    operator: ShortText | None = None
    reason: ShortText | None = None
    corrects: uuid.UUID | None = None
    flags: list[Annotated[str, StringConstraints(max_length=40)]] = Field(
        default_factory=list, max_length=8
    )
    prev_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    # The proof of a camera or wedge record: the badge token it was read from, whole. The
    # centre counts such a record only when this verifies for the record's cadre and serial.
    badge_token: BadgeToken | None = None
    # The sha256 of the photo kept with a camera record (the JPEG's bytes, stored beside the
    # log and sent on its own channel): inside the hash, so a photo swapped afterwards no longer
    # matches its record. None: no photo (capture off, not a camera record, or flagged no_photo).
    photo_sha256: Sha256Hex | None = None

    @field_validator("device_time")
    @classmethod
    def _has_offset(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("device_time needs a UTC offset")
        return check_time_range(value)

    @field_validator("site_id", "boot_id", "operator", "reason", "badge_token")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return refuse_nul(value)

    @field_validator("flags")
    @classmethod
    def _no_nul_in_flags(cls, value: list[str]) -> list[str]:
        for flag in value:
            refuse_nul(flag)
        return value

    def model_post_init(self, _context: Any) -> None:
        needs_operator = self.source == "manual" or self.kind == "void" or self.corrects is not None
        if needs_operator and not (self.operator and self.reason):
            raise ValueError("manual entries, voids and corrections need operator and reason")
        if self.kind == "void" and self.corrects is None:
            raise ValueError("a void names the event it cancels in `corrects`")

    def wire(self) -> dict[str, Any]:
        """The JSON form: what the hash covers and what travels (later fields only when set)."""
        fields = self.model_dump(mode="json")
        for name in LATER_FIELDS:
            if fields[name] is None:
                del fields[name]
        return fields

    def wire_json(self) -> bytes:
        """`wire()` as JSON bytes, written by pydantic (the push body, the kiosk's journal)."""
        unset = {name for name in LATER_FIELDS if getattr(self, name) is None}
        return self.model_dump_json(exclude=unset or None).encode()

    def hash_is_valid(self) -> bool:
        return self.hash == compute_hash(self.wire())


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(wire_fields: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of every field but `hash` itself (later fields only when
    set, as `Event.wire` has them)."""
    body = {
        k: v
        for k, v in wire_fields.items()
        if k != "hash" and not (v is None and k in LATER_FIELDS)
    }
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def seal(fields: dict[str, Any]) -> Event:
    """Build an Event from its fields (without `hash`), computing the hash.

    Fields go through the model once first so the hash is computed over exactly the JSON form the
    centre will see (UUIDs and datetimes as strings).
    """
    draft = dict(fields, hash=GENESIS_HASH)
    wire = Event.model_validate(draft).wire()
    wire["hash"] = compute_hash(wire)
    return Event.model_validate(wire)


def is_chained(previous: Event | None, event: Event) -> bool:
    """True when `event` follows `previous` directly in one kiosk's log."""
    if previous is None:
        return event.seq == 1 and event.prev_hash == GENESIS_HASH
    return (
        event.kiosk_id == previous.kiosk_id
        and event.seq == previous.seq + 1
        and event.prev_hash == previous.hash
    )


def parse_device_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("device_time needs a UTC offset")
    return value
