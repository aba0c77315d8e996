"""A release whose kiosk dies at start, under the fake of systemd (tests/fakes/unit.py): the guard
(`kiosk update-guard pre`, run from the good venv before each start) switches back after its
third start, and the old version serves again. Real processes; the broken venv's `kiosk` is a
script that exits 1, as a wheel that fails on import would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from kiosk.updates import guard
from kiosk.updates.layout import ROOT_ENV, Trial, UpdateLayout
from tests.fakes.unit import FakeSystemdUnit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_a_version_that_dies_at_start_is_switched_back_after_its_third_start(tmp_path: Path):
    root = tmp_path / "opt"
    root.mkdir()
    (root / "venv").symlink_to(Path(sys.prefix))
    broken = root / "venvs" / "0.9.0" / "bin" / "kiosk"
    broken.parent.mkdir(parents=True)
    broken.write_text("#!/bin/sh\necho 'ImportError: broken on purpose' >&2\nexit 1\n")
    broken.chmod(0o755)
    layout = UpdateLayout(root)
    layout.point(layout.good, root / "venv")
    layout.save_trial(Trial("0.9.0", "0.1.0", datetime.now(UTC)))
    layout.point(layout.current, broken.parent.parent)  # as the worker switches

    instance = tmp_path / "kiosk"
    instance.mkdir()
    port = free_port()
    settings = {"listen_host": "127.0.0.1", "listen_port": port, "camera_source": "demo"}
    (instance / "kiosk.toml").write_text(
        "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()), encoding="utf-8"
    )
    output = (tmp_path / "unit.log").open("ab")
    unit = FakeSystemdUnit(root, instance, restart_s=0.5, output=output)
    started = time.monotonic()
    unit.start()
    try:
        while not healthy(port):
            assert time.monotonic() - started < 90, unit.log.text()
            time.sleep(0.2)
        took = time.monotonic() - started
    finally:
        unit.stop()
        output.close()
    (back,) = layout.rollbacks()
    assert back.from_version == "0.9.0" and "3 starts" in back.reason
    assert layout.version_at(layout.current) == layout.version_at(layout.good)
    assert layout.trial() is None
    log = unit.log.text()
    assert log.count("main exited 1 before READY") == guard.MAX_STARTS, log
    assert "from venvs/0.9.0" in log and log.rstrip().endswith("main exited 0"), log
    assert took < 60, log
    status = subprocess.run(
        [str(root / "good" / "bin" / "kiosk"), "update-status"],
        env={**os.environ, ROOT_ENV: str(root)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "switched back from 0.9.0" in status and "trial" not in status
    print(f"switched back and serving the old version {took:.1f} s after the first start")
