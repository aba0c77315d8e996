"""Time claims: a record's time checked against what the centre knows for itself.

A record's time is the kiosk's word: its wall clock marked trusted (synchronised), or a time
placed by an anchor from clock samples the kiosk itself reports. A kiosk token is enough to push
any of these, so the centre checks them against what it measured or knows on its own:

- **the boot's clock, measured by the centre.** Every request carries the boot's monotonic
  reading as it left (X-Kiosk-Clock, sync/protocol.py) and the centre notes its own clock as it
  arrives. That ties the boot's monotonic clock to true time, to within the request's transit,
  without the kiosk's word for any offset: a record of the boot at monotonic time m was made at
  (arrival - (monotonic at sending - m)). A claimed time further from that than
  `time_claim_tolerance_s` (plus 100 ppm of the monotonic distance, for drift) contradicts it;
- **the boot's start.** A boot cannot have made a record before its first contact minus the
  monotonic time it had run by then;
- **the kiosk's order.** A kiosk writes its records in seq order, so none was made before the
  kiosk was enrolled or before an earlier record whose time the centre measured; nor after it
  reached the centre.

A record that fails becomes an anomaly "time_claim". It counts at the centre's own placement when
the boot's offset is known (measured by the centre, or else an anchor) and that placement is
possible; otherwise it is kept in quarantine and not counted. Each bound is loosened by the
tolerance. Times typed by the lead (flag `time_entered_by_operator`) are the lead's word, not a
clock reading: manual entries are counted apart and not checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update

from central.db.bulk import dialect_insert
from central.db.schema import boots, events
from central.ingest.proofs import TIME_CLAIM, Verdict
from central.stays.pairing import StayRules
from central.timefix import Anchor, to_utc_naive
from sync.protocol import ClockReading

# kiosk/rules/outcome.py FLAG_OPERATOR_TIME (the centre does not import the kiosk).
OPERATOR_TIME_FLAG = "time_entered_by_operator"
TIME_CLAIM_ANOMALY = "time_claim"
DRIFT = 1e-4  # monotonic clocks drift by tens of ppm at most; 100 ppm leaves room
DEFAULT_TIME_TOLERANCE = timedelta(seconds=120)  # the setting time_claim_tolerance_s
KNOWN_TIME = ("trusted", "corrected")


@dataclass(frozen=True)
class Contact:
    """At the centre's time `at`, the boot's monotonic clock read `mono_ns` (as a request left)."""

    at: datetime  # naive UTC, the centre's clock
    mono_ns: int
    device_time: datetime | None = None  # naive UTC, the kiosk's wall clock as it left

    def place(self, monotonic_ns: int) -> datetime:
        return self.at - timedelta(microseconds=(self.mono_ns - monotonic_ns) // 1000)


@dataclass(frozen=True)
class BootClock:
    anchor: Anchor | None = None
    first_contact: Contact | None = None
    contact: Contact | None = None  # the latest


_BOOTS = select(boots).where(
    boots.c.kiosk_id == bindparam("kiosk_id"),
    boots.c.boot_id.in_(bindparam("boot_ids", expanding=True)),
)


def boot_clocks(conn: Connection, kiosk_id: str, boot_ids: set[str]) -> dict[str, BootClock]:
    """What the centre knows of each boot's clocks (boots already seen)."""
    if not boot_ids:
        return {}
    return {
        row.boot_id: clock_of(row)
        for row in conn.execute(_BOOTS, {"kiosk_id": kiosk_id, "boot_ids": sorted(boot_ids)})
    }


# What clock_of reads of a boots row (ingest reads them joined to the kiosk's row).
CLOCK_COLUMNS = (
    boots.c.boot_id,
    boots.c.anchor_mono_ns,
    boots.c.anchor_time,
    boots.c.anchor_offset_s,
    boots.c.anchor_rtt_s,
    boots.c.anchor_source,
    boots.c.first_contact_at,
    boots.c.first_contact_mono_ns,
    boots.c.contact_at,
    boots.c.contact_mono_ns,
    boots.c.contact_device_time,
)


def clock_of(row: Any) -> BootClock:
    """A boot's clocks from a row with the CLOCK_COLUMNS."""
    anchor = (
        Anchor(
            row.anchor_mono_ns,
            row.anchor_time,
            row.anchor_offset_s,
            row.anchor_rtt_s,
            row.anchor_source or "",
        )
        if row.anchor_mono_ns is not None
        else None
    )
    first = (
        Contact(row.first_contact_at, row.first_contact_mono_ns)
        if row.first_contact_at is not None and row.first_contact_mono_ns is not None
        else None
    )
    latest = (
        Contact(row.contact_at, row.contact_mono_ns, row.contact_device_time)
        if row.contact_at is not None and row.contact_mono_ns is not None
        else None
    )
    return BootClock(anchor, first, latest)


# Built once (every push with a clock reading runs it); the columns set are the parameters'.
_UPDATE_BOOT = update(boots).where(
    boots.c.kiosk_id == bindparam("b_kiosk_id"), boots.c.boot_id == bindparam("b_boot_id")
)


