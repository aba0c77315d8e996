"""Time correction per kiosk boot: offsets from clock samples, kept beside the device time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from central.db.schema import anomalies, events
from central.ingest.heartbeat import record_heartbeat
from central.ingest.push import ingest_events
from central.stays import queries as stay_queries
from central.timefix import DayRule
from sync.client import Timing
from sync.protocol import CameraReport, ClockReport, ClockSample, Heartbeat
from tests.proofs import CHECKS
from tests.sync.helpers import RULES, T0, MemoryLog, enrolled, load_roster

CST = timezone(timedelta(hours=8))


@pytest.fixture
def site(central_engine):
    load_roster(central_engine, {"S01": ["C1", "C2"]})
    return central_engine


def beat(samples: list[ClockSample]) -> Heartbeat:
    return Heartbeat(
        queue_length=0,
        camera=CameraReport(ok=True),
        clock=ClockReport(trusted=False, samples=samples),
        ready=True,
    )


def untrusted(log: MemoryLog, cadre: str, kind: str, true_time: datetime, behind: timedelta):
    """An event of a kiosk whose wall clock is `behind` true time; monotonic time is honest."""
    event = log.record(cadre, kind, true_time - behind, clock_trusted=False)
    return event


def rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(events).order_by(events.c.seq))]


def test_boot_without_offset_is_flagged_then_corrected_when_one_comes(site):
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01", boot_id="after-power-cut")
    behind = timedelta(hours=20)  # resumed from a saved clock: yesterday, as far as it knows
    batch = [
        untrusted(log, "C1", "arrival", T0, behind),
        untrusted(log, "C1", "departure", T0 + timedelta(hours=8), behind),
    ]
    ingest_events(site, log.identity, [e.wire() for e in batch], T0, RULES, checks=CHECKS)
    before = rows(site)
    assert [r["time_status"] for r in before] == ["uncorrected"] * 2
    assert before[0]["service_day"] == date(2026, 11, 30)  # where its wrong clock put it
    with site.connect() as conn:
        flagged = conn.execute(
            select(anomalies).where(anomalies.c.kind == "uncorrected_time")
        ).one()
    assert flagged.boot_id == "after-power-cut" and flagged.resolved_at is None

    # Later in the same boot the kiosk reaches the centre and measures its offset.
    at = T0 + timedelta(hours=9)
    mono = batch[0].monotonic_ns + int(9 * 3600 * 1e9)
    sample = ClockSample(
        boot_id="after-power-cut",
        monotonic_ns=mono,
        device_time=at - behind,
        offset_s=behind.total_seconds(),
        rtt_s=0.05,
    )
    record_heartbeat(site, log.identity, beat([sample]), at, RULES)
    after = rows(site)
    assert [r["time_status"] for r in after] == ["corrected"] * 2
    assert after[0]["corrected_time"] == T0.replace(tzinfo=None)
    assert after[1]["corrected_time"] == (T0 + timedelta(hours=8)).replace(tzinfo=None)
    assert after[0]["device_time"] == (T0 - behind).replace(tzinfo=None)  # both kept
    assert after[0]["service_day"] == date(2026, 12, 1)
    with site.connect() as conn:
        resolved = conn.execute(
            select(anomalies.c.resolved_at).where(anomalies.c.kind == "uncorrected_time")
        ).scalar_one()
        [stay] = stay_queries.stays_for_cadre(conn, "C1", date(2026, 11, 30), date(2026, 12, 1))
    assert resolved is not None
    assert stay["service_day"] == date(2026, 12, 1) and stay["duration_s"] == 8 * 3600
    assert "uncorrected_time" not in stay["flags"]


def test_wall_clock_jump_inside_a_boot_does_not_move_events(site):
    kiosk_id, _ = enrolled(site, "S01")
    log = MemoryLog(kiosk_id, "S01", boot_id="b1")
    anchor_mono = 5 * 10**12
    sample = ClockSample(
        boot_id="b1",
        monotonic_ns=anchor_mono,
        device_time=T0 - timedelta(hours=3),  # wall clock 3 h behind at the sample
        offset_s=3 * 3600,
        rtt_s=0.02,
    )
    record_heartbeat(site, log.identity, beat([sample]), T0, RULES)
    # Minutes later NTP steps the wall clock forward by 3 h; monotonic time just runs on.
    before_step = log.record(
        "C2",
        "arrival",
        T0 + timedelta(minutes=10) - timedelta(hours=3),
        clock_trusted=False,
        monotonic_ns=anchor_mono + 600 * 10**9,
    )
    after_step = log.record(
        "C2",
        "departure",
        T0 + timedelta(hours=7),
        clock_trusted=True,
        monotonic_ns=anchor_mono + 7 * 3600 * 10**9,
    )
    at = T0 + timedelta(hours=8)  # pushed after both were made
    ingest_events(
        site, log.identity, [before_step.wire(), after_step.wire()], at, RULES, checks=CHECKS
    )
    first, second = rows(site)
    assert (first["time_status"], first["corrected_time"]) == (
        "corrected",
        (T0 + timedelta(minutes=10)).replace(tzinfo=None),
    )
    assert (second["time_status"], second["corrected_time"]) == (
        "trusted",
        (T0 + timedelta(hours=7)).replace(tzinfo=None),
    )


def test_service_day_starts_at_the_configured_local_time():
    rule = DayRule.of("Asia/Shanghai", "03:00")
    just_before = datetime(2026, 12, 1, 2, 59, tzinfo=CST).astimezone(UTC).replace(tzinfo=None)
    at_start = datetime(2026, 12, 1, 3, 0, tzinfo=CST).astimezone(UTC).replace(tzinfo=None)
    assert rule.service_day(just_before) == date(2026, 11, 30)
    assert rule.service_day(at_start) == date(2026, 12, 1)
    assert rule.bounds(date(2026, 12, 1)) == (
        datetime(2026, 11, 30, 19, 0),
        datetime(2026, 12, 1, 19, 0),
    )


def test_offset_is_taken_at_the_round_trip_midpoint():
    sent = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)
    timing = Timing(sent_wall=sent, sent_mono_ns=1_000_000_000, received_mono_ns=1_400_000_000)
    # The centre's clock read 00:00:10.2 when the kiosk's read 00:00:00.2 (the midpoint).
    sample = timing.sample(sent + timedelta(seconds=10.2), "b")
    assert sample.offset_s == pytest.approx(10.0)
    assert sample.rtt_s == pytest.approx(0.4)
    assert sample.monotonic_ns == 1_200_000_000
    assert sample.device_time == sent + timedelta(seconds=0.2)
