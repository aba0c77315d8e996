"""`central serve`: one waitress process, or several on consecutive ports (`--workers N`).

Several processes share nothing but the database: sessions, login throttles, form tokens and
duty leases are rows (docs/central-nginx.md puts nginx in front with an upstream of their
ports). Why consecutive ports rather than one port shared with SO_REUSEPORT: nginx then sees
each process as its own upstream server, so a process that died or hangs is taken out of the
rotation (`max_fails`, `proxy_next_upstream`) instead of the kernel handing it new connections
and resetting the ones queued for it; and the same upstream block lists processes of other
hosts. `--workers N` is a small supervisor for one host: it starts N `central serve --port P+i`
children, restarts one that dies, and passes SIGTERM on. systemd can do the same with one unit
per port (docs/central-nginx.md).

SQLite serves one process: its writers queue on a lock of this process, and a second process
would meet them only in SQLite's busy timeout. So a second `central serve` on the same SQLite
file is refused at start, by a lock file beside the database that the kernel releases when the
process ends however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import IO

from sqlalchemy.engine import make_url

from central.settings import CentralSettings

log = logging.getLogger(__name__)

CHILD_CMD = [sys.executable, "-c", "from central.cli import main; main()"]
RESTART_MAX_DELAY_S = 30.0


class ServeRefused(Exception):
    """`central serve` cannot start as asked; the message says why and what to do instead."""


def sqlite_path(settings: CentralSettings, instance: Path) -> Path | None:
    """The database file when the store is SQLite (None for PostgreSQL or in-memory)."""
    url = make_url(settings.database_url_for(instance))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


@contextlib.contextmanager
def sqlite_single_server(database: Path) -> Iterator[None]:
    """Hold the lock that makes this the only `central serve` of an SQLite database."""
    lock_path = database.with_name(database.name + ".serve-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = lock_path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ServeRefused(
                f"another `central serve` (pid {holder}) is serving the SQLite database "
                f"{database}. SQLite serves from one process only; for several processes set "
                "database_url to a PostgreSQL database (docs/central-nginx.md)."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock (so does the kernel if the process dies)


def _stop_on_sigterm() -> None:
    """SIGTERM ends waitress's loop like Ctrl-C, so the `finally` that releases leases runs."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def serve_one(instance: Path, settings: CentralSettings, host: str, port: int) -> None:
    """Serve the kiosk API and the staff pages in this process until SIGTERM or Ctrl-C."""
    import waitress

    from central.app import create_app
    from central.services import central_of

    database = sqlite_path(settings, instance)
    guard = sqlite_single_server(database) if database else contextlib.nullcontext()
    with guard:
        app = create_app(instance, settings)
        duties = central_of(app).duties
        print(
            f"serving the kiosk API and the staff pages on http://{host}:{port}/ "
            f"(pid {os.getpid()}, duties as {duties.holder})",
            flush=True,
        )
        _stop_on_sigterm()
        try:
            waitress.serve(
                app,
                host=host,
                port=port,
                threads=settings.server_threads,
                ident="central",
                # waitress buffers a whole body before the app can refuse it (1 GB by
                # default); the largest body any route takes is a roster upload.
                max_request_body_size=max(
                    settings.roster_max_upload_bytes, settings.api_max_body_bytes
                ),
            )
        except KeyboardInterrupt:
            pass
        finally:
            # Released leases are taken over at the next try instead of after they expire.
            duties.stop()
            central_of(app).engine.dispose()


class Supervisor:
    """N `central serve` children on ports port..port+N-1, each restarted when it dies."""

    def __init__(self, instance: Path, host: str, port: int, workers: int) -> None:
        self.instance = instance
        self.host = host
        self.ports = [port + n for n in range(workers)]
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.started: dict[int, float] = {}
        self.restarts: dict[int, int] = dict.fromkeys(self.ports, 0)
        self._stopping = False

    def _spawn(self, port: int) -> None:
        command = [
            *CHILD_CMD,
            "--instance",
            str(self.instance),
            "serve",
            "--host",
            self.host,
            "--port",
            str(port),
        ]
        self.children[port] = subprocess.Popen(command)
        self.started[port] = time.monotonic()

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for port in self.ports:
            self._spawn(port)
        print(
            f"supervising {len(self.ports)} processes on {self.host} ports "
            f"{self.ports[0]}-{self.ports[-1]} (pid {os.getpid()})",
            flush=True,
        )
        due: dict[int, float] = {}
        while not self._stopping:
            time.sleep(0.2)
            for port, child in list(self.children.items()):
                if port in due or child.poll() is None:
                    continue
                if time.monotonic() - self.started[port] > 60:
                    self.restarts[port] = 0  # it ran a while: this is a new fault, not a loop
                self.restarts[port] += 1
                delay = min(RESTART_MAX_DELAY_S, 2.0 ** min(self.restarts[port] - 1, 5))
                print(
                    f"process on port {port} (pid {child.pid}) exited with {child.returncode}; "
                    f"restarting in {delay:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
                due[port] = time.monotonic() + delay
            for port, when in list(due.items()):
                if time.monotonic() >= when and not self._stopping:
                    del due[port]
                    self._spawn(port)
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        return 0


def check_workers(settings: CentralSettings, instance: Path, workers: int) -> None:
    if workers > 1 and sqlite_path(settings, instance) is not None:
        raise ServeRefused(
            f"--workers {workers} needs PostgreSQL: SQLite serves from one process only. Set "
            "database_url to a PostgreSQL database (docs/central-nginx.md), or serve one process."
        )
