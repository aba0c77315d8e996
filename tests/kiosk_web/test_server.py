"""`kiosk run`: serves, tells systemd it is ready, pings the watchdog, stops cleanly on SIGTERM;
background work starts once per process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.kiosk_web.helpers import make_kit, write_roster

# The console script of this environment, as systemd's ExecStart runs it.
KIOSK = Path(sys.executable).parent / "kiosk"


class CountingLoop:
    def __init__(self) -> None:
        self.starts = 0
        self.stops = 0

    def start(self) -> None:
        self.starts += 1

    def stop(self) -> None:
        self.stops += 1

    def health(self):
        return {"state": "ok"}

    def latest_jpeg(self) -> bytes | None:
        return None

    @property
    def running(self) -> bool:
        return self.starts > self.stops


def test_services_start_once_and_stop_once(tmp_path, issuing_key):
    loops: list[CountingLoop] = []

    def factory(_services):
        loops.append(CountingLoop())
        return loops[-1]

    kit = make_kit(tmp_path, issuing_key, scan_loop_factory=factory)
    services = kit.services
    assert loops == []  # building the app starts nothing
    assert services.start() is True
    assert services.start() is False
    assert len(loops) == 1 and loops[0].starts == 1
    assert services.health() == (True, "")
    services.stop()
    services.stop()
    assert loops[0].stops == 1
    assert services.health()[0] is False


def test_health_is_bad_when_the_scan_loop_thread_died(tmp_path, issuing_key):
    loop = CountingLoop()
    kit = make_kit(tmp_path, issuing_key, scan_loop_factory=lambda _s: loop)
    kit.services.start()
    try:
        loop.stops = 1  # the thread is gone without stop() being asked
        good, problem = kit.services.health()
        assert not good and "scan loop" in problem
    finally:
        kit.services.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    yield path, sock
    sock.close()


def test_kiosk_run_notifies_systemd_serves_and_stops_on_sigterm(
    tmp_path, issuing_key, notify_socket
):
    path, sock = notify_socket
    instance = tmp_path / "instance"
    instance.mkdir()
    write_roster(instance, issuing_key)
    port = free_port()
    (instance / "kiosk.toml").write_text(
        f'camera_source = "demo"\ncamera_fps = 5.0\nlisten_host = "127.0.0.1"\n'
        f'listen_port = {port}\nsite_name = "测试站"\nlead_pin = "2468"\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(path),
        "WATCHDOG_USEC": "400000",  # ping every 0.2 s
        "KIOSK_INSTANCE": str(instance),
    }
    env.pop("WATCHDOG_PID", None)
    process = subprocess.Popen(
        [str(KIOSK), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        first = sock.recv(4096).decode()
        assert first.startswith("READY=1"), first
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            assert json.loads(answer.read()) == {"ok": True, "problem": ""}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            assert "测试站" in answer.read().decode()
        pings = 0
        deadline = time.monotonic() + 20
        while pings < 2 and time.monotonic() < deadline:
            if sock.recv(4096) == b"WATCHDOG=1":
                pings += 1
        assert pings == 2

        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")
    messages = []
    sock.settimeout(0.5)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except TimeoutError:
        pass
    assert "STOPPING=1" in messages
    text = output.decode(errors="replace")
    assert "kiosk stopped" in text
    assert "Traceback" not in text
    # The log closed cleanly: a new process can open it at once.
    assert not Path(instance / "log" / "LOCK").exists() or _lock_is_free(instance / "log")


def _lock_is_free(folder: Path) -> bool:
    import fcntl

    with open(folder / "LOCK", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return True


def test_kiosk_run_reports_a_busy_port_clearly(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (instance / "kiosk.toml").write_text(
            f'camera_source = "demo"\nlisten_host = "127.0.0.1"\nlisten_port = {port}\n'
        )
        done = subprocess.run(
            [str(KIOSK), "--instance", str(instance), "run"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert done.returncode == 1
    assert f"cannot serve on port {port}" in done.stderr
