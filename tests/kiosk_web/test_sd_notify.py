"""sd_notify without a dependency: the datagrams systemd would read, and the watchdog's rule."""

from __future__ import annotations

import os
import socket

import pytest

from kiosk.server import Notifier, Watchdog, watchdog_interval_s


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield path, sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    return messages


def test_notifier_sends_datagrams_to_notify_socket(notify_socket):
    path, sock = notify_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(path)})
    assert notifier.notify("READY=1\nSTATUS=serving")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"


def test_notifier_without_systemd_is_silent_and_a_dead_socket_does_not_raise(tmp_path):
    assert not Notifier.from_env({}).notify("READY=1")
    assert not Notifier(str(tmp_path / "nobody-listens")).notify("READY=1")


def test_abstract_socket_names_start_with_a_nul_byte():
    assert Notifier("@/org/freedesktop/systemd1/notify").address == (
        "\0/org/freedesktop/systemd1/notify"
    )


def test_watchdog_interval_is_half_of_watchdog_sec_and_only_for_this_process():
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "garbage"}) is None


def test_watchdog_pings_only_while_healthy(notify_socket):
    path, sock = notify_socket
    state = {"health": (True, "")}
    dog = Watchdog(Notifier(str(path)), lambda: state["health"], interval_s=60)

    assert dog.check_once()
    assert received(sock) == ["WATCHDOG=1"]

    state["health"] = (False, "scan loop stopped")
    assert not dog.check_once()
    assert not dog.check_once()
    # No ping, and the reason is told to systemd once, not at every check.
    assert received(sock) == ["STATUS=unhealthy: scan loop stopped"]

    state["health"] = (True, "")
    assert dog.check_once()
    assert received(sock) == ["WATCHDOG=1"]


def test_a_health_check_that_raises_stops_the_pings(notify_socket):
    path, sock = notify_socket

    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    dog = Watchdog(Notifier(str(path)), broken, interval_s=60)
    assert not dog.check_once()
    assert [m for m in received(sock) if m == "WATCHDOG=1"] == []
