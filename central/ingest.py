"""What kiosks send the centre, and how it is taken in.

Every time in these tables is a naive datetime in UTC (SQLite has no time zone type, and one
convention on both stores keeps comparisons honest). `central.timefix.to_utc_naive` converts.
Pages turn them into local time with the `timezone` setting.

Events are stored idempotently on `event_id`. Each kiosk's hash chain is checked as events arrive;
gaps, forks and reused ids become rows of `anomalies`. Events that fail a check are not thrown
away: they go to `rejected_events` with the reason, so the kiosk may move on and staff can look.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from central.db import metadata
from sync.events import GENESIS_HASH

# --- kiosks and enrolment --------------------------------------------------------------------

kiosks = Table(
    "kiosks",
    metadata,
    Column("kiosk_id", String(64), primary_key=True),
    Column("site_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False, default=""),
    # sha256 hex of the bearer token; NULL until the kiosk has enrolled.
    Column("token_hash", String(64), unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(200), nullable=False, default=""),
    Column("enrolled_at", DateTime),
    Column("revoked_at", DateTime),
    Column("revoked_by", String(200)),
    # The verified head of the kiosk's hash chain: events 1..chain_seq are all stored and linked.
    Column("chain_seq", BigInteger, nullable=False, default=0),
    Column("chain_hash", String(64), nullable=False, default=GENESIS_HASH),
    Column("max_seq", BigInteger, nullable=False, default=0),
    Column("last_push_at", DateTime),
)

enrolment_codes = Table(
    "enrolment_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),  # sha256 hex of the one-time code
    Column("kiosk_id", String(64), ForeignKey("kiosks.kiosk_id"), nullable=False, index=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("used_at", DateTime),
)

# --- events ----------------------------------------------------------------------------------

events = Table(
    "events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("kiosk_id", String(64), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("cadre_id", String(64), nullable=False),
    Column("badge_serial", Integer),
    Column("kind", String(16), nullable=False),  # arrival | departure | void (the kiosk's word)
    Column("source", String(16), nullable=False),  # camera | wedge | manual
    Column("device_time", DateTime, nullable=False),  # as the kiosk's clock said, in UTC
    Column("device_utc_offset_min", Integer, nullable=False),  # the offset it was written with
    Column("boot_id", String(64), nullable=False),
    Column("monotonic_ns", BigInteger, nullable=False),
    Column("clock_trusted", Boolean, nullable=False),
    Column("operator", String(200)),
    Column("reason", String(200)),
    Column("corrects", String(36)),
    Column("flags", Text, nullable=False, default="[]"),  # JSON list of the kiosk's flags
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # The centre's best estimate of when it happened; see central/timefix.py.
    Column("corrected_time", DateTime, nullable=False),
    Column("time_status", String(16), nullable=False),  # trusted | corrected | uncorrected
    Column("service_day", Date, nullable=False),  # of corrected_time, in the central time zone
    Column("received_at", DateTime, nullable=False),
    Index("ix_events_kiosk_seq", "kiosk_id", "seq"),
    Index("ix_events_kiosk_boot", "kiosk_id", "boot_id"),
    Index("ix_events_cadre_day", "cadre_id", "service_day"),
    Index("ix_events_site_time", "site_id", "corrected_time"),
    Index("ix_events_corrects", "corrects"),
)

rejected_events = Table(
    "rejected_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kiosk_id", String(64), nullable=False, index=True),  # of the token that sent it
    Column("received_at", DateTime, nullable=False),
    Column("event_id", String(64)),
    Column("seq", BigInteger),
    Column("reason", Text, nullable=False),
    Column("body", Text, nullable=False),  # the event as sent, cut at 8 kB
)

# --- clocks ----------------------------------------------------------------------------------

boots = Table(
    "boots",
    metadata,
    Column("kiosk_id", String(64), primary_key=True),
    Column("boot_id", String(64), primary_key=True),
    Column("first_seen_at", DateTime, nullable=False),
    # The anchor: true UTC time at monotonic_ns = anchor_mono_ns. NULL: no offset known yet.
    Column("anchor_mono_ns", BigInteger),
    Column("anchor_time", DateTime),
    Column("anchor_offset_s", Float),  # centre minus kiosk clock at the anchor
    Column("anchor_rtt_s", Float),
    Column("anchor_source", String(16)),
    Column("samples", Integer, nullable=False, default=0),
)

clock_samples = Table(
    "clock_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kiosk_id", String(64), nullable=False),
    Column("boot_id", String(64), nullable=False),
    Column("monotonic_ns", BigInteger, nullable=False),
    Column("device_time", DateTime, nullable=False),
    Column("offset_s", Float, nullable=False),
    Column("rtt_s", Float),
    Column("source", String(16), nullable=False),  # centre | phone | ntp
    Column("received_at", DateTime, nullable=False),
    Index("ux_clock_samples", "kiosk_id", "boot_id", "monotonic_ns", "source", unique=True),
)

# --- kiosk health ----------------------------------------------------------------------------

kiosk_status = Table(
    "kiosk_status",
    metadata,
    Column("kiosk_id", String(64), primary_key=True),
    Column("received_at", DateTime, nullable=False),
    Column("app_version", String(64), nullable=False, default=""),
    Column("queue_length", Integer, nullable=False, default=0),
    Column("last_scan_at", DateTime),
    Column("camera_ok", Boolean, nullable=False, default=False),
    Column("camera_detail", String(200), nullable=False, default=""),
    Column("clock_trusted", Boolean, nullable=False, default=False),
    Column("clock_offset_s", Float),
    Column("boot_id", String(64), nullable=False, default=""),
    Column("disk_free_bytes", BigInteger),
    Column("ready", Boolean, nullable=False, default=False),
    Column("ready_detail", String(200), nullable=False, default=""),
    Column("report", Text, nullable=False, default="{}"),  # the whole heartbeat, JSON
)

# --- what the centre makes of it -------------------------------------------------------------

anomalies = Table(
    "anomalies",
    metadata,
    Column("anomaly_id", Integer, primary_key=True, autoincrement=True),
    # chain_gap | chain_fork | event_conflict | rejected_event | uncorrected_time |
    # two_sites | no_arrival | no_departure | overlong_stay | kiosk_disagrees
    Column("kind", String(40), nullable=False),
    Column("kiosk_id", String(64)),
    Column("site_id", String(64)),
    Column("cadre_id", String(64)),
    Column("service_day", Date),
    Column("event_id", String(36)),
    Column("seq", BigInteger),
    Column("detail", Text, nullable=False, default=""),
    Column("detected_at", DateTime, nullable=False),
    Column("resolved_at", DateTime),
    Index("ix_anomalies_day_kind", "service_day", "kind"),
    Index("ix_anomalies_kiosk_kind", "kiosk_id", "kind"),
    Index("ix_anomalies_cadre_day", "cadre_id", "service_day"),
)

stays = Table(
    "stays",
    metadata,
    Column("stay_id", Integer, primary_key=True, autoincrement=True),
    Column("cadre_id", String(64), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("service_day", Date, nullable=False),
    Column("arrival_time", DateTime),  # NULL: a departure nobody saw arrive
    Column("departure_time", DateTime),  # NULL: still present, or never left (see state)
    Column("arrival_event_id", String(36)),
    Column("departure_event_id", String(36)),
    Column("arrival_kiosk_id", String(64)),
    Column("departure_kiosk_id", String(64)),
    Column("duration_s", Integer),
    Column("state", String(16), nullable=False),  # open | closed | no_departure | no_arrival
    Column("flags", Text, nullable=False, default="[]"),  # JSON list, see central/stays.py
    Index("ix_stays_site_day", "site_id", "service_day"),
    Index("ix_stays_cadre_day", "cadre_id", "service_day"),
    Index("ix_stays_day", "service_day"),
)

# Settings the centre hands to kiosks on pull. scope: "*" (every kiosk), "site:<id>" or
# "kiosk:<id>"; the narrower scope wins. `version` rises with every change.
pushed_settings = Table(
    "pushed_settings",
    metadata,
    Column("scope", String(80), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Column("version", BigInteger, nullable=False),
    Column("changed_at", DateTime, nullable=False),
    Column("changed_by", String(200), nullable=False, default=""),
)
