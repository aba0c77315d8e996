"""The check-in rules of DESIGN.md, driven by a fake clock."""

from __future__ import annotations

import base64
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.clock import TimeKeeper
from kiosk.roster import CadreEntry, RosterSnapshot, RosterStore
from kiosk.rules import CheckIn, RuleSettings, normalise_wedge_input
from kiosk.store import EventLog, FailedScanLog, StoreConfig
from sync.badge_token import issue_token, public_key_to_text
from tests.fakes.clock import FakeClock
from tests.kiosk_core.support import FaultyDisk

SHANGHAI = ZoneInfo("Asia/Shanghai")
ISSUED = date(2026, 11, 1)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


@dataclass
class Kiosk:
    rules: CheckIn
    clock: FakeClock
    log: EventLog
    keeper: TimeKeeper
    failed: FailedScanLog
    disk: FaultyDisk
    roster: RosterStore
    key: Ed25519PrivateKey
    folder: Path

    def badge(self, cadre_id: str, serial: int = 1) -> str:
        return issue_token(self.key, cadre_id, serial, ISSUED)

    def scan(self, cadre_id: str, serial: int = 1):
        return self.rules.scan(self.badge(cadre_id, serial))


def make_kiosk(folder: Path, key: Ed25519PrivateKey, keyring, **rule_overrides) -> Kiosk:
    clock = FakeClock(at(29, 5, 20))
    roster = RosterStore(folder)
    roster.save(
        RosterSnapshot(
            version=3,
            site_id="S01",
            cadres={
                "C0001": CadreEntry(name="宋昕", unit="一组", site_id="S01"),
                "C0002": CadreEntry(name="李娜", unit="二组", site_id="S02"),
                "C0003": CadreEntry(name="王强", unit="一组", site_id="S01"),
                "C0004": CadreEntry(name="赵敏", unit="一组", site_id="S01"),
                "C0005": CadreEntry(name="陈晨", unit="三组", site_id="S01"),
            },
            public_keys={kid: public_key_to_text(k) for kid, k in keyring.items()},
            revoked_through={"C0003": 1},
        )
    )
    disk = FaultyDisk()
    log = EventLog(folder / "log", StoreConfig(segment_events=50, checkpoint_events=5), disk=disk)
    keeper = TimeKeeper(clock, folder / "clock.json")
    failed = FailedScanLog(
        folder / "failed-scans.jsonl", per_minute=5, monotonic=lambda: clock.monotonic_ns() / 1e9
    )
    settings = RuleSettings(timezone=SHANGHAI, **rule_overrides)
    rules = CheckIn(
        log,
        lambda: roster.current,
        keeper,
        settings,
        kiosk_id="k1",
        site_id="S01",
        failed_scans=failed,
    )
    return Kiosk(rules, clock, log, keeper, failed, disk, roster, key, folder)


@pytest.fixture
def kiosk(tmp_path, issuing_key, keyring):
    made = make_kiosk(tmp_path, issuing_key, keyring)
    yield made
    made.log.close()


def test_toggle_and_repeat_window(kiosk):
    first = kiosk.scan("C0001")
    assert first.result == "arrival" and first.name == "宋昕"
    assert first.message == "Welcome, 宋昕 — arrived 05:20"
    assert first.event.kind == "arrival" and first.event.cadre_id == "C0001"
    assert first.event.device_time == kiosk.clock.now() and first.event.clock_trusted

    kiosk.clock.advance(seconds=60)
    again = kiosk.scan("C0001")
    assert again.result == "repeat" and again.event is None
    assert again.message == "Already checked in 05:20"
    assert kiosk.log.last_seq == 1

    kiosk.clock.advance(hours=9, minutes=11)
    leaving = kiosk.scan("C0001")
    assert leaving.result == "departure"
    assert leaving.worked == timedelta(hours=9, minutes=12)
    assert leaving.message == "Goodbye, 宋昕 — 9 h 12 min"

    kiosk.clock.advance(seconds=90)
    assert kiosk.scan("C0001").message == "Already checked out 14:32"

    kiosk.clock.advance(minutes=5)
    back = kiosk.scan("C0001")
    assert back.result == "arrival" and back.flags == ()
    assert [e.kind for e in kiosk.log.iter_events()] == ["arrival", "departure", "arrival"]


