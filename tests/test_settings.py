from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from central import settings as central_settings
from kiosk import settings as kiosk_settings
from sync.config import SettingsError

ROOT = Path(__file__).resolve().parent.parent


def test_docs_list_every_setting():
    spec = importlib.util.spec_from_file_location(
        "settings_doc", ROOT / "scripts" / "settings_doc.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    on_disk = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert on_disk == module.render(), (
        "docs/settings.md is stale: run python scripts/settings_doc.py"
    )
    for model in (kiosk_settings.KioskSettings, central_settings.CentralSettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{name} has no help line"
            assert f"`{name}`" in on_disk


def test_defaults_load(tmp_path):
    assert kiosk_settings.load(tmp_path, env={}).repeat_window_s == 120
    assert central_settings.load(tmp_path, env={}).listen_port == 8000


def test_toml_and_env_priority(tmp_path):
    (tmp_path / "kiosk.toml").write_text(
        'repeat_window_s = 30\nsite_id = "S01"\n', encoding="utf-8"
    )
    s = kiosk_settings.load(tmp_path, env={"KIOSK_REPEAT_WINDOW_S": "45"})
    assert s.repeat_window_s == 45 and s.site_id == "S01"


def test_unknown_key_in_file_is_refused_with_file_and_key(tmp_path):
    (tmp_path / "kiosk.toml").write_text("repeat_windw_s = 30\n", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        kiosk_settings.load(tmp_path, env={})
    assert "kiosk.toml" in str(err.value) and "repeat_windw_s" in str(err.value)


def test_unknown_env_var_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="KIOSK_CAMRA_SOURCE"):
        kiosk_settings.load(tmp_path, env={"KIOSK_CAMRA_SOURCE": "usb"})


def test_bad_values_name_source_key_and_reason(tmp_path):
    (tmp_path / "kiosk.toml").write_text(
        'timezone = "Mars/Olympus"\nservice_day_start = "25:00"\n', encoding="utf-8"
    )
    with pytest.raises(SettingsError) as err:
        kiosk_settings.load(tmp_path, env={"KIOSK_LISTEN_PORT": "http"})
    keys = {p.key for p in err.value.problems}
    assert keys == {"timezone", "service_day_start", "listen_port"}
    by_key = {p.key: p for p in err.value.problems}
    assert "Mars/Olympus" in by_key["timezone"].reason
    assert by_key["listen_port"].source == "environment KIOSK_LISTEN_PORT"


def test_broken_toml_is_reported(tmp_path):
    (tmp_path / "central.toml").write_text("database_url = \n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        central_settings.load(tmp_path, env={})


def test_check_config_commands(tmp_path):
    from click.testing import CliRunner

    from central.cli import main as central_main
    from kiosk.cli import main as kiosk_main

    runner = CliRunner()
    ok = runner.invoke(kiosk_main, ["--instance", str(tmp_path), "check-config"], env={})
    assert ok.exit_code == 0 and "repeat_window_s = 120.0" in ok.output
    (tmp_path / "central.toml").write_text("listen_port = 0\n", encoding="utf-8")
    bad = runner.invoke(central_main, ["--instance", str(tmp_path), "check-config"])
    assert bad.exit_code == 2 and "listen_port" in bad.output
