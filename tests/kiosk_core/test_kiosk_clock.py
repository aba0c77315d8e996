"""Trusted time: the system clock seam, and the keeper of the best known offset per boot."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kiosk.clock import SystemClock, TimeKeeper
from tests.fakes.clock import FakeClock

T0 = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


def test_system_clock_reads_boot_id_and_asks_the_probe(tmp_path):
    boot_file = tmp_path / "boot_id"
    boot_file.write_text("3f1c0d2e-0000-4000-8000-000000000001\n")
    answers = iter([True, False])
    clock = SystemClock(sync_probe=lambda: next(answers), boot_id_path=boot_file, sync_cache_s=0)
    assert clock.boot_id() == "3f1c0d2e-0000-4000-8000-000000000001"
    assert clock.synchronized() is True
    assert clock.synchronized() is False
    first, second = clock.monotonic_ns(), clock.monotonic_ns()
    assert second >= first
    assert clock.now().tzinfo is not None


def test_system_clock_without_boot_id_never_shares_one(tmp_path):
    one = SystemClock(sync_probe=lambda: False, boot_id_path=tmp_path / "missing")
    two = SystemClock(sync_probe=lambda: False, boot_id_path=tmp_path / "missing")
    assert one.boot_id() != two.boot_id()


def test_unsynchronised_clock_without_any_anchor_is_untrusted():
    keeper = TimeKeeper(FakeClock(T0, synchronized=False))
    reading = keeper.read()
    assert (reading.trusted, reading.source, reading.shown) == (False, "unverified", T0)


def test_learned_offset_is_shown_and_survives_a_wall_clock_step(tmp_path):
    clock = FakeClock(T0, synchronized=False)  # the Pi thinks it is 05:00; it is 06:00
    keeper = TimeKeeper(clock, tmp_path / "clock.json")
    keeper.learn(T0 + timedelta(hours=1), "centre", uncertainty_s=0.2)
    reading = keeper.read()
    assert reading.shown == T0 + timedelta(hours=1)
    assert reading.offset == timedelta(hours=1) and reading.trusted is False
    clock.advance(minutes=10)
    clock.jump(timedelta(minutes=-30))  # someone steps the wall clock: the anchor is monotonic
    assert keeper.read().shown == T0 + timedelta(hours=1, minutes=10)


def test_small_offset_from_a_trusted_source_makes_the_clock_trusted():
    clock = FakeClock(T0, synchronized=False)
    keeper = TimeKeeper(clock, trust_tolerance_s=5)
    keeper.learn(T0 + timedelta(seconds=2), "lead_phone", uncertainty_s=1.0)
    reading = keeper.read()
    assert reading.trusted and reading.source == "lead_phone"


def test_better_source_is_kept_worse_one_ignored(tmp_path):
    clock = FakeClock(T0, synchronized=False)
    keeper = TimeKeeper(clock, tmp_path / "clock.json")
    keeper.learn(T0 + timedelta(minutes=30), "centre", uncertainty_s=0.1)
    clock.advance(minutes=1)
    kept = keeper.learn(T0 + timedelta(minutes=40), "lead_phone", uncertainty_s=3.0)
    assert kept.source == "centre"
    assert keeper.read().shown == T0 + timedelta(minutes=31)
    # Hours later the centre's anchor has aged (drift): a fresh phone reading wins.
    clock.advance(hours=20)
    newer = keeper.learn(
        T0 + timedelta(hours=20, minutes=31, seconds=1), "lead_phone", uncertainty_s=3.0
    )
    assert newer.source == "lead_phone"


def test_offsets_are_recorded_per_boot_and_reloaded(tmp_path):
    clock = FakeClock(T0, synchronized=False, boot_id="boot-1")
    keeper = TimeKeeper(clock, tmp_path / "clock.json")
    keeper.learn(T0 + timedelta(minutes=45), "centre", uncertainty_s=0.3)
    event_mono = clock.monotonic_ns()
    clock.reboot("boot-2", wall=T0 + timedelta(hours=2))
    keeper.learn(T0 + timedelta(hours=2, minutes=5), "lead_phone", uncertainty_s=2)

    again = TimeKeeper(clock, tmp_path / "clock.json")
    assert [(a.boot_id, a.offset) for a in again.anchors()] == [
        ("boot-1", timedelta(minutes=45)),
        ("boot-2", timedelta(minutes=5)),
    ]
    # An untrusted event of boot 1 is dated by boot 1's anchor, not by today's.
    assert again.true_time_of(T0, "boot-1", event_mono, False) == T0 + timedelta(minutes=45)
    assert again.true_time_of(T0, "boot-9", 0, False) == T0  # nothing known: raw time
    assert again.true_time_of(T0, "boot-1", event_mono, True) == T0  # it was right already
    stored = json.loads((tmp_path / "clock.json").read_text())
    assert stored["anchors"][0]["offset_s"] == 2700.0


def test_ntp_synchronisation_dates_the_earlier_untrusted_events_of_the_boot():
    clock = FakeClock(T0, synchronized=False)
    keeper = TimeKeeper(clock)
    before = keeper.read()  # an event made while the clock was 20 min behind
    clock.advance(minutes=3)
    clock.jump(timedelta(minutes=20))
    clock.set_synchronized(True)
    reading = keeper.read()
    assert reading.trusted and reading.source == "ntp"
    corrected = keeper.true_time_of(before.wall, before.boot_id, before.monotonic_ns, False)
    assert corrected == T0 + timedelta(minutes=20)


def test_learn_needs_an_aware_time():
    keeper = TimeKeeper(FakeClock(T0))
    with pytest.raises(ValueError, match="UTC offset"):
        keeper.learn(datetime(2026, 11, 29, 6, 0), "centre", uncertainty_s=1)


def test_unreadable_clock_state_starts_without_offsets(tmp_path):
    (tmp_path / "clock.json").write_text("{not json")
    keeper = TimeKeeper(FakeClock(T0, synchronized=False), tmp_path / "clock.json")
    assert keeper.anchors() == []
    assert keeper.read().shown == T0


def test_fake_clock_refuses_to_run_backwards():
    clock = FakeClock(T0)
    with pytest.raises(ValueError):
        clock.advance(seconds=-1)