def test_event_is_durable_when_scan_returns(kiosk, tmp_path):
    outcome = kiosk.scan("C0001")
    # Whatever is on disk the instant scan() returns is what a power cut would leave.
    shutil.copytree(kiosk.log.directory, tmp_path / "after-power-cut")
    with EventLog(tmp_path / "after-power-cut") as survived:
        assert survived.event(1) == outcome.event


def test_repeat_window_is_a_setting(tmp_path, issuing_key, keyring):
    kiosk = make_kiosk(tmp_path, issuing_key, keyring, repeat_window=timedelta(0))
    kiosk.scan("C0001")
    kiosk.clock.advance(seconds=1)
    assert kiosk.scan("C0001").result == "departure"
    kiosk.log.close()


def test_forgotten_departure_across_midnight(kiosk):
    kiosk.clock.set_wall(at(29, 18, 0))
    kiosk.scan("C0001")
    kiosk.clock.advance(hours=13)  # 07:00 next morning: within 16 h, but a new service day
    outcome = kiosk.scan("C0001")
    assert outcome.result == "arrival"
    assert "previous_arrival_without_departure" in outcome.flags
    assert outcome.event.flags == ["previous_arrival_without_departure"]
    yesterday = kiosk.rules.presence(date(2026, 11, 29))
    assert yesterday["C0001"].state == "no_departure"
    assert kiosk.rules.presence()["C0001"].state == "present"


def test_night_shift_before_the_service_day_starts_is_one_day(kiosk):
    kiosk.clock.set_wall(at(29, 22, 0))
    kiosk.scan("C0001")
    kiosk.clock.advance(hours=4, minutes=30)  # 02:30: still the same service day (starts 03:00)
    outcome = kiosk.scan("C0001")
    assert outcome.result == "departure" and outcome.worked == timedelta(hours=4, minutes=30)


def test_arrival_older_than_the_longest_shift(kiosk, tmp_path, issuing_key, keyring):
    kiosk.clock.set_wall(at(29, 3, 10))
    kiosk.scan("C0001")
    kiosk.clock.advance(hours=16, minutes=10)  # 19:20, same service day, 16 h 10 min later
    outcome = kiosk.scan("C0001")
    assert outcome.result == "arrival"
    assert outcome.flags == ("previous_arrival_without_departure",)

    longer = make_kiosk(tmp_path / "long", issuing_key, keyring, longest_shift=timedelta(hours=20))
    longer.clock.set_wall(at(29, 3, 10))
    longer.scan("C0001")
    longer.clock.advance(hours=16, minutes=10)
    assert longer.scan("C0001").result == "departure"
    longer.log.close()


def test_clock_jumping_backwards_never_reorders(kiosk):
    kiosk.scan("C0001")
    kiosk.clock.jump(timedelta(hours=-1))
    kiosk.clock.advance(seconds=60)
    assert kiosk.scan("C0001").result == "repeat"  # one minute passed, whatever the wall says
    kiosk.clock.advance(minutes=4)
    outcome = kiosk.scan("C0001")
    assert outcome.result == "departure"
    assert outcome.worked == timedelta(minutes=5)
    first, second = list(kiosk.log.iter_events())
    assert second.seq > first.seq
    assert second.device_time < first.device_time  # the raw wall time is kept as it was


def test_clock_jumping_forwards_a_day_does_not_close_the_shift_wrongly(kiosk):
    kiosk.scan("C0001")
    kiosk.clock.jump(timedelta(hours=20))
    kiosk.clock.advance(minutes=30)
    outcome = kiosk.scan("C0001")
    assert outcome.result == "departure" and outcome.worked == timedelta(minutes=30)


