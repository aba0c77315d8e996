"""The centre's checks of what a pushed record claims: badge proofs, lanes, time (SQLite and PG).

Pushed straight into `ingest_events`, as the kiosk API does; tests/sync/test_trust.py tries the
same over HTTP as an attacker would.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, inspect, select, text

from central import roster
from central.badges import issue_badges
from central.db.engine import create_schema
from central.db.schema import anomalies, badge_proofs, events, stays, stays_dirty
from central.ingest import proofs as proofs_module
from central.ingest.clocks import apply_clock_samples
from central.ingest.proofs import BadgeProofs
from central.ingest.push import Checks, ingest_events
from sync.badge_token import key_id_of
from sync.protocol import ClockReading, ClockSample
from tests.badges import ISSUED, TEST_KEY, badge
from tests.sync.helpers import RULES, T0, MemoryLog, enrolled, load_roster


@pytest.fixture
def site(central_engine):
    load_roster(central_engine, {"S01": ["C1", "C2", "C3"]})
    return central_engine


def fresh_checks() -> Checks:
    """What a newly started centre process knows: the keys, nothing remembered in memory."""
    return Checks(BadgeProofs.of_keys({key_id_of(TEST_KEY.public_key()): TEST_KEY.public_key()}))


@pytest.fixture
def verifications(monkeypatch) -> list[str]:
    """Every Ed25519 verification ingest makes."""
    made: list[str] = []
    real = proofs_module.verify_token

    def counting(token, keys, revoked=None):
        made.append(token)
        return real(token, keys, revoked)

    monkeypatch.setattr(proofs_module, "verify_token", counting)
    return made


def push(engine, log: MemoryLog, batch, checks: Checks, at=None, contact=None):
    at = at or max(e.device_time for e in batch) + timedelta(minutes=1)
    return ingest_events(
        engine, log.identity, [e.wire() for e in batch], at, RULES, checks=checks, contact=contact
    )


def quarantine_of(engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(events.c.event_id, events.c.quarantine)).all())


def kinds(engine) -> list[str]:
    with engine.connect() as conn:
        return (
            conn.execute(select(anomalies.c.kind).order_by(anomalies.c.anomaly_id)).scalars().all()
        )


def test_a_badge_is_verified_once_then_known(site, verifications):
    """A badge the centre printed needs no signature check; one it never saw is verified once
    and remembered in the store, so a new process does not verify it again."""
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    [printed] = issue_badges(site, TEST_KEY, cadre_ids=["C1"], today=ISSUED)
    first = [
        log.record("C1", "arrival", T0, badge_token=printed.payload),
        log.record("C2", "arrival", T0 + timedelta(minutes=1)),
    ]
    push(site, log, first, fresh_checks())
    assert verifications == [badge("C2")]  # C1's badge was printed here
    push(site, log, [log.record("C2", "departure", T0 + timedelta(hours=8))], fresh_checks())
    assert verifications == [badge("C2")]
    with site.connect() as conn:
        known = conn.execute(select(badge_proofs.c.cadre_id)).scalars().all()
    assert sorted(known) == ["C1", "C2"]
    assert set(quarantine_of(site).values()) == {None}


def test_a_process_knows_the_printed_badges_after_its_first_push(site, verifications):
    """At dawn nearly every badge comes for its first time of the day: a process reads the
    known-genuine badges once, then asks the database only for badges it does not know (one
    another process verified since), and verifies none of them again."""
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    printed = {b.cadre_id: b.payload for b in issue_badges(site, TEST_KEY, today=ISSUED)}
    looked_up: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if "FROM badge_proofs" in statement and "IN (" in statement:
            looked_up.append(statement)

    event.listen(site, "before_cursor_execute", note)
    try:
        this_process = fresh_checks()
        push(site, log, [log.record("C1", "arrival", T0, badge_token=printed["C1"])], this_process)
        later = [
            log.record(c, "arrival", T0 + timedelta(minutes=1), badge_token=printed[c])
            for c in ("C2", "C3")
        ]
        push(site, log, later, this_process)
        assert looked_up == [] and verifications == []
        # Another process verifies C1's re-issued badge (never printed here) and keeps it.
        other_log = MemoryLog(enrolled(site, "S01")[0], "S01")
        reissued = badge("C1", serial=2)
        push(
            site,
            other_log,
            [
                other_log.record(
                    "C1", "departure", T0 + timedelta(hours=1), badge_serial=2, badge_token=reissued
                )
            ],
            fresh_checks(),
        )
        assert verifications == [reissued]
        push(
            site,
            log,
            [
                log.record(
                    "C1", "departure", T0 + timedelta(hours=2), badge_serial=2, badge_token=reissued
                )
            ],
            this_process,
        )
    finally:
        event.remove(site, "before_cursor_execute", note)
    assert len(looked_up) == 2  # the other process's and this one's, for the unknown badge only
    assert verifications == [reissued]
    assert set(quarantine_of(site).values()) == {None}


def test_a_push_of_known_badges_takes_one_connection(site):
    """At dawn every push's badges are known to the process: the push checks out the one
    connection of its write transaction, no second one to read proofs it does not need."""
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    printed = {b.cadre_id: b.payload for b in issue_badges(site, TEST_KEY, today=ISSUED)}
    this_process = fresh_checks()
    push(site, log, [log.record("C1", "arrival", T0, badge_token=printed["C1"])], this_process)
    checkouts: list[object] = []

    def note(dbapi_connection, record, proxy):
        checkouts.append(record)

    event.listen(site, "checkout", note)
    try:
        later = log.record("C2", "arrival", T0 + timedelta(minutes=1), badge_token=printed["C2"])
        push(site, log, [later], this_process)
    finally:
        event.remove(site, "checkout", note)
    assert len(checkouts) == 1
    assert quarantine_of(site)[str(later.event_id)] is None


def test_a_badge_of_a_key_taken_out_of_the_ring_no_longer_counts(site):
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    push(site, log, [log.record("C1", "arrival", T0)], fresh_checks())
    other = Ed25519PrivateKey.generate().public_key()
    without = Checks(BadgeProofs.of_keys({key_id_of(other): other}))
    late = log.record("C1", "departure", T0 + timedelta(hours=8))
    answer = push(site, log, [late], without)
    assert "unknown key" in answer.results[0].reason
    assert quarantine_of(site)[str(late.event_id)] == "bad_badge_proof"


def test_forged_and_foreign_tokens_are_kept_and_not_counted(site):
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    token = badge("C1")
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    stranger = badge("C2", key=Ed25519PrivateKey.generate())
    batch = [
        log.record("C1", "arrival", T0, badge_token=altered),
        log.record("C2", "arrival", T0, badge_token=stranger),
        log.record("C3", "arrival", T0, badge_token="https://example.com/"),
        log.record("C1", "arrival", T0, badge_serial=2),  # C1's re-issued badge, genuine
        log.record("C3", "arrival", T0, source="wedge"),
    ]
    answer = push(site, log, batch, fresh_checks())
    reasons = [r.reason or "" for r in answer.results]
    assert "forged or altered" in reasons[0] or "damaged" in reasons[0]
    assert "unknown key" in reasons[1]
    assert "not a cadre badge" in reasons[2]
    assert reasons[3] == "" and reasons[4] == ""  # genuine, by camera and by wedge
    assert kinds(site).count("badge_proof") == 3
    with site.connect() as conn:
        counted = conn.execute(select(stays.c.cadre_id)).scalars().all()
    assert sorted(counted) == ["C1", "C3"]


def test_an_uncorrected_scan_is_judged_again_once_its_time_is_known(site):
    """A badge revoked before the push, read on a clock the centre cannot place: judged at
    arrival (revoked, not counted); the boot's offset then places the scan before the
    revocation, so it counts and its anomaly is resolved."""
    kiosk_id, _ = enrolled(site, "S01")
    issue_badges(site, TEST_KEY, cadre_ids=["C1"], today=ISSUED)
    roster.revoke_badge(site, "C1", now=T0 + timedelta(hours=1))
    log = MemoryLog(kiosk_id, "S01", boot_id="after-cut")
    behind = timedelta(hours=5)
    scan = log.record("C1", "arrival", T0 - behind, clock_trusted=False, monotonic_ns=10**12)
    push(site, log, [scan], fresh_checks(), at=T0 + timedelta(hours=2))
    assert quarantine_of(site)[str(scan.event_id)] == "badge_revoked"
    sample = ClockSample(
        boot_id="after-cut",
        monotonic_ns=10**12 + 3600 * 10**9,
        device_time=T0 + timedelta(hours=1) - behind,
        offset_s=behind.total_seconds(),
        rtt_s=0.05,
    )
    with site.begin() as conn:
        apply_clock_samples(conn, log.identity, [sample], T0 + timedelta(hours=2), RULES)
    assert quarantine_of(site)[str(scan.event_id)] is None
    with site.connect() as conn:
        flagged = conn.execute(
            select(anomalies.c.resolved_at).where(anomalies.c.kind == "badge_proof")
        ).scalar_one()
        counted = conn.execute(select(stays.c.cadre_id)).scalars().all()
    assert flagged is not None and counted == ["C1"]


def test_a_trusted_time_against_the_centres_measurement_counts_at_the_centres(site):
    """The push says what the boot's monotonic clock read as it left; a record whose trusted
    clock is 3 days off that is placed where the centre's measurement puts it, and flagged;
    one within the tolerance is left alone."""
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01", boot_id="b1")
    honest = log.record("C1", "arrival", T0, monotonic_ns=10**12)
    backdated = log.record(
        "C2", "arrival", T0 - timedelta(days=3), monotonic_ns=10**12 + 60 * 10**9
    )
    arrived = T0 + timedelta(minutes=2)
    reading = ClockReading(boot_id="b1", monotonic_ns=10**12 + 120 * 10**9, device_time=arrived)
    answer = push(site, log, [honest, backdated], fresh_checks(), at=arrived, contact=reading)
    assert answer.results[0].reason is None and answer.results[1].reason is None
    with site.connect() as conn:
        rows = {
            r.cadre_id: r
            for r in conn.execute(
                select(events.c.cadre_id, events.c.corrected_time, events.c.time_status)
            )
        }
        [claim] = conn.execute(select(anomalies).where(anomalies.c.kind == "time_claim")).all()
    assert rows["C1"].time_status == "trusted"
    assert rows["C2"].time_status == "corrected"
    assert rows["C2"].corrected_time == (T0 + timedelta(minutes=1)).replace(tzinfo=None)
    assert claim.event_id == str(backdated.event_id) and "centre's measurement" in claim.detail


def test_the_lead_may_only_void_records_of_the_same_cadre(site):
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    scan = log.record("C1", "arrival", T0)
    hand = {"source": "manual", "operator": "lead", "reason": "x", "badge_serial": None}
    wrong = log.record("C2", "void", T0 + timedelta(minutes=1), corrects=scan.event_id, **hand)
    nowhere = log.record(
        "C2",
        "void",
        T0 + timedelta(minutes=2),
        corrects="00000000-0000-4000-8000-000000000000",
        **hand,
    )
    push(site, log, [scan, wrong, nowhere], fresh_checks())
    assert quarantine_of(site)[str(wrong.event_id)] == "foreign_correction"
    assert quarantine_of(site)[str(nowhere.event_id)] == "foreign_correction"
    with site.connect() as conn:
        details = (
            conn.execute(select(anomalies.c.detail).where(anomalies.c.kind == "correction_lane"))
            .scalars()
            .all()
        )
    assert any("a record of C1" in d for d in details)
    assert any("no record of this kiosk" in d for d in details)


def test_a_store_made_before_proofs_gains_their_columns(central_engine):
    """create_schema adds the columns added since a table was made (old rows read NULL), and
    queues every stay to be paired again when the stays table gained some."""
    engine = central_engine
    load_roster(engine, {"S01": ["C1"]})
    kiosk_id, _ = enrolled(engine, "S01")
    log = MemoryLog(kiosk_id, "S01")
    push(engine, log, [log.record("C1", "arrival", T0)], fresh_checks())
    with engine.begin() as conn:
        conn.execute(text('ALTER TABLE events DROP COLUMN "quarantine"'))
        conn.execute(text('ALTER TABLE boots DROP COLUMN "contact_at"'))
        conn.execute(text('ALTER TABLE stays DROP COLUMN "arrival_by_hand"'))
    assert "quarantine" not in {c["name"] for c in inspect(engine).get_columns("events")}
    assert create_schema(engine) == {
        ("events", "quarantine"),
        ("boots", "contact_at"),
        ("stays", "arrival_by_hand"),
    }
    fresh = inspect(engine)
    assert "quarantine" in {c["name"] for c in fresh.get_columns("events")}
    assert "contact_at" in {c["name"] for c in fresh.get_columns("boots")}
    with engine.connect() as conn:
        assert conn.execute(select(events.c.quarantine)).scalars().all() == [None]
        queued = conn.execute(select(stays_dirty.c.cadre_id, stays_dirty.c.service_day)).all()
    assert [tuple(q) for q in queued] == [("C1", T0.date() + timedelta(days=1))]
    assert create_schema(engine) == set()


def test_a_record_dated_before_the_kiosks_measured_records_cannot_hold(site):
    """Past days are closed: once the centre has measured a kiosk's clock, a record placed
    before that kiosk's latest measured record, from a boot the centre never measured, is kept
    and not counted; a record of such a boot dated after it counts."""
    from central import kiosks

    new = kiosks.add_kiosk(site, "S01", T0 - timedelta(days=30), timedelta(hours=1))
    identity, _, _ = kiosks.enrol(site, new.code, T0 - timedelta(days=30))
    log = MemoryLog(identity.kiosk_id, "S01", boot_id="b1")
    measured = log.record("C1", "arrival", T0, monotonic_ns=10**12)
    reading = ClockReading(boot_id="b1", monotonic_ns=10**12 + 60 * 10**9, device_time=T0)
    push(site, log, [measured], fresh_checks(), at=T0 + timedelta(minutes=1), contact=reading)
    backdated = log.record(
        "C2", "arrival", T0 - timedelta(days=3), boot_id="b9", monotonic_ns=10**9
    )
    later = log.record(
        "C3", "arrival", T0 + timedelta(minutes=5), boot_id="b9", monotonic_ns=2 * 10**9
    )
    answer = push(site, log, [backdated, later], fresh_checks(), at=T0 + timedelta(minutes=6))
    assert "before the kiosk's earlier records" in answer.results[0].reason
    assert answer.results[1].reason is None
    assert quarantine_of(site)[str(backdated.event_id)] == "time_claim"
    with site.connect() as conn:
        counted = sorted(conn.execute(select(stays.c.cadre_id)).scalars().all())
    assert counted == ["C1", "C3"]


def test_the_issuing_keys_are_looked_at_once_a_second_and_a_rotation_is_picked_up(
    tmp_path, monkeypatch
):
    key_file = tmp_path / "issuing_key.pem"
    key_file.write_text("one")
    loads: list[str] = []
    now = [100.0]
    monkeypatch.setattr(proofs_module.time, "monotonic", lambda: now[0])

    def load(path):
        loads.append(path.read_text())
        return {len(loads): TEST_KEY.public_key()}

    ring = proofs_module.Keyring(key_file, load)
    assert ring.current()[0] == 1 and loads == ["one"]
    key_file.write_text("two, a rotation")
    os.utime(key_file, ns=(1, 1))  # another modification time, whatever the clock's grain
    assert ring.current()[0] == 1  # within the second: the files are not looked at
    now[0] += proofs_module.RECHECK_S
    version, keys = ring.current()
    assert version == 2 and list(keys) == [2] and loads == ["one", "two, a rotation"]
    now[0] += proofs_module.RECHECK_S
    assert ring.current()[0] == 2 and len(loads) == 2  # nothing changed: nothing loaded
