"""pi/image: the sdm recipe's options and the plugin list it hands sdm (sdm itself and a
Raspberry Pi OS image are not here: --print shows what would run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE_IMAGE = ROOT / "pi" / "image" / "make-image.sh"
BURN_CARDS = ROOT / "pi" / "image" / "burn-cards.sh"
HASH = "$6$rounds=4096$salt$4Ib0tR0bvWcUp6Eo5Xq2"


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"},
    )


def test_the_image_runs_the_installer_for_its_user_after_making_that_user():
    result = run(
        MAKE_IMAGE,
        *("--base", "2025-05-13-raspios-bookworm-arm64.img", "--out", "kiosk.img"),
        *("--password-hash", HASH, "--user", "gate", "--camera", "usb", "--print"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    plugins = [
        line
        for line in lines
        if line.split(":")[0] in {"user", "disables", "L10n", "copydir", "runscript"}
    ]
    # sdm wants the user plugin first; the installer runs after everything else, post-install.
    assert plugins[0] == "user:deluser=pi"
    assert plugins[1] == "user:adduser=gate|password-hash=<hash>"
    assert HASH not in result.stdout
    assert "disables:piwiz" in plugins
    (copy,) = [line for line in plugins if line.startswith("copydir:")]
    assert copy.endswith("/cadre-kiosk|to=/usr/local/src")
    (runscript,) = [line for line in plugins if line.startswith("runscript:")]
    assert "|runphase=post-install|" in runscript
    assert plugins.index(runscript) == len(plugins) - 1
    assert "exec /usr/local/src/cadre-kiosk/scripts/install-pi.sh --user gate --camera usb" in lines
    (command,) = [line for line in lines if line.startswith("# then: /") and "sdm" in line]
    for switch in ("--customize", "--autologin", "--regen-ssh-host-keys", "--batch"):
        assert f" {switch} " in command
    assert command.endswith(" kiosk.img")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--base is needed"),
        (["--base", "a.img", "--out", "b.img"], "--password-hash is needed"),
        (["--base", "a.img", "--out", "b.img", "--password-hash", "hunter2"], "not a password"),
        (
            ["--base", "a.img", "--out", "b.img", "--password-hash", HASH, "--user", "Gate 1"],
            "'Gate 1' is not a user name",
        ),
        (
            ["--base", "a.img", "--out", "b.img", "--password-hash", HASH, "--timezone", "A|B"],
            "which sdm cannot pass",
        ),
        (
            ["--base", "a.img", "--out", "b.img", "--password-hash", HASH, "--camera", "ir"],
            "--camera is picamera or usb",
        ),
    ],
)
def test_make_image_refuses_bad_options_with_a_reason(args, message):
    result = run(MAKE_IMAGE, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_packed_base_image_is_refused():
    result = run(
        MAKE_IMAGE, "--base", "raspios.img.xz", "--out", "k.img", "--password-hash", HASH, "--print"
    )
    assert result.returncode == 1
    assert "unxz it first" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "/dev/sdz"], "--image is needed"),
        (["--image", "k.img", "--device", "/dev/sdz", "--count", "0"], "are numbers"),
        (["--image", "k.img", "--device", "/dev/sdz", "--prefix", "Kiosk_"], "a host name"),
    ],
)
def test_burn_cards_refuses_bad_options_with_a_reason(args, message):
    result = run(BURN_CARDS, *args)
    assert result.returncode == 2
    assert message in result.stderr
