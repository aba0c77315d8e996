"""Serving the kiosk with waitress: background work started once, clean stop on SIGTERM, systemd.

`kiosk run` calls `run_forever`. The app factory never starts threads itself, so importing or
building the app (tests, a reloader's parent process) cannot start a second scan loop; only the
process that serves starts them, once.

systemd (kiosk.service, Type=notify) is told READY=1 once the socket listens and the scan loop and
sync agent run, and WATCHDOG=1 every half WatchdogSec only while the kiosk is healthy (the pages
answer, the scan loop lives). sd_notify is a datagram on $NOTIFY_SOCKET: a few lines of the
standard library, no dependency.

On a hostile LAN (docs/security.md): a cap of connections per client address (ClientCappedChannel),
a total limit, a short idle timeout, and waitress reading each connection while its response runs
so a stream learns at once that its client left (KioskServer).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

from kiosk.lead_auth import client_key

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd with Type=notify."""

    def __init__(self, address: str | None) -> None:
        # An abstract-namespace socket is written with a leading "@" that stands for a NUL byte.
        self.address = "\0" + address[1:] if address and address.startswith("@") else address

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, message: str) -> bool:
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
        except OSError as exc:
            # systemd went away, or the socket is not ours: serving goes on regardless.
            log.warning("sd_notify %r failed: %s", message.split("\n")[0], exc)
            return False
        return True


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of WatchdogSec, as systemd advises; None when no watchdog is asked of this process."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid.isdigit() and int(pid) != os.getpid():
        return None
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 2_000_000


class Watchdog:
    """Pings WATCHDOG=1 while `healthy()` says so, and stops pinging when it does not.

    A kiosk whose scan loop died or whose pages hang is then restarted by systemd instead of
    standing there looking alive.
    """

    def __init__(self, notifier: Notifier, healthy: HealthCheck, interval_s: float) -> None:
        self.notifier = notifier
        self.healthy = healthy
        self.interval_s = interval_s
        self.pings = 0
        self.last_problem = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def check_once(self) -> bool:
        try:
            good, problem = self.healthy()
        except Exception as exc:  # a crashing health check counts as unhealthy, loudly
            log.exception("health check raised")
            good, problem = False, f"health check raised {exc!r}"
        if good:
            self.notifier.notify("WATCHDOG=1")
            self.pings += 1
        elif problem != self.last_problem:
            log.error("not pinging the watchdog: %s", problem)
            self.notifier.notify(f"STATUS=unhealthy: {problem}")
        self.last_problem = "" if good else problem
        return good

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check_once()


def probe_http(host: str, port: int, path: str = "/healthz", timeout_s: float = 3.0) -> HealthCheck:
    """A health check that asks the running server itself, so a hung server stops the pings."""
    target = "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else host
    target = "::1" if target == "::" else target

    def check() -> tuple[bool, str]:
        conn = http.client.HTTPConnection(target, port, timeout=timeout_s)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read(2000).decode("utf-8", "replace")
        except OSError as exc:
            return False, f"pages do not answer: {exc}"
        finally:
            conn.close()
        if response.status != 200:
            return False, f"{path} answered {response.status}: {body[:200]}"
        return True, ""

    return check


class ConnectionCaps:
    """Open connections per client address (an IPv6 /64 counts as one), for ClientCappedChannel.

    Called from waitress's loop (accepting) and from wherever a channel closes, so locked.
    """

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self.refused = 0  # connections closed at once, for tests and the curious
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def opened(self, client: str) -> bool:
        with self._lock:
            count = self._open.get(client, 0)
            if count >= self.per_client:
                self.refused += 1
                return False
            self._open[client] = count + 1
            return True

    def closed(self, client: str) -> None:
        with self._lock:
            left = self._open.get(client, 1) - 1
            if left > 0:
                self._open[client] = left
            else:
                self._open.pop(client, None)

    def open_from(self, client: str) -> int:
        with self._lock:
            return self._open.get(client, 0)


class ClientCappedChannel(HTTPChannel):
    """waitress's connection, counted against its client's address. One past the cap is closed
    before anything of it is read: a host that opens hundreds of slow connections holds only a
    few, and the kiosk's connections stay free for the Pi's screen, the lead and the watchdog."""

    caps: ConnectionCaps  # set on the class made for each server (KioskServer)

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        super().__init__(server, sock, addr, adj, map)
        host = addr[0] if isinstance(addr, tuple) and addr else "unix"
        self._client: str | None = client_key(host)
        if not self.caps.opened(self._client):
            self._client = None
            self.will_close = True  # closed by the loop's next turn, nothing read

    def del_channel(self, map: Any = None) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            self.caps.closed(client)
        super().del_channel(map)


