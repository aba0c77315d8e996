"""scripts/install-pi.sh: its options, and the steps that only write files, run into a throwaway
root with --root. The steps that need Debian arm64 (apt, the venv, systemd-analyze verify on the
installed unit) run for real in `make test-arm64`."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socketserver
import stat
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "scripts" / "install-pi.sh"
BEGIN = "# >>> cadre-kiosk"

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the installer runs as root")


def install(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INSTALLER), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"},
    )


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A root with what the file steps read: os-release, the users, their folders."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text("ID=debian\nVERSION_CODENAME=bookworm\n")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "kiosk:x:998:998::/var/lib/kiosk:/usr/sbin/nologin\n"
        "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n"
    )
    (root / "home" / "pi").mkdir(parents=True)
    (root / "var" / "lib" / "kiosk").mkdir(parents=True)
    os.chown(root / "var" / "lib" / "kiosk", 998, 998)
    return root


def autostart_of(root: Path) -> Path:
    return root / "home" / "pi" / ".config" / "labwc" / "autostart"


def test_help_names_every_step():
    result = install("--help")
    assert result.returncode == 0
    for step in ("packages", "user", "venv", "unit", "settings", "desktop", "start"):
        assert step in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frobnicate"], "unknown option: --frobnicate"),
        (["--camera", "webcam"], "--camera is picamera or usb, not 'webcam'"),
        (["--only", "venv,coffee"], "no step 'coffee'"),
        (["--only", "unit", "--skip", "venv"], "--only and --skip do not go together"),
        (["--user", "Robert'); DROP"], "is not a user name"),
        (["--root"], "--root needs a folder"),
    ],
)
def test_bad_options_are_refused_with_a_reason(args, message):
    result = install(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "--help" in result.stderr


def test_the_package_list_follows_the_camera():
    picamera = install("--print-packages").stdout.split()
    usb = install("--print-packages", "--camera", "usb").stdout.split()
    assert "python3-picamera2" in picamera
    assert "python3-picamera2" not in usb
    # apt's numpy and Pillow are what pi/constraints.txt keeps the venv on.
    for package in ("python3-numpy", "python3-pil", "python3-venv", "libzbar0", "chromium"):
        assert package in usb


@as_root
def test_another_release_is_refused_unless_asked(target):
    (target / "etc" / "os-release").write_text("ID=debian\nVERSION_CODENAME=trixie\n")
    refused = install("--root", target, "--only", "unit")
    assert refused.returncode == 1
    assert "'trixie', not Raspberry Pi OS / Debian 12 (bookworm)" in refused.stderr
    assert not (target / "etc" / "systemd").exists()
    allowed = install("--root", target, "--only", "unit", "--allow-other-release")
    assert allowed.returncode == 0, allowed.stderr
    assert "going on as asked" in allowed.stderr


@as_root
def test_file_steps_write_the_unit_settings_and_autostart(target):
    result = install("--root", target, "--only", "unit,settings,desktop", "--camera", "usb")
    assert result.returncode == 0, result.stderr

    unit = target / "etc" / "systemd" / "system" / "kiosk.service"
    assert unit.read_text() == (ROOT / "kiosk.service").read_text()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    enabled = target / "etc" / "systemd" / "system" / "multi-user.target.wants" / "kiosk.service"
    assert enabled.is_symlink()
    # Not in a live system: enabled for the next boot, never started.
    assert "kiosk.service enabled" in result.stdout

    settings = target / "var" / "lib" / "kiosk" / "kiosk.toml"
    text = settings.read_text()
    assert 'camera_source = "usb"' in text and 'camera_device = "0"' in text
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert settings.stat().st_uid == 998

    autostart = autostart_of(target)
    assert autostart.read_text().count(BEGIN) == 1
    assert "chromium --kiosk" in autostart.read_text()
    assert (autostart.stat().st_uid, autostart.stat().st_gid) == (1000, 1000)
    assert autostart.parent.stat().st_uid == 1000
    # Not Raspberry Pi OS here: auto-login is left to the person, and the installer says so.
    assert "raspi-config is not here" in result.stderr


@as_root
def test_a_second_run_changes_nothing_and_keeps_what_people_wrote(target):
    autostart = autostart_of(target)
    autostart.parent.mkdir(parents=True)
    autostart.write_text(
        "/usr/bin/lwrespawn /usr/bin/wf-panel-pi &\n"
        "swayidle -w timeout 600 'wlopm --off \\*' resume 'wlopm --on \\*' &\n"
    )
    first = install("--root", target, "--only", "unit,settings,desktop", "--user", "pi")
    assert first.returncode == 0, first.stderr
    settings = target / "var" / "lib" / "kiosk" / "kiosk.toml"
    settings.write_text(settings.read_text() + 'lead_pin = "864209"\n')
    written = {path: path.read_bytes() for path in (autostart, settings)}

    second = install("--root", target, "--only", "unit,settings,desktop", "--user", "pi")
    assert second.returncode == 0, second.stderr
    assert "kiosk.service is up to date" in second.stdout
    assert "kiosk.toml exists already: left as it is" in second.stdout
    assert "autostart is up to date" in second.stdout
    assert {path: path.read_bytes() for path in written} == written

    lines = autostart.read_text().splitlines()
    assert lines[0] == "/usr/bin/lwrespawn /usr/bin/wf-panel-pi &"
    assert not any("swayidle" in line for line in lines), "screen blanking is still on"
    assert autostart.read_text().count(BEGIN) == 1


@as_root
def test_desktop_step_needs_a_user_and_says_so(target):
    (target / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    missing = install("--root", target, "--only", "desktop")
    assert missing.returncode == 1
    assert "no desktop user: name the one who logs in to the desktop with --user NAME" in (
        missing.stderr
    )
    unknown = install("--root", target, "--only", "desktop", "--user", "ghost")
    assert unknown.returncode == 1
    assert "desktop user 'ghost' does not exist" in unknown.stderr


class Refusing(http.server.BaseHTTPRequestHandler):
    """A kiosk whose camera is unplugged: /healthz answers 503."""

    def do_GET(self) -> None:
        self.send_response(503)
        self.end_headers()
        self.wfile.write(b'{"ok": false, "problem": "camera"}')

    def log_message(self, *args: object) -> None:
        pass


@as_root
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_autostart_opens_the_screen_even_when_the_kiosk_is_unhealthy(target, tmp_path):
    # The screen is where a camera fault is shown: the browser must open on any answer.
    result = install("--root", target, "--only", "desktop", "--user", "pi")
    assert result.returncode == 0, result.stderr
    block = autostart_of(target).read_text()
    (line,) = [line for line in block.splitlines() if "chromium" in line]

    server = socketserver.TCPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    opened = tmp_path / "opened"
    browser = fake_bin / "chromium"
    browser.write_text(f'#!/bin/sh\necho "$@" > {opened}\n')
    browser.chmod(0o755)
    command = re.sub(r"localhost:8080", f"127.0.0.1:{port}", line).removesuffix(" &")
    try:
        subprocess.run(
            ["sh", "-c", command],
            env={"PATH": f"{fake_bin}:{os.environ['PATH']}"},
            timeout=30,
            check=True,
        )
    finally:
        server.shutdown()
        server.server_close()
    arguments = opened.read_text().split()
    assert "--kiosk" in arguments
    assert arguments[-1] == f"http://127.0.0.1:{port}/"
