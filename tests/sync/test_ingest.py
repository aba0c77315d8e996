"""Storing pushed events: idempotence, checks, quarantine and the hash chain (SQLite and PG)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, text, update

from central.db.schema import anomalies, boots, events, kiosks, rejected_events
from central.ingest.push import _hash_matches, ingest_events
from sync.events import GENESIS_HASH, Event, seal
from sync.protocol import ClockReading
from tests.proofs import CHECKS
from tests.sync.helpers import RULES, T0, MemoryLog, enrolled, load_roster
from tests.waiting import wait_for


@pytest.fixture
def site(central_engine):
    load_roster(central_engine, {"S01": ["C1", "C2", "C3"], "S02": ["C9"]})
    return central_engine


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _anomalies(engine, kind: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(anomalies).where(anomalies.c.kind == kind).order_by(anomalies.c.anomaly_id)
        )
        return [dict(r._mapping) for r in rows]


def _push(engine, log: MemoryLog, batch: list[Event] | list[dict]):
    wire = [e.wire() if isinstance(e, Event) else e for e in batch]
    return ingest_events(engine, log.identity, wire, T0, RULES, checks=CHECKS)


def test_replayed_batches_store_nothing_twice(site):
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    batch = [log.record(f"C{i % 3 + 1}", "arrival", T0 + timedelta(minutes=i)) for i in range(6)]
    first = _push(site, log, batch)
    assert [r.status for r in first.results] == ["stored"] * 6
    again = _push(site, log, batch)
    assert [r.status for r in again.results] == ["duplicate"] * 6
    overlapping = _push(
        site, log, [*batch[3:], log.record("C1", "departure", T0 + timedelta(hours=8))]
    )
    assert [r.status for r in overlapping.results] == ["duplicate"] * 3 + ["stored"]
    assert _count(site, events) == 7
    with site.connect() as conn:
        head = conn.execute(select(kiosks).where(kiosks.c.kiosk_id == kiosk_id)).one()
    assert (head.chain_seq, head.chain_hash) == (7, log.events[-1].hash)
    assert _anomalies(site, "chain_gap") == [] and _anomalies(site, "chain_fork") == []


def test_events_for_another_kiosk_are_refused_and_kept_apart(site):
    mine, _ = enrolled(site, "S01")
    other, _ = enrolled(site, "S01")
    log = MemoryLog(mine, "S01")
    forged = MemoryLog(other, "S01").record("C1", "arrival", T0)
    good = log.record("C2", "arrival", T0)
    answer = _push(site, log, [forged, good])
    assert answer.results[0].status == "rejected"
    assert "not the sending kiosk" in answer.results[0].reason
    assert answer.results[1].status == "stored"
    with site.connect() as conn:
        stored = conn.execute(select(events.c.kiosk_id)).scalars().all()
        kept = conn.execute(select(rejected_events.c.event_id)).scalars().all()
    assert stored == [mine]
    assert kept == [str(forged.event_id)]


def test_one_bad_event_does_not_hold_back_the_good_ones(site):
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    first = log.record("C1", "arrival", T0)
    tampered = log.record("C2", "arrival", T0 + timedelta(minutes=1)).wire()
    tampered["cadre_id"] = "C3"  # changed after sealing: the hash no longer matches
    third = log.record("C3", "arrival", T0 + timedelta(minutes=2))
    broken = {"event_id": "not-a-uuid", "seq": 99}
    wrong_site = log.record("C1", "departure", T0 + timedelta(hours=1), site_id="S02")
    answer = _push(site, log, [first, tampered, third, broken, wrong_site])
    statuses = [r.status for r in answer.results]
    assert statuses == ["stored", "rejected", "stored", "rejected", "rejected"]
    assert "hash" in answer.results[1].reason
    assert "event_id" in answer.results[3].reason and answer.results[3].seq == 99
    assert "site_id" in answer.results[4].reason
    assert (answer.stored, answer.rejected) == (2, 3)
    assert _count(site, rejected_events) == 3
    # The tampered event is missing from the chain: seq 2 is a gap until it comes.
    gaps = _anomalies(site, "chain_gap")
    assert [(g["seq"], g["resolved_at"]) for g in gaps] == [(2, None)]


def test_reused_event_id_with_other_content_is_a_conflict(site):
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    original = log.record("C1", "arrival", T0)
    _push(site, log, [original])
    impostor = seal({k: v for k, v in original.wire().items() if k != "hash"} | {"cadre_id": "C2"})
    answer = _push(site, log, [impostor])
    assert answer.results[0].status == "rejected"
    assert "different event" in answer.results[0].reason
    assert len(_anomalies(site, "event_conflict")) == 1
    with site.connect() as conn:
        assert conn.execute(select(events.c.cadre_id)).scalars().all() == ["C1"]


@pytest.mark.parametrize("taken_by", ["another kiosk", "the same kiosk"])
def test_an_id_stored_before_under_a_new_seq_is_a_conflict_and_the_rest_is_stored(site, taken_by):
    # A batch whose seqs are all new is stored without looking its ids up first: an id stored
    # before must still be answered as a conflict, not fail the push on every try.
    first_id, _ = enrolled(site, "S01")
    first = MemoryLog(first_id, "S01")
    taken = first.record("C1", "arrival", T0)
    _push(site, first, [taken])
    if taken_by == "another kiosk":
        other_id, _ = enrolled(site, "S01")
        log = MemoryLog(other_id, "S01")
    else:
        log = first
    before = log.record("C2", "arrival", T0 + timedelta(minutes=1))
    reused = log.record("C2", "departure", T0 + timedelta(hours=1), event_id=taken.event_id)
    after = log.record("C3", "arrival", T0 + timedelta(hours=2))
    answer = _push(site, log, [before, reused, after])
    assert [r.status for r in answer.results] == ["stored", "rejected", "stored"]
    assert "different event" in answer.results[1].reason
    assert [a["event_id"] for a in _anomalies(site, "event_conflict")] == [str(taken.event_id)]
    with site.connect() as conn:
        stored = conn.execute(select(events.c.event_id, events.c.cadre_id)).all()
    assert sorted((str(e), c) for e, c in stored) == sorted(
        [(str(taken.event_id), "C1"), (str(before.event_id), "C2"), (str(after.event_id), "C3")]
    )
    assert _count(site, rejected_events) == 1


def test_a_push_that_waited_for_its_kiosks_row_reads_the_clocks_the_other_push_left(site):
    # PostgreSQL hands a statement that waited for a row lock the row as the other transaction
    # left it, but what it read beside it (here the boot's clocks) as before that commit.
    if site.dialect.name != "postgresql":
        pytest.skip("SQLite has no row lock to wait for: its writers take turns")
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    first_contact = T0 - timedelta(minutes=5)
    first_mono = 10**15 - 300 * 10**9  # MemoryLog's monotonic clock at T0 is 10**15
    holder = site.connect()
    other_push = holder.begin()
    holder.execute(select(kiosks.c.kiosk_id).where(kiosks.c.kiosk_id == kiosk_id).with_for_update())
    holder.execute(
        insert(boots).values(
            kiosk_id=kiosk_id,
            boot_id=log.boot_id,
            first_seen_at=first_contact,
            first_contact_at=first_contact,
            first_contact_mono_ns=first_mono,
            contact_at=first_contact,
            contact_mono_ns=first_mono,
        )
    )
    holder.execute(
        update(kiosks).where(kiosks.c.kiosk_id == kiosk_id).values(last_push_at=first_contact)
    )
    answers = []
    record = log.record("C1", "arrival", T0)
    reading = ClockReading(boot_id=log.boot_id, monotonic_ns=10**15 + 10**9, device_time=T0)
    pushing = threading.Thread(
        target=lambda: answers.append(
            ingest_events(
                site, log.identity, [record.wire()], T0, RULES, checks=CHECKS, contact=reading
            )
        )
    )
    pushing.start()
    with site.connect() as watcher:
        wait_for(
            lambda: watcher.execute(
                text("SELECT count(*) FROM pg_locks WHERE NOT granted")
            ).scalar(),
            10,
            "the push waiting for the kiosk's row",
        )
    other_push.commit()
    holder.close()
    pushing.join(10)
    assert [r.status for r in answers[0].results] == ["stored"]
    with site.connect() as conn:
        boot = conn.execute(select(boots).where(boots.c.kiosk_id == kiosk_id)).one()
    # The boot's first contact is the other push's, not this one's taken for the first.
    assert (boot.first_contact_at, boot.first_contact_mono_ns) == (
        first_contact.replace(tzinfo=None),
        first_mono,
    )
    assert boot.contact_mono_ns == reading.monotonic_ns


def test_gap_is_reported_then_resolved_when_the_missing_event_arrives(site):
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    batch = [log.record("C1", "arrival", T0 + timedelta(minutes=i * 10)) for i in range(5)]
    _push(site, log, batch[:2])
    _push(site, log, batch[4:])
    _push(site, log, batch[4:])  # the same gap again: still one anomaly
    gaps = _anomalies(site, "chain_gap")
    assert len(gaps) == 1
    assert (gaps[0]["seq"], gaps[0]["detail"]) == (3, "seq 3-4 missing before seq 5")
    _push(site, log, batch[2:4])
    gaps = _anomalies(site, "chain_gap")
    assert gaps[0]["resolved_at"] is not None
    with site.connect() as conn:
        head = conn.execute(select(kiosks.c.chain_seq).where(kiosks.c.kiosk_id == kiosk_id))
        assert head.scalar_one() == 5
    assert _anomalies(site, "chain_fork") == []


def test_forks_two_events_with_one_seq_and_a_broken_link(site):
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01")
    first = log.record("C1", "arrival", T0)
    second = log.record("C2", "arrival", T0 + timedelta(minutes=1))
    _push(site, log, [first, second])
    # A kiosk restored from an old backup writes a different seq 2 after seq 1.
    restored = MemoryLog(kiosk_id, "S01")
    restored.events = [first]
    other_second = restored.record("C3", "arrival", T0 + timedelta(minutes=5))
    answer = _push(site, log, [other_second])
    assert answer.results[0].status == "stored"  # a real scan: kept, and the fork shown
    forks = _anomalies(site, "chain_fork")
    assert len(forks) == 1 and forks[0]["seq"] == 2
    assert str(second.event_id) in forks[0]["detail"]
    assert str(other_second.event_id) in forks[0]["detail"]
    # seq 3 whose prev_hash names neither seq 2.
    honest = log.record("C1", "departure", T0 + timedelta(hours=8))
    unlinked = seal(
        {k: v for k, v in honest.wire().items() if k != "hash"} | {"prev_hash": "f" * 64}
    )
    _push(site, log, [unlinked])
    forks = _anomalies(site, "chain_fork")
    assert len(forks) == 2 and forks[1]["seq"] == 3 and "does not follow" in forks[1]["detail"]


def test_hash_check_agrees_with_the_reference_on_awkward_text():
    log = MemoryLog("K1", "S01")
    event = log.record(
        "C1",
        "arrival",
        T0,
        source="manual",
        operator='林 "lead"\n',
        reason="忘带工牌\t\u2028\x01 ok\\",
        flags=["off_roster", "é"],
    )
    assert _hash_matches(event) and event.hash_is_valid()
    tampered = Event.model_validate(dict(event.wire(), reason="忘带工牌"))
    assert not _hash_matches(tampered)


def test_a_new_kiosks_chain_starts_at_the_genesis_hash() -> None:
    # The table cannot import sync.events, so its default is spelled out; it must be the same.
    assert kiosks.c.chain_hash.default.arg == GENESIS_HASH  # type: ignore[union-attr]