def test_power_cut_with_a_stale_clock_then_the_leads_phone_sets_the_time(kiosk):
    kiosk.scan("C0001")  # 05:20, NTP-synchronised
    # Power cut: the Pi comes back 40 minutes later believing it is 04:50, not synchronised.
    kiosk.clock.reboot("boot-2", wall=at(29, 4, 50))
    outcome = kiosk.scan("C0001")
    assert outcome.event.clock_trusted is False
    assert "clock_uncertain" in outcome.flags  # before the arrival, by the clocks: cannot tell
    assert outcome.worked is None

    true_now = at(29, 6, 0)
    kiosk.keeper.learn(true_now, "lead_phone", uncertainty_s=2.0)
    kiosk.clock.advance(minutes=10)
    later = kiosk.scan("C0004")
    assert later.time_shown == true_now + timedelta(minutes=10)
    assert later.clock_trusted is False  # the wall clock itself is still 70 minutes off
    assert later.event.device_time == at(29, 5, 0)  # stored raw, never rewritten
    assert later.message.endswith("arrived 06:10")
    anchor = kiosk.keeper.anchor("boot-2")
    assert anchor.source == "lead_phone" and anchor.offset == timedelta(minutes=70)
    assert kiosk.rules.true_time(later.event) == true_now + timedelta(minutes=10)


def test_revoked_badge_is_refused_and_logged(kiosk):
    outcome = kiosk.scan("C0003", serial=1)
    assert outcome.result == "refused" and outcome.reason == "revoked"
    assert outcome.message == "Refused: badge has been revoked"
    assert outcome.event is None and kiosk.log.last_seq == 0
    logged = kiosk.failed.recent()
    assert [(f.reason, f.source) for f in logged] == [("revoked", "camera")]
    assert logged[0].payload.startswith("CB1")
    # A re-issued badge with a higher serial works.
    assert kiosk.scan("C0003", serial=2).result == "arrival"


def test_forged_malformed_and_foreign_codes_are_refused(kiosk):
    stranger = Ed25519PrivateKey.generate()
    genuine = kiosk.badge("C0001")
    raw = bytearray(base64.b32decode(genuine[3:] + "=" * (-len(genuine[3:]) % 8)))
    raw[-1] ^= 0x01
    altered = "CB1" + base64.b32encode(bytes(raw)).decode().rstrip("=")
    cases = {
        issue_token(stranger, "C0001", 1, ISSUED): "unknown_key",
        altered: "bad_signature",
        "CB1AAAA": "malformed",
        "https://example.com/menu": "foreign",
    }
    for payload, reason in cases.items():
        outcome = kiosk.rules.scan(payload)
        assert (outcome.result, outcome.reason) == ("refused", reason)
        assert outcome.message.startswith("Refused: ") and len(outcome.message) > 12
    assert kiosk.log.last_seq == 0
    assert {f.reason for f in kiosk.failed.recent()} == set(cases.values())


def test_badge_of_another_site_is_accepted_and_flagged(kiosk):
    other_site = kiosk.scan("C0002")
    assert other_site.result == "arrival" and other_site.name == "李娜"
    assert other_site.flags == ("not_on_roster",)
    assert other_site.event.flags == ["not_on_roster"]
    unknown = kiosk.scan("C0999")
    assert unknown.result == "arrival" and unknown.name is None
    assert unknown.flags == ("not_on_roster",) and "C0999" in unknown.message
    assert kiosk.scan("C0001").flags == ()