class KioskServer:
    """waitress around the kiosk app, with the app's background work tied to its lifetime."""

    def __init__(self, app: Flask, host: str, port: int, threads: int, **adjustments: Any):
        self.app = app
        self.services = app.extensions["kiosk"]
        settings = self.services.settings
        # max_request_body_size: waitress reads a whole body (to a temp file past 512 KB)
        # before the app sees it; its default of 1 GB would let anyone on the site's network
        # fill the Pi's SD card, so it refuses what the app would refuse anyway.
        adjustments.setdefault(
            "max_request_body_size", app.config.get("MAX_CONTENT_LENGTH") or 1024 * 1024
        )
        # A hostile LAN (docs/security.md): waitress's defaults let ~100 slow connections from
        # one host take every connection (connection_limit 100) for a minute each.
        # - connection_limit: all clients together; past it waitress stops accepting and new
        #   connections wait in the listen backlog.
        # - channel_timeout: a connection with no traffic either way is closed after this (an
        #   idle keep-alive, a request started and left); checked every cleanup_interval s.
        #   A connection serving a response (a stream) is never closed by it, and streams
        #   write at least every KEEPALIVE_S anyway.
        # - backlog: how many may wait to be accepted; beyond it the OS refuses them at once.
        # - channel_request_lookahead: waitress keeps reading a connection while its response
        #   runs, so a stream learns within a second that its client left
        #   (environ["waitress.client_disconnected"]) and frees its slot.
        # - per client address: ClientCappedChannel.
        adjustments.setdefault("connection_limit", settings.server_connection_limit)
        adjustments.setdefault("channel_timeout", settings.server_idle_timeout_s)
        adjustments.setdefault("cleanup_interval", max(1, settings.server_idle_timeout_s // 2))
        adjustments.setdefault("backlog", 128)
        adjustments.setdefault("channel_request_lookahead", 1)
        self.server: Any = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="kiosk",
            clear_untrusted_proxy_headers=True,
            **adjustments,
        )
        self.connection_caps = ConnectionCaps(settings.server_connections_per_client)
        channel_class = type("KioskChannel", (ClientCappedChannel,), {"caps": self.connection_caps})
        listeners = getattr(self.server, "_map", None) or getattr(self.server, "map", {})
        for listener in [self.server, *listeners.values()]:
            if isinstance(listener, BaseWSGIServer):
                listener.channel_class = channel_class
        # Streams hold a worker thread each: a few threads stay free for everything else.
        self.services.stream_slots.total = max(2, threads - 4)
        self.host = host
        self._closed = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve until SystemExit/KeyboardInterrupt (main thread) or `shutdown()` (any thread)."""
        try:
            self.server.run()
        finally:
            # Lets the worker threads finish what they write (streams end via begin_shutdown).
            self.server.task_dispatcher.shutdown(timeout=5)
            self._finish()

    def begin_shutdown(self) -> None:
        """Ends the open event and preview streams so the worker threads can finish."""
        self.services.begin_shutdown()

    def shutdown(self) -> None:
        """Stop from another thread (tests, benches). The streams end first and the worker
        threads finish their responses while the loop still runs (a worker writing after the
        sockets closed would write to a file descriptor number that may be reused by then); then
        every socket is closed from inside the loop (closing from here would race its select())."""
        self.begin_shutdown()
        self.server.task_dispatcher.shutdown(timeout=5)
        # OSError: the trigger's pipe is closed already (once in CI: EBADF), so the loop has
        # nothing left to be woken by; the caller's join, with its timeout, ends the wait.
        with contextlib.suppress(OSError):
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))

    def _finish(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.begin_shutdown()
        self.services.stop()


def run_forever(
    app: Flask,
    host: str,
    port: int,
    threads: int,
    *,
    env: Mapping[str, str] | None = None,
    on_ready: Callable[[KioskServer], None] | None = None,
) -> None:
    """`kiosk run`: start the background work once, serve, stop cleanly on SIGTERM or Ctrl-C."""
    env = os.environ if env is None else env
    notifier = Notifier.from_env(env)
    kiosk_server = KioskServer(app, host, port, threads)
    services = kiosk_server.services

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        notifier.notify("STOPPING=1")
        kiosk_server.begin_shutdown()
        # waitress's loop turns SystemExit into its own orderly shutdown of the worker threads.
        raise SystemExit(0)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    watchdog: Watchdog | None = None
    try:
        services.start()
        interval = watchdog_interval_s(env)
        if interval is not None:
            app_health: HealthCheck = services.health
            pages = probe_http(host, kiosk_server.port)

            def healthy() -> tuple[bool, str]:
                good, problem = app_health()
                return pages() if good else (good, problem)

            watchdog = Watchdog(notifier, healthy, interval)
            watchdog.start()
        log.info("serving the kiosk on %s", kiosk_server.url())
        notifier.notify(f"READY=1\nSTATUS=serving on port {kiosk_server.port}")
        if on_ready is not None:
            on_ready(kiosk_server)
        kiosk_server.run()
    finally:
        if watchdog is not None:
            watchdog.stop()
        kiosk_server._finish()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("kiosk stopped")
