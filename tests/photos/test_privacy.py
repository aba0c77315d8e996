"""Photos said and enforced: photo_capture pushed per site reaches the kiosk; the screen says
photos are taken, and only then."""

from __future__ import annotations

from click.testing import CliRunner

from central import kiosks
from central.cli import main as central_cli
from central.db.engine import make_engine
from kiosk import settings as kiosk_settings
from kiosk.enrolment import apply_settings
from kiosk.photos import PhotoStore
from tests.kiosk_web.helpers import LOCAL, make_kit
from tests.sync.helpers import enrolled, load_roster


def test_photo_capture_pushed_for_a_site_is_applied_by_its_kiosk(tmp_path):
    centre = tmp_path / "centre"
    runner = CliRunner(env={"CENTRAL_INSTANCE": None, "CENTRAL_BADGE_FONT_FILE": None})
    assert runner.invoke(central_cli, ["--instance", str(centre), "init"]).exit_code == 0
    engine = make_engine(f"sqlite:///{centre / 'central.db'}")
    load_roster(engine, {"S01": ["C1"], "S02": ["C2"]})
    result = runner.invoke(
        central_cli,
        ["--instance", str(centre), "kiosk", "set", "--site", "S01", "photo_capture=true"],
    )
    assert result.exit_code == 0, result.output
    assert "site:S01 photo_capture = true" in result.output
    result = runner.invoke(
        central_cli,
        ["--instance", str(centre), "kiosk", "set", "--all", "photo_retention_days=14"],
    )
    assert result.exit_code == 0, result.output
    kiosk_id, _ = enrolled(engine, "S01")
    other_id, _ = enrolled(engine, "S02")
    with engine.connect() as conn:
        here = kiosks.settings_answer(conn, kiosks.KioskIdentity(kiosk_id, "S01"), 0)
        there = kiosks.settings_answer(conn, kiosks.KioskIdentity(other_id, "S02"), 0)
    assert here is not None and there is not None
    assert here.values == {"photo_capture": True, "photo_retention_days": 14}
    assert there.values == {"photo_retention_days": 14}
    instance = tmp_path / "kiosk"
    instance.mkdir()
    assert apply_settings(instance, here) == ""
    loaded = kiosk_settings.load(instance, env={})
    assert loaded.photo_capture is True and loaded.photo_retention_days == 14


def test_screen_says_photos_are_taken_only_when_they_are(tmp_path, issuing_key):
    (tmp_path / "off").mkdir()
    (tmp_path / "on").mkdir()
    off = make_kit(tmp_path / "off", issuing_key)
    on = make_kit(tmp_path / "on", issuing_key, photo_capture=True, photo_retention_days=14)
    try:
        page_off = off.app.test_client().get("/", environ_base=LOCAL).get_data(as_text=True)
        page_on = on.app.test_client().get("/", environ_base=LOCAL).get_data(as_text=True)
    finally:
        off.services.stop()
        on.services.stop()
    assert "签到时拍照" not in page_off and "photo-notice" not in page_off
    assert "签到时拍照，保存 14 天" in page_on


def test_kiosk_retention_runs_once_a_day_from_the_status_ticker(tmp_path, issuing_key):
    kit = make_kit(tmp_path, issuing_key, photo_capture=True, photo_retention_days=30)
    try:
        services = kit.services
        calls = []
        original = PhotoStore.purge

        def spy(store, today):
            calls.append(today)
            return original(store, today)

        services.photos.purge = spy.__get__(services.photos)
        services.purge_photos()
        services.purge_photos()
        assert len(calls) == 1 and str(calls[0]) == "2026-11-29"
    finally:
        kit.services.stop()