def test_keyboard_wedge_goes_through_the_same_rules(kiosk):
    typed = "\x02" + kiosk.badge("C0001").lower() + "\r\n"  # Caps Lock on, STX prefix, Enter
    assert normalise_wedge_input(typed) == kiosk.badge("C0001")
    outcome = kiosk.rules.scan_wedge(typed)
    assert outcome.result == "arrival" and outcome.event.source == "wedge"
    kiosk.clock.advance(seconds=10)
    assert kiosk.rules.scan_wedge(typed).result == "repeat"
    assert kiosk.rules.scan_wedge("hello\n").reason == "foreign"


def test_manual_check_in_and_out_by_the_site_lead(kiosk):
    with pytest.raises(ValueError, match="operator and a reason"):
        kiosk.rules.manual("C0001", "arrival", operator="lead", reason=" ")
    arrival = kiosk.rules.manual("C0001", "arrival", operator="lead-1", reason="badge forgotten")
    assert arrival.result == "arrival" and arrival.event.source == "manual"
    assert (arrival.event.operator, arrival.event.reason) == ("lead-1", "badge forgotten")
    kiosk.clock.advance(hours=12)
    with pytest.raises(ValueError, match="future"):
        kiosk.rules.manual("C0001", "departure", operator="l", reason="r", at=at(29, 23, 0))
    leaving = kiosk.rules.manual(
        "C0001", "departure", operator="lead-1", reason="left without scanning", at=at(29, 17, 0)
    )
    assert leaving.worked == timedelta(hours=11, minutes=40)
    assert leaving.event.device_time == at(29, 17, 0)
    assert "time_entered_by_operator" in leaving.event.flags
    stray = kiosk.rules.manual("C0004", "departure", operator="lead-1", reason="asked")
    assert "departure_without_arrival" in stray.flags


def test_void_restores_the_state_before_the_voided_event(kiosk):
    kiosk.scan("C0001")
    kiosk.clock.advance(minutes=30)
    wrong = kiosk.scan("C0001")  # scanned by mistake: counted as a departure
    assert wrong.result == "departure"
    void = kiosk.rules.void(wrong.event.event_id, operator="lead-1", reason="scanned by mistake")
    assert void.kind == "void" and void.corrects == wrong.event.event_id
    assert void.cadre_id == "C0001"
    kiosk.clock.advance(hours=8)
    assert kiosk.scan("C0001").result == "departure"  # the arrival is open again
    with pytest.raises(LookupError):
        kiosk.rules.void("00000000-0000-0000-0000-000000000000", operator="l", reason="r")
    # A void of the void is the lead's undo: the departure counts again, once.
    undo = kiosk.rules.void(void.event_id, operator="l", reason="it was right after all")
    assert undo.corrects == void.event_id
    assert [r.kind for r in kiosk.log.recent("C0001")][-2:] == ["departure", "departure"]
    with pytest.raises(ValueError, match="undo cannot be undone"):
        kiosk.rules.void(undo.event_id, operator="l", reason="r")


def test_correction_replaces_the_time_of_an_arrival(kiosk):
    arrival = kiosk.scan("C0001").event
    fixed = kiosk.rules.correct(
        arrival.event_id, operator="lead-1", reason="queue at the gate", at=at(29, 5, 0)
    )
    assert fixed.corrects == arrival.event_id and fixed.kind == "arrival"
    assert fixed.device_time == at(29, 5, 0)
    kiosk.clock.advance(hours=9)  # 14:20
    assert kiosk.scan("C0001").worked == timedelta(hours=9, minutes=20)
    assert kiosk.log.event(arrival.seq) == arrival  # the original is kept, never edited


def test_full_disk_refuses_the_scan_and_recovers(kiosk):
    kiosk.disk.fill_up(partial_bytes=30)
    outcome = kiosk.scan("C0001")
    assert outcome.result == "refused" and outcome.reason == "store_full"
    assert "disk is full" in outcome.message and outcome.name == "宋昕"
    assert kiosk.log.last_seq == 0
    kiosk.disk.make_read_only()
    assert kiosk.scan("C0001").reason == "store_read_only"
    kiosk.disk.recover()
    assert kiosk.scan("C0001").result == "arrival"
    assert kiosk.log.last_seq == 1


