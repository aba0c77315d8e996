"""Every other file the kiosk writes, torn as a power cut or a bad sector leaves it: the kiosk
still starts, still scans, and says what it found."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from kiosk import enrolment
from kiosk import settings as kiosk_settings
from kiosk.app import create_app
from kiosk.cli import main as kiosk_cli
from kiosk.clock import TimeKeeper
from kiosk.store import FailedScanLog
from kiosk.web.auth import SECRET_FILE, load_secret_key
from kiosk.web.status import item_words, readiness
from tests.fakes.clock import FakeClock
from tests.kiosk_web.helpers import CST, PIN, write_roster

NOW = datetime(2026, 11, 29, 5, 20, tzinfo=CST)
FILES = [
    "kiosk.toml",
    "roster.json",
    "clock.json",
    "failed-scans.log",
    "sync_state.json",
    "sync_token",
    SECRET_FILE,
]


def enrolled_instance(folder: Path, key) -> Path:
    """An instance as a kiosk in service has it: enrolled, settings rewritten by the centre
    once (so the copies from before exist), clock offsets learnt, a refused scan logged."""
    instance = folder / "instance"
    instance.mkdir()
    toml = instance / kiosk_settings.SETTINGS_FILE
    toml.write_text(f'lead_pin = "{PIN}"\ncamera_source = "demo"\nlanguage = "zh-CN"\n')
    enrolment.update_toml(
        toml, {"kiosk_id": "kiosk-t1", "site_id": "site-1", "site_name": "东湖街道集合点"}
    )
    enrolment.update_toml(toml, {"repeat_window_s": 90.0})
    write_roster(instance, key)
    write_roster(instance, key)  # a second pull: the first kept as roster.prev.json
    keeper = TimeKeeper(FakeClock(NOW), instance / "clock.json")
    keeper.learn(NOW + timedelta(seconds=40), "lead_phone", uncertainty_s=1.0)
    failed = FailedScanLog(instance / "failed-scans.log")
    failed.record("malformed", "NOT-A-BADGE", "camera", NOW)
    enrolment.save_state(instance, enrolment.SyncState(keys_version="k1", settings_version=2))
    enrolment.save_token(instance, "t" * 40)
    load_secret_key(instance)
    return instance


def tear(path: Path, how: str) -> None:
    """What a power cut or a bad sector leaves: the start of the file and then garbage, or the
    whole file zeros (its size on disk, its data never written)."""
    content = path.read_bytes()
    if how == "cut":
        path.write_bytes(content[: len(content) // 2] + b"\xff\xfe\x00garb")
    else:
        path.write_bytes(bytes(len(content)))


def start(instance: Path):
    return create_app(
        instance,
        clock=FakeClock(NOW),
        scan_loop_factory=lambda services: None,
        sync_agent_factory=lambda services: None,
    )


@pytest.mark.parametrize("how", ["cut", "zeros"])
@pytest.mark.parametrize("name", FILES)
def test_a_torn_file_does_not_stop_the_kiosk_from_starting_or_scanning(
    tmp_path, issuing_key, name, how
):
    from datetime import date

    from sync.badge_token import issue_token

    instance = enrolled_instance(tmp_path, issuing_key)
    tear(instance / name, how)
    app = start(instance)
    services = app.extensions["kiosk"]
    try:
        # Who the kiosk is survives: from kiosk.toml's copy from before its last rewrite.
        assert services.settings.kiosk_id == "kiosk-t1"
        assert services.settings.site_id == "site-1"
        badge = issue_token(issuing_key, "C001", 1, date(2026, 11, 1))
        message = services.handle_payload(badge, "camera")
        event = services.log.event(1)
        assert event is not None and event.cadre_id == "C001" and event.kiosk_id == "kiosk-t1"
        assert message["outcome"] == "arrival"
        services.handle_payload("SOMETHING-ELSE", "camera")
        refused = services.failed_scans.recent(5)
        assert refused and refused[0].payload == "SOMETHING-ELSE"
        with app.test_request_context("/lead"):
            items = {item.key: item for item in readiness(services)}
            words = {key: item_words(item)[1] for key, item in items.items()}
        if name == "kiosk.toml":
            assert "kiosk.toml" in words["settings"] and items["settings"].state == "bad"
        if name == "roster.json":
            assert items["roster"].state == "bad"  # says it runs on the previous roster
        secret = (instance / SECRET_FILE).read_bytes()
        assert len(secret) >= 32 and any(secret)  # never a key of zeros anyone could sign with
    finally:
        services.stop()


def test_a_damaged_kiosk_toml_without_a_previous_copy_keeps_the_lines_that_read(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "kiosk.toml").write_bytes(
        b'kiosk_id = "kiosk-t9"\nsite_id = "site-9"\ncamera_fps = 1\xff\xfe\nlead_pin = "13'
    )
    settings = kiosk_settings.load_at_start(instance, env={})
    assert (settings.kiosk_id, settings.site_id, settings.lead_pin) == ("kiosk-t9", "site-9", "")
    assert settings.camera_fps == kiosk_settings.KioskSettings().camera_fps
    assert kiosk_settings.damaged_file(instance) == "lines"
    # A check of the settings still fails loudly, naming the file.
    result = CliRunner().invoke(kiosk_cli, ["--instance", str(instance), "check-config"])
    assert result.exit_code == 2 and "kiosk.toml" in result.output


def test_settings_from_the_centre_on_a_damaged_kiosk_toml_keep_what_reads(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    toml = instance / "kiosk.toml"
    toml.write_bytes(b'kiosk_id = "kiosk-t9"\nsite_id = "site-9"\nsite_name = "\xe4\xb8')
    enrolment.update_toml(toml, {"repeat_window_s": 60.0})
    data = kiosk_settings.load(instance, env={})
    assert (data.kiosk_id, data.site_id, data.repeat_window_s) == ("kiosk-t9", "site-9", 60.0)
    assert not (instance / kiosk_settings.PREVIOUS_FILE).exists()  # a damaged file is no copy


def test_the_failed_scan_log_starts_a_line_of_its_own_after_a_torn_one(tmp_path):
    path = tmp_path / "failed-scans.log"
    first = FailedScanLog(path)
    first.record("malformed", "AAA", "camera", datetime(2026, 11, 29, tzinfo=UTC))
    path.write_bytes(path.read_bytes() + b'{"at": "2026-11-29T00:01:00+00:00", "rea')
    again = FailedScanLog(path)
    again.record("revoked", "BBB", "camera", datetime(2026, 11, 29, 0, 2, tzinfo=UTC))
    assert [entry.payload for entry in again.recent()] == ["BBB", "AAA"]
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[-1])["payload"] == "BBB"


def test_what_the_log_lost_at_a_start_reaches_the_lead_and_the_heartbeat(tmp_path, issuing_key):
    """Records gone bad on the card are lost: the lead's panel says so at the next start,
    and so does the heartbeat for the centre."""
    from datetime import date

    from kiosk.fleet import recovery_note
    from sync.badge_token import issue_token

    instance = enrolled_instance(tmp_path, issuing_key)
    app = start(instance)
    services = app.extensions["kiosk"]
    try:
        for n, cadre in enumerate(("C001", "C002", "C003"), start=1):
            badge = issue_token(issuing_key, cadre, 1, date(2026, 11, 1))
            assert services.handle_payload(badge, "camera")["outcome"] == "arrival", n
        with app.test_request_context("/lead"):
            clean = {item.key: item for item in readiness(services)}["recovery"]
            assert (clean.state, clean.code) == ("ok", "clean")
            assert item_words(clean)[1].startswith("完好")
        first = recovery_note(services.log.recovery, services.log_opened_at)
        assert first is not None and first.lost_events == 0
    finally:
        services.stop()

    # The stop folded the journal into a segment; the card loses its end (a bad block).
    (segment,) = (instance / "log" / "segments").glob("seg-*.json")
    content = segment.read_bytes()
    segment.write_bytes(content[: content.index(b'"C002"')])

    app = start(instance)
    services = app.extensions["kiosk"]
    try:
        assert [e.cadre_id for e in services.log.iter_events()] == ["C001"]
        with app.test_request_context("/lead"):
            lost = {item.key: item for item in readiness(services)}["recovery"]
            words = item_words(lost)[1]
        assert (lost.state, lost.code, lost.values["lost_events"]) == ("bad", "lost", 2)
        assert "2 条记录无法读回" in words
        note = recovery_note(services.log.recovery, services.log_opened_at)
        assert note is not None and (note.clean, note.lost, note.lost_events) == (False, True, 2)
        assert "lost" in note.summary
        # It travels in the heartbeat as the wire schema says.
        from sync.protocol import Heartbeat

        beat = Heartbeat.model_validate(
            {
                "queue_length": 0,
                "camera": {"ok": True},
                "clock": {"trusted": True, "boot_id": "b"},
                "ready": True,
                "fleet": {"recovery": note.model_dump(mode="json")},
            }
        )
        assert beat.fleet is not None and beat.fleet.recovery == note
    finally:
        services.stop()
