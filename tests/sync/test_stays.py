"""Stays: records of every kiosk of a site paired by corrected time, corrections honoured."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from central import corrections
from central.anomalies import anomaly_list
from central.db.schema import anomalies
from central.ingest.push import ingest_events
from central.stays import pairing
from central.stays import queries as stay_queries
from central.stays import store as stay_store
from central.stays.refresher import StayRefresher
from tests.proofs import CHECKS
from tests.sync.helpers import RULES, T0, MemoryLog, enrolled, load_roster

DAY = date(2026, 12, 1)  # the service day of T0 (06:00 in Shanghai)


@pytest.fixture
def site(central_engine):
    load_roster(central_engine, {"S01": ["C1", "C2", "C3"], "S02": ["C9"]})
    return central_engine


def received(batch) -> datetime:
    """A minute after the last record was made: no record reaches the centre before it is made."""
    return max([T0, *(e.device_time for e in batch)]) + timedelta(minutes=1)


def push(engine, log: MemoryLog, batch) -> None:
    answer = ingest_events(
        engine, log.identity, [e.wire() for e in batch], received(batch), RULES, checks=CHECKS
    )
    assert all(r.status == "stored" for r in answer.results), answer.results


def stays_of(engine, cadre_id: str) -> list[dict]:
    with engine.connect() as conn:
        return stay_queries.stays_for_cadre(conn, cadre_id, DAY, DAY)


def anomaly_kinds(engine, cadre_id: str) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(select(anomalies.c.kind).where(anomalies.c.cadre_id == cadre_id))
            .scalars()
            .all()
        )


def two_kiosks(engine) -> tuple[MemoryLog, MemoryLog]:
    first, _ = enrolled(engine, "S01")
    second, _ = enrolled(engine, "S01")
    return MemoryLog(first, "S01", "boot-a"), MemoryLog(second, "S01", "boot-b")


def test_arrive_at_one_kiosk_leave_at_the_other(site):
    gate, back_door = two_kiosks(site)
    arrival = gate.record("C1", "arrival", T0)
    # The back door was offline from the gate, so it took the cadre's scan for an arrival.
    leaving = back_door.record("C1", "arrival", T0 + timedelta(hours=9, minutes=12))
    push(site, back_door, [leaving])  # order of arrival at the centre does not matter
    push(site, gate, [arrival])
    [stay] = stays_of(site, "C1")
    assert stay["state"] == "closed"
    assert (stay["arrival_event_id"], stay["departure_event_id"]) == (
        str(arrival.event_id),
        str(leaving.event_id),
    )
    assert stay["duration_s"] == (9 * 60 + 12) * 60
    assert (stay["arrival_kiosk_id"], stay["departure_kiosk_id"]) == (
        gate.kiosk_id,
        back_door.kiosk_id,
    )
    assert "kiosk_disagrees" in stay["flags"] and "cross_kiosk" in stay["flags"]
    assert anomaly_kinds(site, "C1") == ["kiosk_disagrees"]


def test_scans_at_both_kiosks_within_the_repeat_window_count_once(site):
    gate, back_door = two_kiosks(site)
    push(site, gate, [gate.record("C2", "arrival", T0)])
    push(site, back_door, [back_door.record("C2", "arrival", T0 + timedelta(seconds=40))])
    [stay] = stays_of(site, "C2")
    assert stay["state"] == "open" and stay["flags"] == []
    push(site, gate, [gate.record("C2", "departure", T0 + timedelta(hours=8))])
    [stay] = stays_of(site, "C2")
    assert stay["state"] == "closed" and stay["duration_s"] == 8 * 3600


def test_kiosk_void_and_replacement_are_honoured(site):
    gate, _ = two_kiosks(site)
    mistaken = gate.record("C3", "arrival", T0)
    real = gate.record("C3", "departure", T0 + timedelta(hours=8))
    void = gate.record(
        "C3",
        "void",
        T0 + timedelta(hours=8, minutes=5),
        source="manual",
        operator="lead",
        reason="scanned the wrong badge",
        corrects=mistaken.event_id,
    )
    push(site, gate, [mistaken, real, void])
    # With the arrival voided, the afternoon scan is the cadre's first of the day: an arrival
    # by the kiosks' own rule, and the kiosk's "departure" is shown as a disagreement.
    [stay] = stays_of(site, "C3")
    assert stay["state"] == "open" and stay["arrival_event_id"] == str(real.event_id)
    assert stay["flags"] == ["kiosk_disagrees"]
    # The lead enters the true arrival by hand: a manual record says what it is (its time is
    # the lead's word, flagged so, as the kiosk's rules do).
    by_hand = gate.record(
        "C3",
        "arrival",
        T0 - timedelta(minutes=30),
        source="manual",
        operator="lead",
        reason="forgot badge",
        flags=["time_entered_by_operator"],
    )
    push(site, gate, [by_hand])
    [stay] = stays_of(site, "C3")
    assert stay["state"] == "closed" and stay["arrival_event_id"] == str(by_hand.event_id)
    assert stay["departure_event_id"] == str(real.event_id) and stay["flags"] == []
    assert stay["duration_s"] == int(8.5 * 3600)


def test_a_leads_undo_of_a_void_makes_the_record_count_again(site):
    """The kiosk's undo is a void of the void: the centre lets the record stand again, its stays
    follow, and nothing is left for staff to untangle."""
    gate, _ = two_kiosks(site)
    arrival = gate.record("C2", "arrival", T0)
    lead = {"source": "manual", "operator": "lead", "reason": "wrong person"}
    void = gate.record("C2", "void", T0 + timedelta(minutes=5), corrects=arrival.event_id, **lead)
    push(site, gate, [arrival, void])
    assert stays_of(site, "C2") == []
    undo = gate.record("C2", "void", T0 + timedelta(minutes=9), corrects=void.event_id, **lead)
    push(site, gate, [undo])
    [stay] = stays_of(site, "C2")
    assert stay["state"] == "open" and stay["arrival_event_id"] == str(arrival.event_id)
    push(site, gate, [gate.record("C2", "departure", T0 + timedelta(hours=8))])
    [stay] = stays_of(site, "C2")
    assert stay["state"] == "closed" and stay["duration_s"] == 8 * 3600
    assert stay["flags"] == [] and anomaly_kinds(site, "C2") == []


def test_staff_correction_feeds_the_stays(site):
    gate, _ = two_kiosks(site)
    arrival = gate.record("C1", "arrival", T0)
    push(site, gate, [arrival])
    with site.begin() as conn:
        corrections.add_correction(
            conn,
            corrections.NewCorrection(
                action="add",
                cadre_id="C1",
                site_id="S01",
                service_day=DAY,
                reason="left without scanning",
                staff_user="admin",
                kind="departure",
                event_time=(T0 + timedelta(hours=7)).replace(tzinfo=None),
            ),
            T0,
        )
        stay_store.recompute(conn, [("C1", DAY)], RULES, T0)
    [stay] = stays_of(site, "C1")
    assert stay["state"] == "closed" and stay["duration_s"] == 7 * 3600


def test_two_sites_and_overlong_and_old_arrival_are_anomalies(site):
    gate, _ = two_kiosks(site)
    elsewhere_id, _ = enrolled(site, "S02")
    elsewhere = MemoryLog(elsewhere_id, "S02", "boot-c")
    push(site, gate, [gate.record("C1", "arrival", T0)])
    push(site, elsewhere, [elsewhere.record("C1", "arrival", T0 + timedelta(hours=1))])
    push(site, gate, [gate.record("C1", "departure", T0 + timedelta(hours=13))])
    found = stays_of(site, "C1")
    assert {s["site_id"] for s in found} == {"S01", "S02"}
    assert all("two_sites" in s["flags"] for s in found)
    assert anomaly_kinds(site, "C1") == ["overlong_stay", "two_sites"]


def test_summaries_count_expected_arrived_present_departed_absent(site):
    gate, back_door = two_kiosks(site)
    push(site, gate, [gate.record("C1", "arrival", T0), gate.record("C2", "arrival", T0)])
    push(site, back_door, [back_door.record("C2", "arrival", T0 + timedelta(hours=8))])
    visitor_log = MemoryLog(gate.kiosk_id, "S01", "boot-a")
    visitor_log.events = list(gate.events)
    push(site, gate, [visitor_log.record("C9", "arrival", T0 + timedelta(minutes=5))])
    now = T0 + timedelta(hours=9)
    with site.connect() as conn:
        summary = stay_queries.site_day_summary(conn, "S01", DAY, now, RULES)
        everything = stay_queries.all_sites_summary(conn, DAY, now, RULES)
        present = stay_queries.present_cadres(conn, "S01", DAY, now, RULES)
        chart = stay_queries.arrivals_histogram(conn, "S01", DAY, RULES)
    assert (summary.expected, summary.arrived, summary.present, summary.departed) == (3, 3, 2, 1)
    assert (summary.absent, summary.visitors) == (1, 1)  # C3 absent, C9 from S02
    assert [s.site_id for s in everything] == ["S01", "S02"]
    assert everything[1].absent == 1  # C9 was not at its own site
    assert {p["cadre_id"] for p in present} == {"C1", "C9"}
    assert len(chart) == 96 and sum(count for _, count in chart) == 3
    later = T0 + timedelta(days=1)
    with site.connect() as conn:
        next_day = stay_queries.site_day_summary(conn, "S01", DAY, later, RULES)
        left_open = anomaly_list(conn, DAY, DAY, later, RULES, kinds=["no_departure"])
    assert next_day.present == 0  # the day is over: nobody is still present
    # C2 was seen leaving; C1 and C9 never were: they are "no departure", not "departed".
    assert (next_day.departed, next_day.no_departure) == (1, 2)
    assert {a["cadre_id"] for a in left_open} == {"C1", "C9"}


def test_api_pushes_queue_stays_and_the_refresher_works_through_them(site, monkeypatch):
    gate, _ = two_kiosks(site)
    batch = [gate.record("C1", "arrival", T0), gate.record("C2", "arrival", T0)]
    ingest_events(
        site, gate.identity, [e.wire() for e in batch], T0, RULES, defer_stays=True, checks=CHECKS
    )
    with site.connect() as conn:
        assert stay_store.queued(conn) == 2
    assert stays_of(site, "C1") == []

    # A pair queued again while a refresh works on it must stay queued for the next one.
    original = stay_store.recompute

    def recompute_while_a_kiosk_pushes(conn, keys, rules, now=None):
        written = original(conn, keys, rules, now)
        stay_store.mark_dirty(conn, {("C2", DAY)})
        return written

    monkeypatch.setattr(stay_store, "recompute", recompute_while_a_kiosk_pushes)
    assert stay_store.refresh(site, RULES, T0) == 2
    monkeypatch.setattr(stay_store, "recompute", original)
    with site.connect() as conn:
        assert stay_store.queued(conn) == 1
    refresher = StayRefresher(site, RULES, chunk=1)
    assert refresher.drain() == 1
    with site.connect() as conn:
        assert stay_store.queued(conn) == 0
    assert [s["state"] for s in stays_of(site, "C1") + stays_of(site, "C2")] == ["open", "open"]


def test_staff_added_departure_is_not_a_departure_at_another_kiosk():
    arrival = {
        "event_id": "e1",
        "kind": "arrival",
        "corrected_time": T0,
        "kiosk_id": "K1",
        "source": "camera",
    }
    staff_departure = {
        "event_id": "c1",
        "kind": "departure",
        "corrected_time": T0 + timedelta(hours=8),
        "kiosk_id": None,
        "source": corrections.STAFF_SOURCE,
    }
    other_kiosk = dict(staff_departure, event_id="e2", kiosk_id="K2", source="camera")
    (by_staff,), _ = pairing.pair_site("C1", "S01", DAY, [arrival, staff_departure], RULES)
    (across,), _ = pairing.pair_site("C1", "S01", DAY, [arrival, other_kiosk], RULES)
    assert by_staff.state == "closed" and "cross_kiosk" not in by_staff.flags
    assert "cross_kiosk" in across.flags


def test_arrivals_by_hand_are_counted_apart(site):
    """Arrived counts everyone seen; `by_hand` those with no record a badge proves that day: the
    lead's entries and a kiosk's replacement, not a scan nor a departure scanned."""
    gate, _ = two_kiosks(site)
    hand = {"source": "manual", "operator": "lead", "reason": "no badge", "badge_serial": None}
    scanned = gate.record("C3", "arrival", T0)
    batch = [
        gate.record("C1", "arrival", T0),  # a scan
        gate.record("C2", "arrival", T0 + timedelta(minutes=1), **hand),  # the lead's word
        scanned,
        gate.record(  # the lead replaces C3's scan: the new time is the lead's word
            "C3",
            "arrival",
            T0 + timedelta(minutes=3),
            corrects=scanned.event_id,
            flags=["time_entered_by_operator"],
            **hand,
        ),
        gate.record("C9", "departure", T0 + timedelta(minutes=4)),  # seen leaving, by badge
    ]
    push(site, gate, batch)
    with site.connect() as conn:
        summary = stay_queries.site_day_summary(conn, "S01", DAY, T0 + timedelta(hours=1), RULES)
        c2 = stay_queries.stays_for_cadre(conn, "C2", DAY, DAY)
    assert (summary.arrived, summary.by_hand) == (4, 2)
    assert (c2[0]["arrival_by_hand"], c2[0]["departure_by_hand"]) == (True, None)


def test_behind_a_backlog_the_refresher_yields_to_ingest_only_a_moment(site):
    """With pushes always in flight (a surge), a full yield before each chunk held pairing to
    a chunk per `max_yield_s`; behind a full chunk it waits only `backlog_yield_s`."""
    log, _ = two_kiosks(site)
    batch = [log.record(c, "arrival", T0) for c in ("C1", "C2", "C3")]
    ingest_events(
        site,
        log.identity,
        [e.wire() for e in batch],
        received(batch),
        RULES,
        checks=CHECKS,
        defer_stays=True,  # queued, as the API does, for the refresher
    )
    refresher = StayRefresher(site, RULES, chunk=2, max_yield_s=30.0, backlog_yield_s=0.01)
    asked: list[float] = []

    class Recording:
        def __enter__(self) -> None: ...

        def __exit__(self, *exc: object) -> None: ...

        def wait_for(self, predicate, timeout):
            asked.append(timeout)
            return predicate()

    refresher._quiet = Recording()  # type: ignore[assignment]
    duty = refresher.duty()
    done = []
    for _ in range(3):
        duty.before_step()
        with site.begin() as conn:
            done.append(refresher.step(conn))
    assert done == [2, 1, 0]
    # Quiet at first; after a full chunk a moment only; after a short one the full yield again.
    assert asked == [30.0, 0.01, 30.0]
