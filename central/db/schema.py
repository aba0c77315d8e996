"""Every table of the central store, on one MetaData, and nothing else.

A table is the most-imported thing in a database application, so it lives here, in a module that
imports nothing of the application: any module may import a table without pulling in the code
that writes it. `central.db.engine.create_schema` makes them all.

Every time in these tables is a naive datetime in UTC (SQLite has no time zone type, and one
convention on both stores keeps comparisons honest), except the roster's and the staff accounts'
`DateTime(timezone=True)` columns. `central.timefix.to_utc_naive` converts; pages turn times into
local time with the `timezone` setting.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
)

metadata = MetaData()

# The prev_hash of a kiosk's first event (sync.events.GENESIS_HASH; a test holds them equal).
CHAIN_START = "0" * 64

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
    Column("chain_hash", String(64), nullable=False, default=CHAIN_START),
    Column("max_seq", BigInteger, nullable=False, default=0),
    Column("last_push_at", DateTime),
    # The public half of the kiosk's peer key (sync/peers.py) as its last pull sent it, and
    # where its pages listen on the site's LAN if it said; cleared at enrolment and revocation.
    Column("peer_key", String(100)),
    Column("peer_address", String(100)),
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
    # The badge token the record says it was read from (camera and wedge records), as sent.
    Column("badge_token", Text),
    # NULL: the record counts. Otherwise why it is kept but not counted (central/ingest/
    # proofs.py: no or bad badge proof, a revoked badge, another kiosk's record corrected, a
    # time claim that cannot hold); an anomaly says more.
    Column("quarantine", String(40)),
    # The sha256 of the photo the kiosk kept with a camera record (inside the record's hash);
    # the photo itself comes on its own channel (photos table, central/photos.py).
    Column("photo_sha256", String(64)),
    Index("ix_events_kiosk_seq", "kiosk_id", "seq"),
    Index("ix_events_kiosk_boot", "kiosk_id", "boot_id"),
    Index("ix_events_cadre_day", "cadre_id", "service_day"),
    Index("ix_events_site_time", "site_id", "corrected_time"),
    Index("ix_events_cadre_corrects", "cadre_id", "corrects"),
)

# The photos of camera records, kept on disk by hash (central/photos.py); a row for each record
# whose photo the centre holds (two records may name one file: a frozen camera's identical
# frames), so retention and the pages need no walk of the folder.
photos = Table(
    "photos",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("sha256", String(64), nullable=False, index=True),
    Column("kiosk_id", String(64), nullable=False),
    Column("service_day", Date, nullable=False, index=True),  # the event's
    Column("size", Integer, nullable=False),
    Column("received_at", DateTime, nullable=False),
)

# Reviewers' verdicts on check-in photos (central/photo_review.py): append-only like the
# corrections, the newest of a record wins, the rest is its history. A verdict changes no stay:
# it says whether the person in the photo held their own badge.
photo_reviews = Table(
    "photo_reviews",
    metadata,
    Column("review_id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, index=True),
    Column("cadre_id", String(64), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("service_day", Date, nullable=False),
    Column("verdict", String(20), nullable=False),  # ok | proxy_suspected
    Column("note", Text, nullable=False, default=""),
    Column("staff_user", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_photo_reviews_site_day", "site_id", "service_day"),
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
    # What the centre measured itself (central/ingest/timeclaims.py): the boot's monotonic clock
    # as its requests left (X-Kiosk-Clock) against the centre's clock as they arrived, at the
    # boot's first request and at its latest.
    Column("first_contact_at", DateTime),
    Column("first_contact_mono_ns", BigInteger),
    Column("contact_at", DateTime),
    Column("contact_mono_ns", BigInteger),
    Column("contact_device_time", DateTime),
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
    Column("boot_id", String(64)),
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
    # Whether the arrival / departure counts on a person's word, not a badge (central/stays/
    # pairing.py `by_hand`); NULL: no such record.
    Column("arrival_by_hand", Boolean),
    Column("departure_by_hand", Boolean),
    Column("flags", Text, nullable=False, default="[]"),  # JSON list, see central/stays/pairing.py
    Index("ix_stays_site_day", "site_id", "service_day"),
    Index("ix_stays_cadre_day", "cadre_id", "service_day"),
    Index("ix_stays_day", "service_day"),
)

# (cadre, service day) pairs whose stays must be recomputed (central.stays.store.refresh). `mark`
# changes each time a pair is marked, so a refresh only clears what it has seen.
stays_dirty = Table(
    "stays_dirty",
    metadata,
    Column("cadre_id", String(64), primary_key=True),
    Column("service_day", Date, primary_key=True),
    Column("mark", BigInteger, nullable=False),
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

# --- the roster ------------------------------------------------------------------------------

NAME_MAX = 64
UNIT_MAX = 128
SITE_ID_MAX = 64  # the event record's site_id bound (sync/events.py)
SITE_NAME_MAX = 128

roster_counter = Table(
    "roster_counter",
    metadata,
    # One row (id 1). Bumping it inside a change's transaction also serialises roster writers, so
    # versions become visible in order and a kiosk's "since N" never skips a slower transaction.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

sites = Table(
    "sites",
    metadata,
    Column("site_id", String(SITE_ID_MAX), primary_key=True),
    Column("name", String(SITE_NAME_MAX), nullable=False),
    Column("change_version", BigInteger, nullable=False, index=True),
)

cadres = Table(
    "cadres",
    metadata,
    Column("cadre_id", String(32), primary_key=True),
    Column("name", String(NAME_MAX), nullable=False),
    Column("unit", String(UNIT_MAX), nullable=False, default=""),
    Column("site_id", String(SITE_ID_MAX), ForeignKey("sites.site_id"), nullable=True, index=True),
    # The serial of the badge printed last; NULL until a badge is first printed.
    Column("badge_serial", Integer, nullable=True),
    Column("badge_issued", Date, nullable=True),
    # Every badge with a serial <= this is refused; NULL: nothing revoked. When each revocation
    # happened is in badge_revocations.
    Column("revoked_through", Integer, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("change_version", BigInteger, nullable=False, index=True),
)


# Every revocation with its time, so the centre can tell a badge read before it was revoked
# (counted) from one read after (not counted). Naive UTC, like the events' times.
badge_revocations = Table(
    "badge_revocations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cadre_id", String(32), nullable=False, index=True),
    Column("through_serial", Integer, nullable=False),
    Column("revoked_at", DateTime, nullable=False),
)


# Badge tokens known to be genuine, by sha256 of the token: each signed by the centre when it
# printed the badge, or verified (Ed25519) the first time a kiosk sent it. A badge's signature
# is checked once, not at every scan (central/ingest/proofs.py).
badge_proofs = Table(
    "badge_proofs",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("cadre_id", String(32), nullable=False),
    Column("serial", Integer, nullable=False),
    Column("key_id", Integer, nullable=False),
    Column("issued", Date, nullable=False),
)


# The counter's one row is made with the table.
@event.listens_for(roster_counter, "after_create")
def _seed_counter(target: Table, connection: Connection, **_kw: Any) -> None:
    connection.execute(target.insert().values(id=1, version=0))


# --- staff -----------------------------------------------------------------------------------

# Staff accounts (central/users.py): passwords as scrypt hashes only.
staff_users = Table(
    "staff_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Staff corrections (central/corrections.py): append-only, each with a reason and who made it.
corrections = Table(
    "corrections",
    metadata,
    Column("correction_id", Integer, primary_key=True, autoincrement=True),
    Column("action", String(16), nullable=False),
    Column("target_event_id", String(36)),  # void / replace: the record it changes
    Column("new_event_id", String(36), unique=True),  # add: the id of the record it makes
    Column("cadre_id", String(64), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("kind", String(16)),  # replace / add: arrival | departure
    Column("event_time", DateTime),  # replace / add: naive UTC, like every time in the store
    Column("service_day", Date, nullable=False),  # the one day whose stays it changes
    Column("reason", Text, nullable=False),
    Column("staff_user", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_corrections_cadre_day", "cadre_id", "service_day"),
    Index("ix_corrections_target", "target_event_id"),
    Index("ix_corrections_day", "service_day"),
)

# One-time form tokens of the staff pages (central/web/once.py): a form sent twice (a double
# click, a reload of the answer, a resend after a timeout) is done once; the second send is led
# to where the first one ended. Rows older than a few days are pruned.
form_submissions = Table(
    "form_submissions",
    metadata,
    Column("token", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("endpoint", String(80), nullable=False),
    Column("claimed_at", DateTime, nullable=False, index=True),
    Column("done", Boolean, nullable=False, default=False),
    Column("result_url", String(2000)),  # where the first send's answer led
)

# Staff sessions (central/web/sessions.py): the cookie holds a random token, this table its sha256
# only, so a copy of the database opens no session. Every `central serve` process reads the same
# rows: a session made on one works on all, and ending it (logout, password change) ends it on all.
staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("staff_users.id"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),  # the CSRF token of this session's forms
    Column("created_at", DateTime, nullable=False),
    Column("seen_at", DateTime, nullable=False),  # written at most once a minute
    Column("expires_at", DateTime, nullable=False, index=True),
)

# Login attempts counted per key (central/web/security.py): the sha256 of a client address, or of
# an address and a user name. One row per key and window, claimed atomically before a password
# is checked, so parallel requests cannot all slip under the limit.
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("window_start", DateTime, nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
)

# --- background duties (central/duties/) ---------------------------------------------------

# Who runs each periodic duty (stays refresh, housekeeping, ...). `generation` rises whenever the
# holder changes; the holder's work transactions check it (a fence), so a process that lost its
# lease while paused cannot write as if it still held it. Times come from the database's clock.
duty_leases = Table(
    "duty_leases",
    metadata,
    Column("duty", String(64), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("acquired_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

# Each piece of work a duty did, written in the work's own transaction (so one rolled back leaves
# no row): who did it and when, to show that no two ran at once. Kept for `duty_runs_keep_days`.
duty_runs = Table(
    "duty_runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("duty", String(64), nullable=False),
    Column("holder", String(200), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("ended_at", DateTime, nullable=False),
    Column("items", Integer, nullable=False),
    Index("ix_duty_runs_duty_started", "duty", "started_at"),
)

# Reviews of anomalies (central/anomalies.py): staff looked at one that no correction of records
# resolves (a hash chain gap, a refused record) and said why it may rest. Keyed by what the
# anomaly is about rather than its row id: the stays' anomalies are written anew on each pairing.
anomaly_reviews = Table(
    "anomaly_reviews",
    metadata,
    Column("review_id", Integer, primary_key=True, autoincrement=True),
    Column("anomaly_key", String(400), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("cadre_id", String(64)),
    Column("service_day", Date),
    Column("reason", Text, nullable=False),
    Column("staff_user", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
)


# --- background jobs -------------------------------------------------------------------------

# Long work started from a page or the CLI (badge sheets, large exports): central/jobs/. Any
# process may claim a queued job (an atomic UPDATE ... RETURNING); the claim holds a lease that
# progress renews, so a job whose worker died is taken up again (or failed) once it lapses.
jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(32), primary_key=True),  # random hex: it appears in URLs
    Column("kind", String(32), nullable=False),  # badges | export
    Column("params", Text, nullable=False),  # JSON, what the handler needs
    # queued | running | done | failed | cancelled
    Column("state", String(16), nullable=False),
    Column("progress_done", BigInteger, nullable=False, default=0),
    Column("progress_total", BigInteger),  # NULL until the handler knows it
    Column("stage", String(32), nullable=False, default=""),  # a code the pages translate
    Column("started_by", String(64), nullable=False),  # a staff user name, or "cli"
    # The starter's one-time form key: the same form sent twice makes one job.
    Column("request_key", String(64)),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("worker", String(128)),  # the claim: host, process and a random part
    Column("lease_until", DateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("result_file", String(255)),  # relative to the jobs folder
    Column("result_name", String(255)),  # the download's file name
    Column("result_bytes", BigInteger),
    Column("result_expired_at", DateTime),  # retention removed the file
    Column("summary", Text, nullable=False, default="{}"),  # JSON: counts and warnings
    Column("error", Text),  # a code, or code: detail (the pages translate the code)
    Index("ix_jobs_state_created", "state", "created_at"),
    Index("ix_jobs_started_by", "started_by", "created_at"),
    Index("ux_jobs_request", "started_by", "request_key", unique=True),
)


# --- alerts ----------------------------------------------------------------------------------

# A silent kiosk or a site with many absent (central/alerts.py). `key` is unique: whichever
# process inserts it raises the alert, so checks running in many processes raise it once.
alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),  # kiosk_silent | site_absent
    Column("subject", String(64), nullable=False),  # the kiosk or the site
    Column("site_id", String(64)),
    Column("detail", Text, nullable=False, default="{}"),  # JSON: what the message says
    Column("raised_at", DateTime, nullable=False),
    Column("resolved_at", DateTime),
    Column("sent_at", DateTime),  # delivered to the webhook
    Column("sends", Integer, nullable=False, default=0),  # attempts
    Column("sending_until", DateTime),  # a sender's short claim
    Column("sender", String(32)),
    Column("send_error", Text),
    Index("ix_alerts_open", "resolved_at", "raised_at"),
    Index("ix_alerts_kind_subject", "kind", "subject"),
)


# --- the read API for integrations -----------------------------------------------------------

# Tokens of the read API (central/readapi/): one per integration, made by an admin, with the
# scopes it may read. Only the sha256 of a token is kept: the token is shown once when made.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(200), nullable=False),  # space-separated, see central/readapi/tokens
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("revoked_at", DateTime),
    Column("revoked_by", String(64)),
    Column("last_used_at", DateTime),  # written at most once a minute
)


# --- kiosk releases (central/releases.py) ----------------------------------------------------

# A wheel of the kiosk package, signed with the centre key (sync/releases.py) and offered to
# kiosks: those of `sites` (space-separated ids) when any are named, else the `percent` of
# kiosks whose id falls in the first `percent` buckets of 100 (the same kiosks first each time:
# a rollout widens over the kiosks it already reached). `state`: offered, or halted (by staff, or
# by the rollout duty after rollbacks). The wheel itself sits in the instance folder, named by
# its sha256.
releases = Table(
    "releases",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("wheel_name", String(200), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("signed", Text, nullable=False),  # sync.releases.SignedRelease, JSON
    Column("sites", Text, nullable=False, default=""),
    Column("percent", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False, default="offered"),
    Column("state_detail", String(300), nullable=False, default=""),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(200), nullable=False, default=""),
    Column("changed_at", DateTime, nullable=False),
)
