"""kiosk.service: systemd accepts it, and it keeps the promises of DESIGN.md "On the Pi"."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "kiosk.service"
OPT = "/opt/cadre-kiosk"


def unit_settings() -> dict[str, list[str]]:
    """Every `Key=value` of the unit, keys repeated as often as they appear."""
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key.strip(), []).append(value.strip())
    return values


def exec_start_binary() -> str:
    return unit_settings()["ExecStart"][0].split()[0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(tmp_path):
    # verify insists that ExecStart's binary exists: on the Pi (and in `make test-arm64`) the
    # installer verifies the unit it installed, next to the real venv. Here a stub stands at a
    # temporary path and only that path is changed in a copy of the unit.
    for link in ("current", "good"):  # ExecStart, and the update guard's ExecStartPre/Post
        stub = tmp_path / link / "bin" / "kiosk"
        stub.parent.mkdir(parents=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    assert exec_start_binary() == f"{OPT}/current/bin/kiosk"
    copy = tmp_path / "kiosk.service"
    copy.write_text(UNIT.read_text().replace(OPT, str(tmp_path)))

    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    # Unknown keys and bad values are only warnings to systemd (exit 0): any output is a failure.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_unit_is_a_watched_notify_service_restarted_on_failure():
    unit = unit_settings()
    assert unit["Type"] == ["notify"]
    assert int(unit["WatchdogSec"][0]) > 0
    assert unit["Restart"] == ["on-failure"]
    assert unit["ExecStart"][0].endswith("/bin/kiosk run")


def test_unit_runs_as_its_own_user_in_group_video_with_a_state_directory():
    unit = unit_settings()
    assert unit["User"] == ["kiosk"]
    assert "video" in unit["SupplementaryGroups"][0].split()
    assert unit["StateDirectory"] == ["kiosk"]
    assert "DynamicUser" not in unit


def test_hardening_keeps_the_camera_devices():
    unit = unit_settings()
    assert "PrivateDevices" not in unit, "PrivateDevices= hides /dev/video*"
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectHome"] == ["yes"]
    if unit.get("DevicePolicy", ["auto"])[0] != "auto" or "ProtectClock" in unit:
        allowed = {value.split()[0] for value in unit.get("DeviceAllow", [])}
        assert {"char-video4linux", "char-media", "char-dma_heap"} <= allowed


def test_installer_makes_the_venv_and_links_where_the_unit_expects_them():
    root = exec_start_binary().removesuffix("/current/bin/kiosk")
    installer = (ROOT / "scripts" / "install-pi.sh").read_text()
    assert f"\nOPT={root}\n" in installer
    assert "\nVENV=$OPT/venv\n" in installer
    assert "point_link current" in installer and "point_link good" in installer


def test_unit_restarts_on_the_update_exit_and_guards_each_start_from_the_good_venv():
    unit = unit_settings()
    assert unit["RestartForceExitStatus"] == ["75"]
    assert unit["ExecStartPre"] == [f"{OPT}/good/bin/kiosk update-guard pre"]
    assert unit["ExecStartPost"] == [f"{OPT}/good/bin/kiosk update-guard post"]
    assert unit["ReadWritePaths"] == [OPT]
    assert f"CADRE_UPDATE_ROOT={OPT}" in unit["Environment"]
