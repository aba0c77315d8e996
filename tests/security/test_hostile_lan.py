"""The kiosk under a hostile LAN: slow connections and grabbed streams.

- Row 3: about 100 slow connections from any LAN host (waitress's default connection limit, a 60 s
  channel timeout) made /healthz, the lead login and the screen's streams time out, and the
  watchdog then restarted the kiosk. Now each client address may hold only a few connections
  (more are closed as they come), the total limit is higher, and idle ones are dropped sooner:
  200 slow connections from one host leave a real `kiosk run` answering.
- Row 12: one local process could hold all 12 stream slots of the screen (503 for the real screen,
  for ~16 s after it left). Now an address holds a few at most (its newest wins), the Pi's own
  screen has slots the network cannot take, and a stream's slot comes back as soon as its client
  is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.kiosk_web.helpers import LOCAL, write_roster
from tests.kiosk_web.live import live_kiosk

KIOSK = Path(sys.executable).parent / "kiosk"
ATTACKER = "127.0.0.2"  # another loopback address: another client, as a LAN host would be
SLOW = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def slow_connection(port: int) -> socket.socket | None:
    """A connection from ATTACKER that starts a request and never finishes it."""
    sock = socket.socket()
    sock.settimeout(5)
    try:
        sock.bind((ATTACKER, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /lead/login HTTP/1.1\r\nHost: kiosk\r\nX-Slow: ")
    except OSError:
        sock.close()
        return None
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


@pytest.fixture
def kiosk_process(tmp_path, issuing_key):
    instance = tmp_path / "instance"
    instance.mkdir()
    write_roster(instance, issuing_key)
    port = free_port()
    (instance / "kiosk.toml").write_text(
        f'camera_source = "demo"\ncamera_fps = 2.0\nlisten_host = "127.0.0.1"\n'
        f'listen_port = {port}\nlead_pin = "2468"  # hashed and moved out at start\n',
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [str(KIOSK), "--instance", str(instance), "run", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(process.communicate()[0].decode(errors="replace")[-3000:])
        time.sleep(0.1)
    yield base, port
    process.terminate()
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def test_200_slow_connections_leave_the_kiosk_answering(kiosk_process):
    base, port = kiosk_process
    held = [s for s in (slow_connection(port) for _ in range(SLOW)) if s is not None]
    assert len(held) == SLOW  # every connection was made (the OS accepts into the backlog)
    stop = threading.Event()

    def trickle() -> None:
        # One byte a second on each: never idle long enough to be dropped as idle.
        while not stop.wait(1.0):
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.send(b"x")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(2)  # let the kiosk take them in
        # The watchdog's probe, the lead and the screen, from the Pi itself: all answered.
        # (Generous client timeouts: these are about answering at all; bench/ has the times.)
        health = requests.get(f"{base}/healthz", timeout=20)
        assert health.status_code == 200 and health.json()["ok"] is True
        lead = requests.Session()
        page = lead.get(f"{base}/lead/login", timeout=20)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        answer = lead.post(
            f"{base}/lead/login",
            data={"pin": "2468", "name": "组长", "csrf_token": token},
            timeout=20,
            allow_redirects=False,
        )
        assert answer.status_code == 302
        assert lead.get(f"{base}/lead/", timeout=20).status_code == 200
        with requests.get(f"{base}/stream", stream=True, timeout=20) as stream:
            assert stream.status_code == 200
            first = next(stream.iter_content(chunk_size=None))
            assert first.startswith(b"retry:")
        # The kiosk closed the slow host's connections beyond its few.
        time.sleep(1)
        closed = sum(1 for sock in held if closed_by_server(sock))
        assert closed >= SLOW - 32, closed
    finally:
        stop.set()
        trickler.join(5)
        for sock in held:
            sock.close()


def open_stream(url: str, source: str = "127.0.0.1") -> socket.socket:
    """A raw /stream request from `source`, read until the server's first event arrives."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: kiosk\r\n\r\n")
    return sock


def status_of(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(1024)
        if not chunk:
            return 0
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_local_process_cannot_keep_the_screen_from_its_stream(tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key, threads=16) as live:
        slots = live.services.stream_slots
        hog = [open_stream(live.url) for _ in range(12)]
        try:
            statuses = [status_of(sock) for sock in hog]
            assert statuses.count(200) == 12  # each was answered, the older ones then ended
            # The real screen (the same address, the Pi itself) still gets its stream...
            screen = open_stream(live.url)
            assert status_of(screen) == 200
            screen.close()
            assert slots.held_by("127.0.0.1") <= live.services.settings.stream_slots_per_client
        finally:
            for sock in hog:
                sock.close()
        # ...and once the hog is gone its slots come back within moments, not 16 s.
        deadline = time.monotonic() + 5
        while slots.held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slots.held == 0


def test_the_network_never_takes_the_pi_screens_own_slots(kit):
    """With the screen opened to the network: 12 slots, 2 only the Pi may take, 4 per address
    (a fifth from one address ends its own oldest, nobody else's)."""
    from kiosk.stream_slots import StreamSlots

    slots = StreamSlots(total=12, per_client=4, reserved_local=2)
    taken = [slots.take(f"192.0.2.{n}") for n in range(1, 20)]
    assert sum(1 for s in taken if s is not None) == 10
    assert slots.take("192.0.2.99") is None
    assert slots.take("127.0.0.1") is not None and slots.take("::1") is not None
    phone = [slots.take("192.0.2.200") for _ in range(2)]
    assert phone == [None, None]  # full: the phone waits, the Pi's slots are the Pi's
    first, second = taken[0], taken[1]
    assert first is not None and second is not None
    again = slots.take("192.0.2.1")  # the same phone again: its own old stream makes way
    assert again is not None and first.ended.is_set() and not second.ended.is_set()

    # Over the web: remote screens beyond their share get 503, the Pi's own screen still 200.
    kit.services.settings.screen_remote_allowed = True
    client = kit.app.test_client()
    opened = []
    try:
        for n in range(11):
            address = {"REMOTE_ADDR": f"192.0.2.{n + 1}"}
            opened.append(client.get("/stream", environ_base=address, buffered=False))
        assert [r.status_code for r in opened] == [200] * 10 + [503]
        screen = client.get("/stream", environ_base=LOCAL, buffered=False)
        opened.append(screen)
        assert screen.status_code == 200
    finally:
        for response in opened:
            response.close()
    assert kit.services.stream_slots.held == 0
