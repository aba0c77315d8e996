"""Several `central serve` processes on one PostgreSQL database, for the scale-out tests.

    database = fresh_database(postgres_url)       # a database of its own, dropped afterwards
    cluster = Cluster(tmp_path / "central", database.url, {"repeat_window_s": 1})
    cluster.init({"S01": 30})                     # `central init`, `central roster import`
    cluster.start(3)                              # three `central serve` on free ports
    cluster.kill(0)                               # SIGKILL: no handler runs, nothing released
    cluster.stop()                                # SIGTERM to the rest

Each process is the real command in a subprocess (tests.e2e.harness.Centre does the same for
one); the tests look at the database directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import make_url, text

from central.db.engine import make_engine
from central.kiosks import KioskIdentity
from sync.events import GENESIS_HASH, Event, seal
from tests.e2e.harness import CENTRAL_CMD, REPO, Centre, _wait_for, free_port


@dataclass
class Database:
    url: str


# What docs/central-nginx.md recommends for the centre's database, so the tests and
# bench/takeover.py run under it.
RECOMMENDED = {"statement_timeout": "60s", "idle_in_transaction_session_timeout": "15s"}


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[Database]:
    """A new PostgreSQL database on the test server with the recommended timeouts, dropped at
    the end (its connections too)."""
    name = f"cadre_scale_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        for setting, value in RECOMMENDED.items():
            conn.execute(text(f"ALTER DATABASE \"{name}\" SET {setting} = '{value}'"))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield Database(url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Serving:
    port: int
    process: subprocess.Popen[bytes]
    log: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class Cluster(Centre):
    """One instance folder (central.toml naming the database) served by several processes."""

    def __init__(
        self, instance: Path, database_url: str, settings: Mapping[str, Any], threads: int = 4
    ) -> None:
        super().__init__(instance, threads=threads)
        self.processes: list[Serving] = []
        instance.mkdir(parents=True, exist_ok=True)
        values = {"database_url": database_url, **settings}
        lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        (instance / "central.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, count: int = 1) -> None:  # type: ignore[override]
        """`central serve` `count` more times, each on its own port; waits until all answer."""
        new: list[Serving] = []
        for _ in range(count):
            port = free_port()
            log = (self.instance / f"serve-{port}.log").open("ab")
            process = subprocess.Popen(
                [
                    *CENTRAL_CMD,
                    "--instance",
                    str(self.instance),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=REPO,
                env=dict(os.environ, CENTRAL_SERVER_THREADS=str(self.threads)),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            new.append(Serving(port, process, log))
        self.processes += new
        for serving in new:
            _wait_for(
                lambda s=serving: answers(s.url),
                60,
                f"central serve :{serving.port}",
                serving.process,
            )

    def badges(self, site_id: str) -> dict[str, tuple[str, int]]:
        """Issue the badges of a site's cadres: cadre id -> (token, serial)."""
        from central import badges, keys

        key = keys.load_issuing_key(self.settings.issuing_key_path(self.instance))
        issued = badges.issue_badges(self.engine, key, site_id=site_id)
        return {b.cadre_id: (b.payload, b.serial) for b in issued}

    def cli_input(self, stdin: str, *args: str) -> str:
        """A `central` command that reads a password from stdin (--password-stdin)."""
        done = subprocess.run(
            [*CENTRAL_CMD, "--instance", str(self.instance), *args, "--password-stdin"],
            cwd=REPO,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.processes]

    def by_pid(self, pid: int) -> Serving:
        return next(s for s in self.processes if s.process.pid == pid)

    def kill(self, serving: Serving) -> None:
        serving.process.send_signal(signal.SIGKILL)
        serving.process.wait(10)

    def stop(self) -> None:
        for serving in self.processes:
            if serving.alive:
                serving.process.terminate()
        for serving in self.processes:
            try:
                serving.process.wait(20)
            except subprocess.TimeoutExpired:
                serving.process.kill()
                serving.process.wait(5)
            serving.log.close()
        if "engine" in self.__dict__:
            self.engine.dispose()

    def log_text(self) -> str:
        return "\n".join(
            (self.instance / f"serve-{s.port}.log").read_text(errors="replace")
            for s in self.processes
        )


def answers(url: str) -> bool:
    try:
        return requests.get(f"{url}api/v1/time", timeout=1).ok
    except requests.RequestException:
        return False


def holder_pid(holder: str) -> int:
    """The pid in a lease holder's name (host:pid:random)."""
    return int(holder.split(":")[-2])


class KioskLog:
    """A kiosk's log in memory, written as the scans happen (wall and monotonic time of now)."""

    def __init__(self, identity: KioskIdentity) -> None:
        self.identity = identity
        self.boot_id = f"boot-{uuid.uuid4().hex[:8]}"
        self.events: list[Event] = []
        self.cursor = 0
        self._lock = threading.Lock()

    def record(self, cadre_id: str, kind: str, badge: tuple[str, int] | None = None) -> Event:
        """A scan of `cadre_id`; `badge` is the (token, serial) read, the proof the centre
        checks before it counts the record."""
        token, serial = badge if badge is not None else (None, 1)
        with self._lock:
            previous = self.events[-1] if self.events else None
            event = seal(
                {
                    "event_id": uuid.uuid4(),
                    "kiosk_id": self.identity.kiosk_id,
                    "site_id": self.identity.site_id,
                    "seq": len(self.events) + 1,
                    "cadre_id": cadre_id,
                    "badge_serial": serial,
                    "badge_token": token,
                    "kind": kind,
                    "source": "camera",
                    "device_time": datetime.now(UTC),
                    "boot_id": self.boot_id,
                    "monotonic_ns": time.monotonic_ns(),
                    "clock_trusted": True,
                    "prev_hash": previous.hash if previous else GENESIS_HASH,
                }
            )
            self.events.append(event)
            return event

    def pending(self, limit: int) -> list[Event]:
        with self._lock:
            return self.events[self.cursor : self.cursor + limit]

    def acknowledge(self, through_seq: int) -> None:
        with self._lock:
            self.cursor = max(self.cursor, through_seq)

    def pending_count(self) -> int:
        with self._lock:
            return len(self.events) - self.cursor

    @property
    def acknowledged_seq(self) -> int:
        return self.cursor

    def rewind(self, to_seq: int) -> None:
        with self._lock:
            self.cursor = min(self.cursor, to_seq)