def test_presence_absence_and_the_days_events(kiosk):
    kiosk.scan("C0001")
    kiosk.scan("C0004")
    kiosk.clock.advance(hours=8)
    kiosk.scan("C0004")
    presence = kiosk.rules.presence()
    assert presence["C0001"].state == "present"
    assert presence["C0004"].state == "departed"
    assert presence["C0004"].worked == timedelta(hours=8)
    assert kiosk.rules.absent() == ["C0003", "C0005"]
    today = kiosk.rules.events_of_day(date(2026, 11, 29))
    assert [e.cadre_id for e in today] == ["C0001", "C0004", "C0004"]
    assert kiosk.rules.events_of_day(date(2026, 11, 28)) == []
    assert kiosk.rules.last_event("C0004").kind == "departure"


def test_failed_scan_log_is_rate_limited(kiosk):
    for n in range(12):
        kiosk.rules.scan(f"https://example.com/poster-{n}")
    for _ in range(30):
        kiosk.rules.scan("https://example.com/poster-0")
    assert len(kiosk.failed.recent(100)) == 5
    kiosk.clock.advance(seconds=61)
    kiosk.rules.scan("https://example.com/another")
    newest = kiosk.failed.recent(1)[0]
    assert newest.payload == "https://example.com/another"
    assert newest.suppressed_before == 37
    kiosk.rules.scan("X" * 500)
    assert len(kiosk.failed.recent(1)[0].payload) == 65  # 64 characters and an ellipsis


def test_kind_chosen_on_screen_replaces_the_toggle(kiosk):
    badge = kiosk.badge("C0001")
    arrival = kiosk.rules.scan(badge, kind="arrival")
    assert arrival.result == "arrival" and arrival.flags == ("kind_chosen_on_screen",)
    kiosk.clock.advance(seconds=30)
    assert kiosk.rules.scan(badge, kind="arrival").result == "repeat"  # a double scan
    leaving = kiosk.rules.scan(badge, kind="departure")  # changed their mind: inside the window
    assert leaving.result == "departure" and leaving.worked == timedelta(seconds=30)
    kiosk.clock.advance(minutes=5)
    stray = kiosk.rules.scan(badge, kind="departure")
    assert stray.result == "departure" and stray.worked is None
    assert set(stray.flags) == {"kind_chosen_on_screen", "departure_without_arrival"}
    kiosk.clock.advance(minutes=5)
    kiosk.rules.scan(badge)  # toggles: an arrival
    kiosk.clock.advance(minutes=5)
    twice = kiosk.rules.scan(badge, kind="arrival")
    assert twice.result == "arrival"
    assert "previous_arrival_without_departure" in twice.flags


def test_every_scan_record_carries_the_badge_it_was_read_from(kiosk, tmp_path):
    """The token travels with the record so the centre can check it; the lead's entries, voids
    and corrections carry none (they are the lead's word, counted apart)."""
    camera = kiosk.scan("C0001").event
    assert camera.badge_token == kiosk.badge("C0001")
    kiosk.clock.advance(minutes=5)
    typed = "\x02" + kiosk.badge("C0004").lower() + "\r\n"
    wedge = kiosk.rules.scan_wedge(typed).event
    assert wedge.source == "wedge" and wedge.badge_token == kiosk.badge("C0004")
    manual = kiosk.rules.manual("C0005", "arrival", operator="lead", reason="no badge").event
    void = kiosk.rules.void(camera.event_id, operator="lead", reason="scanned by mistake")
    assert (manual.badge_token, void.badge_token) == (None, None)
    # Kept on disk with the record, covered by its hash.
    shutil.copytree(kiosk.log.directory, tmp_path / "copy")
    with EventLog(tmp_path / "copy") as reopened:
        stored = reopened.event(camera.seq)
    assert stored.badge_token == camera.badge_token and stored.hash_is_valid()