def note_contact(
    conn: Connection,
    kiosk_id: str,
    clocks: dict[str, BootClock],
    reading: ClockReading,
    received_at: datetime,
) -> None:
    """Store what a request tells of its boot's clock; `clocks` is brought up to date."""
    contact = Contact(received_at, reading.monotonic_ns, to_utc_naive(reading.device_time))
    known = clocks.get(reading.boot_id)
    if known is None:
        conn.execute(
            dialect_insert(conn, boots).on_conflict_do_nothing(),
            {"kiosk_id": kiosk_id, "boot_id": reading.boot_id, "first_seen_at": received_at},
        )
        known = BootClock()
    values: dict[str, Any] = {}
    if known.first_contact is None:
        values.update(first_contact_at=contact.at, first_contact_mono_ns=contact.mono_ns)
        known = replace(known, first_contact=contact)
    if known.contact is None or contact.mono_ns >= known.contact.mono_ns:
        values.update(
            contact_at=contact.at,
            contact_mono_ns=contact.mono_ns,
            contact_device_time=contact.device_time,
        )
        known = replace(known, contact=contact)
    if values:
        conn.execute(_UPDATE_BOOT, {"b_kiosk_id": kiosk_id, "b_boot_id": reading.boot_id, **values})
    clocks[reading.boot_id] = known


def raises_floor(row: dict[str, Any], clock: BootClock | None) -> bool:
    """Whether a counted row's time bounds the kiosk's later records: a clock reading of a boot
    the centre measured itself (a record's claim alone bounds nothing: a lie would then hold
    back the truthful records after it)."""
    return clock is not None and clock.contact is not None and is_clock_reading(row)


def is_clock_reading(row: dict[str, Any]) -> bool:
    """Whether a row's time is a claim of a clock (not unknown, not typed by the lead)."""
    return row["time_status"] in KNOWN_TIME and f'"{OPERATOR_TIME_FLAG}"' not in row["flags"]


# Built once: a push runs it every time, and building a statement with its cache key cost more
# of the centre's CPU than running it (bench/dawn.py).
LATEST_MEASURED = (
    select(events.c.corrected_time)
    .select_from(
        events.join(
            boots,
            and_(boots.c.kiosk_id == events.c.kiosk_id, boots.c.boot_id == events.c.boot_id),
        )
    )
    .where(
        events.c.kiosk_id == bindparam("kiosk_id"),
        events.c.seq < bindparam("before_seq"),
        events.c.time_status.in_(KNOWN_TIME),
        events.c.quarantine.is_(None),
        events.c.flags.not_like(f'%"{OPERATOR_TIME_FLAG}"%'),
        boots.c.contact_at.is_not(None),
    )
    .order_by(events.c.seq.desc())
    .limit(1)
)


def kiosk_floor(
    conn: Connection, kiosk_id: str, enrolled_at: datetime | None, before_seq: int
) -> datetime | None:
    """The earliest time the kiosk's record `before_seq` can have been made: not before the
    kiosk was enrolled, nor before its latest earlier record whose time the centre measured
    (a counted clock reading of a boot the centre has measured: `raises_floor`)."""
    earlier = conn.execute(
        LATEST_MEASURED, {"kiosk_id": kiosk_id, "before_seq": before_seq}
    ).scalar_one_or_none()
    return floor_of(enrolled_at, earlier)


def floor_of(enrolled_at: datetime | None, latest_measured: datetime | None) -> datetime | None:
    """kiosk_floor from its two bounds (ingest reads the second in its opening statement)."""
    bounds = [t for t in (enrolled_at, latest_measured) if t is not None]
    return max(bounds) if bounds else None


def _utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def judge_time(
    row: dict[str, Any],
    clock: BootClock | None,
    tolerance: timedelta,
    rules: StayRules,
    floor: datetime | None = None,
    received_at: datetime | None = None,
) -> Verdict | None:
    """Check one events row's time claim; on a contradiction, place the row where the centre
    can (changing corrected_time, time_status, service_day) or quarantine it.

    `floor`: no earlier record of the kiosk is later than this; `received_at`: when the record
    reached the centre. Returns the anomaly to raise (its `quarantine` is "" when the record
    still counts), None when the claim holds."""
    if not is_clock_reading(row):
        return None
    clock = clock or BootClock()
    claimed: datetime = row["corrected_time"]
    mono: int = row["monotonic_ns"]
    reference: datetime | None = None
    slack = tolerance
    measured_by = ""
    if clock.contact is not None:
        reference, measured_by = clock.contact.place(mono), "the centre's measurement"
        slack = tolerance + timedelta(seconds=DRIFT * abs(clock.contact.mono_ns - mono) / 1e9)
    elif clock.anchor is not None and row["time_status"] == "trusted":
        reference, measured_by = clock.anchor.place(mono), "the boot's measured offset"
        slack = tolerance + timedelta(seconds=DRIFT * abs(clock.anchor.mono_ns - mono) / 1e9)
    earliest = [
        (bound, why)
        for bound, why in (
            (clock.first_contact.place(0) if clock.first_contact else None, "its boot started"),
            (floor, "the kiosk's earlier records"),
        )
        if bound is not None
    ]
    lowest = max((bound for bound, _ in earliest), default=None)
    claim = f"record dated {_utc(claimed)} by boot {row['boot_id']}"
    if reference is not None and abs(claimed - reference) > slack:
        apart = (claimed - reference).total_seconds()
        problem = f"{claim}, {apart:+.0f} s from {measured_by} ({_utc(reference)})"
    elif lowest is not None and claimed < lowest - tolerance:
        why = next(why for bound, why in earliest if bound == lowest)
        problem = f"{claim}, before {why} ({_utc(lowest)})"
    elif received_at is not None and claimed > received_at + tolerance:
        problem = f"{claim}, after it reached the centre ({_utc(received_at)})"
    else:
        return None
    possible = reference is not None and (lowest is None or reference >= lowest - tolerance)
    if reference is not None and possible:
        row["corrected_time"] = reference
        row["time_status"] = "corrected"
        row["service_day"] = rules.day.service_day(reference)
        return Verdict("", TIME_CLAIM_ANOMALY, f"{problem}: counted at {_utc(reference)}")
    return Verdict(TIME_CLAIM, TIME_CLAIM_ANOMALY, f"{problem}: offset unknown, not counted")
