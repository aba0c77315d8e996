"""Clock chaos against a real centre: a kiosk clock stepped back two hours, forward a day, and
resumed hours behind after power cuts (phases in tests/e2e/clock_trial.py).

What must hold: `seq` order is kept whatever the clock says; every event keeps the time its
clock showed (device_time, never rewritten); the centre places on true time every event of a
boot whose offset it learns, keeps a synchronised clock's own time, and flags the events of a
boot it can never place (time_status uncorrected, an open uncorrected_time anomaly).
"""

from __future__ import annotations

from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.clock_trial import (
    EXPECTED_STATUS,
    ClockReport,
    Scan,
    SteppedClock,
    clock_trial,
)
from tests.e2e.harness import service_day_of

# The centre's offset comes from a round trip on loopback: off by half of it at most. A second
# leaves room for a loaded machine and is still far below any step of the run (hours).
TOLERANCE = timedelta(seconds=1)
SITE_ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def report(tmp_path_factory, centre, badges) -> ClockReport:
    return clock_trial(
        tmp_path_factory.mktemp("clock"),
        centre,
        badges["E2E-CLK"],
        kiosk_id="k-clock",
        site_id="E2E-CLK",
    )


def within(moment, scan: Scan, shift: timedelta = timedelta(0)) -> bool:
    return scan.before + shift - TOLERANCE <= moment <= scan.after + shift + TOLERANCE


def test_seq_order_is_kept_whatever_the_clock_says(report):
    log_seqs = [e.seq for e in report.log.events]
    assert log_seqs == list(range(1, len(report.scans) + 1))
    assert [report.event(s).seq for s in report.scans] == log_seqs  # scan order is seq order
    assert [r.seq for r in report.centre.rows] == log_seqs
    assert report.centre.chain_seq == report.centre.max_seq == len(log_seqs)
    assert report.log.verify_ok, report.log.verify_problems
    for kind in ("chain_gap", "chain_fork", "event_conflict", "rejected_event"):
        assert report.centre.anomalies_open[kind] + report.centre.anomalies_resolved[kind] == 0
    # The clock went back two hours between seq 3 and seq 4: order follows seq, not time.
    last_a = report.event(next(s for s in reversed(report.scans) if s.phase == "A"))
    first_b = report.event(next(s for s in report.scans if s.phase == "B"))
    assert first_b.seq == last_a.seq + 1
    assert first_b.device_time < last_a.device_time - timedelta(hours=1, minutes=59)


def test_each_event_keeps_the_time_its_clock_showed(report):
    for scan in report.scans:
        event, row = report.event(scan), report.row(scan)
        assert within(event.device_time.astimezone(UTC), scan, scan.shift), scan.phase
        # The centre keeps that time as it was written, beside its own estimate.
        assert row.device_time == event.device_time.astimezone(UTC).replace(tzinfo=None)
        assert event.clock_trusted == (scan.phase in ("A", "F")), scan.phase
    shifts = {scan.phase: scan.shift for scan in report.scans}
    assert shifts["B"] == timedelta(hours=-2) and shifts["C"] == timedelta(days=1)


def test_the_centre_corrects_what_it_can_and_flags_the_rest(report):
    for scan in report.scans:
        row = report.row(scan)
        corrected = row.corrected_time.replace(tzinfo=UTC)
        assert row.time_status == EXPECTED_STATUS[scan.phase], scan.phase
        if row.time_status == "uncorrected":
            # Not moved: shown as the kiosk's clock had it, and flagged.
            assert row.corrected_time == row.device_time
        else:
            assert within(corrected, scan), (scan.phase, corrected, scan.before)
            # A day ahead on the kiosk, but counted on the day it happened.
            assert row.service_day == service_day_of(scan.before), scan.phase
    open_flags = [a for a in report.centre.anomaly_rows if a.resolved_at is None]
    assert [(a.kind, a.boot_id) for a in open_flags] == [("uncorrected_time", "boot-2")]
    # boot-3's first push came before its offset (a push goes before the heartbeat that
    # carries the offset): flagged, then resolved. boot-1 may have been too, on a slow machine.
    resolved = [a for a in report.centre.anomaly_rows if a.resolved_at is not None]
    assert {a.kind for a in resolved} == {"uncorrected_time"}
    assert {a.boot_id for a in resolved} - {"boot-1"} == {"boot-3"}


def test_the_kiosk_rules_and_screen_follow_true_time(report):
    by_phase = {(s.phase, s.cadre): s for s in report.scans}
    # Departures after a step backwards and after a step a day forwards: the stay is measured
    # on the monotonic clock (about a second), not on the wall clock (-2 h, +26 h).
    for key in (("B", 0), ("C", 3), ("F", 7)):
        scan = by_phase[key]
        assert scan.answer["outcome"] == "departure", key
        assert 0 <= scan.answer["worked_s"] < 60, (key, scan.answer["worked_s"])
        assert report.event(scan).flags == [], key
    # The screen shows true time once the offset is known (B, C: from NTP before the step;
    # E2: from the centre), and the clock's own time when nothing better is known (D, E1).
    for scan in report.scans:
        shown_true = scan.phase in ("A", "B", "C", "E2", "F")
        expected = {
            (moment + (timedelta(0) if shown_true else scan.shift))
            .astimezone(SITE_ZONE)
            .strftime("%H:%M")
            for moment in (scan.before, scan.after)
        }
        assert scan.answer["time"] in expected, (scan.phase, scan.answer["time"], expected)
    # Across boots with no known offset the kiosk cannot tell how long ago: it says so.
    assert "clock_uncertain" in report.event(by_phase[("D", 1)]).flags


def test_a_step_of_the_wall_clock_is_seen_at_once(tmp_path):
    """The real SystemClock caches the kernel's synchronised flag for seconds; a step of the wall
    clock (which clears the flag) must not leave events of those seconds marked trusted."""
    clock = SteppedClock("boot-x", tmp_path)
    assert clock.synchronized()
    clock.step(timedelta(hours=-2))
    assert not clock.synchronized()
    clock.ntp_sync()  # and NTP stepping it right is trusted at once too
    assert clock.synchronized()
