"""The whole system in real processes on loopback, for the end-to-end fault trials.

    centre = Centre(workdir / "central")
    centre.init({"NET": 300})                 # `central init`, roster CSV, `central roster import`
    centre.start()                            # `central serve` in a subprocess
    payloads = centre.issue_badges("NET")     # signed badge tokens of the site's cadres
    code = centre.add_kiosk("NET", "k-net")   # `central kiosk add`
    kiosk = KioskProcess(workdir / "kiosk", {...settings...})
    kiosk.enroll(centre.url, code, centre.centre_key)  # `kiosk enroll URL CODE --centre-key FP`
    kiosk.spawn(); kiosk.wait_ready()         # `kiosk run`
    kiosk.wedge(payload)                      # a keyboard-wedge scan through the real scan path
    kiosk.kill()                              # SIGKILL: the power cut of a process
    KioskLogView.read(kiosk.instance)         # the kiosk's log, once no process holds it
    CentreView.read(centre.engine, "k-net")   # what the centre stored for it

Badges are issued in-process with central.badges.issue_badges on the centre's own database and
key (the CLI only prints them as PDF). Everything else goes through the real commands.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import Engine, func, select

from tests.fakes.faulty_proxy import FaultPlan, FaultyProxy

REPO = Path(__file__).resolve().parents[2]
CENTRAL_CMD = [sys.executable, "-c", "from central.cli import main; main()"]
KIOSK_CMD = [sys.executable, "-c", "from kiosk.cli import main; main()"]
CHAIN_ANOMALIES = ("chain_gap", "chain_fork", "event_conflict", "rejected_event")


class HarnessError(Exception):
    """A process did not start, answer or stop as it should."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(
    check: Callable[[], Any], timeout_s: float, what: str, process: subprocess.Popen | None = None
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise HarnessError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise HarnessError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


def _run(cmd: list[str], what: str, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(
        cmd,
        cwd=REPO,
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise HarnessError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


# --- the centre ------------------------------------------------------------------------------


class Centre:
    """A fresh central instance and its `central serve` process on 127.0.0.1."""

    def __init__(self, instance: Path, threads: int = 8) -> None:
        self.instance = instance
        self.threads = threads
        self.port = 0
        self.centre_key = ""  # the fingerprint `central kiosk add` prints
        self.process: subprocess.Popen | None = None
        self._log_file: Any = None

    def cli(self, *args: str) -> str:
        return _run([*CENTRAL_CMD, "--instance", str(self.instance), *args], f"central {args[0]}")

    def init(self, sites: Mapping[str, int]) -> None:
        """`central init`, then a roster of `sites[site]` cadres per site, imported by the CLI.

        Cadre ids are <site>-<n> (n from 0)."""
        self.cli("init")
        roster = self.instance / "roster.csv"
        with roster.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["id", "name", "unit", "site", "site_name"])
            for site_id, count in sites.items():
                for n in range(count):
                    writer.writerow([f"{site_id}-{n}", f"测试{n}", "e2e", site_id, site_id])
        self.cli("roster", "import", str(roster))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.port = free_port()
        self._log_file = (self.instance / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [
                *CENTRAL_CMD,
                "--instance",
                str(self.instance),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=REPO,
            env=dict(os.environ, CENTRAL_SERVER_THREADS=str(self.threads)),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

        def answers() -> bool:
            try:
                return requests.get(f"{self.url}api/v1/time", timeout=1).ok
            except requests.RequestException:
                return False

        _wait_for(answers, 60, "central serve", self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if "engine" in self.__dict__:
            self.engine.dispose()

    @cached_property
    def settings(self) -> Any:
        from central import settings as central_settings

        return central_settings.load(self.instance, env={})

    @cached_property
    def engine(self) -> Engine:
        """The centre's own database, for looking (the serving process writes it)."""
        from central.db.engine import make_engine

        return make_engine(self.settings.database_url_for(self.instance))

    def add_kiosk(self, site_id: str, kiosk_id: str) -> str:
        """`central kiosk add`; returns the one-time enrolment code it prints (the centre key's
        fingerprint it prints beside it is `centre_key`)."""
        out = _run(
            [
                *CENTRAL_CMD,
                *("--instance", str(self.instance), "kiosk", "add"),
                *("--site", site_id, "--id", kiosk_id, "--no-qr"),
            ],
            "central kiosk add",
            env={"CENTRAL_PUBLIC_URL": self.url},
        )
        match = re.search(r"one-time code: (\S+)", out)
        key = re.search(r"--centre-key (\S+)", out)
        if match is None or key is None:
            raise HarnessError(f"no code in the output of central kiosk add: {out!r}")
        self.centre_key = key.group(1)
        return match.group(1)

    def issue_badges(self, site_id: str) -> list[str]:
        """Signed badge payloads of every cadre of `site_id`, in cadre order (<site>-0, -1...)."""
        from central import badges, keys

        key = keys.load_issuing_key(self.settings.issuing_key_path(self.instance))
        today = datetime.now(ZoneInfo(self.settings.timezone)).date()
        issued = badges.issue_badges(self.engine, key, site_id=site_id, cadre_ids=(), today=today)
        by_number = sorted(issued, key=lambda b: int(b.cadre_id.rsplit("-", 1)[1]))
        return [b.payload for b in by_number]


# --- the network between them ----------------------------------------------------------------


class RouteCountingProxy(FaultyProxy):
    """The fault proxy, also counting which faults each API route got (push, pull, heartbeat)."""

    def __init__(self, target_host: str, target_port: int, plan: FaultPlan) -> None:
        self._current = threading.local()
        self.by_route: Counter[tuple[str, str]] = Counter()
        self.answers_to_gone_clients = 0
        self.centre_said: Counter[str] = Counter()  # summed over the push answers it forwarded
        super().__init__(target_host, target_port, plan)
        self._report_error = self._server.handle_error
        self._server.handle_error = self._client_gone  # type: ignore[method-assign]

    def _client_gone(self, request: Any, address: Any) -> None:
        """The kiosk gave up (its timeout) before a delayed answer came: not the proxy's error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            self._report_error(request, address)
            return
        with self._lock:
            self.answers_to_gone_clients += 1

    def draw(self) -> str:
        fault = super().draw()
        route = getattr(self._current, "route", "?")
        with self._lock:
            self.by_route[(route, fault)] += 1
        return fault

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        """Forward, and add up what the centre said of each push it answered (whether or not
        the answer then reaches the kiosk)."""
        status, answer_headers, data = super().forward(method, path, headers, body)
        if path.split("?")[0].endswith("/events") and status == 200:
            with contextlib.suppress(ValueError, AttributeError):
                answer = json.loads(data)
                with self._lock:
                    for key in ("stored", "duplicates", "rejected"):
                        self.centre_said[key] += int(answer.get(key, 0))
        return status, answer_headers, data

    def set_rates(self, rates: Mapping[str, float]) -> None:
        """Change the faults from now on (e.g. {"drop": 1.0}: the network is down)."""
        with self._lock:
            self.plan.rates = dict(rates)

    def route_counts(self, route: str) -> dict[str, int]:
        with self._lock:
            return {f: n for (r, f), n in sorted(self.by_route.items()) if r == route}

    def _handler_class(self) -> type:
        base = super()._handler_class()
        proxy = self

        class Handler(base):  # type: ignore[misc, valid-type]
            def _relay(self) -> None:
                proxy._current.route = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
                super()._relay()

            do_GET = _relay
            do_POST = _relay
            do_PUT = _relay

        return Handler


# --- the kiosk -------------------------------------------------------------------------------


class KioskProcess:
    """A kiosk instance folder and its `kiosk run` process (respawned after each kill)."""

    def __init__(self, instance: Path, settings: Mapping[str, Any]) -> None:
        self.instance = instance
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.spawned = 0
        self.kills = 0
        self._log_file: Any = None
        self._session = requests.Session()
        self._token: str | None = None
        instance.mkdir(parents=True, exist_ok=True)
        # Loopback only: nothing else can listen on or change the path to the centre.
        values = {
            "listen_host": "127.0.0.1",
            "listen_port": self.port,
            "sync_plain_http_allowed": True,
            **settings,
        }
        lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        (instance / "kiosk.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.instance / "run.log"

    def enroll(self, centre_url: str, code: str, centre_key: str) -> str:
        return _run(
            [
                *KIOSK_CMD,
                *("--instance", str(self.instance), "enroll", centre_url, code),
                *("--centre-key", centre_key),
            ],
            "kiosk enroll",
        )

    def spawn(self, env: Mapping[str, str] | None = None) -> None:
        if self.alive:
            raise HarnessError("the kiosk process is running already")
        if self._log_file is None:
            self._log_file = self.log_path.open("ab")
        self._log_file.write(f"--- spawn {self.spawned + 1}\n".encode())
        self._log_file.flush()
        self.process = subprocess.Popen(
            [*KIOSK_CMD, "--instance", str(self.instance), "run", "--log-level", "WARNING"],
            cwd=REPO,
            env=dict(os.environ, **(env or {})),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.spawned += 1

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        try:
            return self._session.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout_s: float = 60) -> float:
        """Seconds until /healthz answers 200."""
        started = time.monotonic()
        _wait_for(self.healthy, timeout_s, "kiosk run", self.process)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.kills += 1
        if self.process is not None:
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM: the orderly shutdown of systemd's stop."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired as exc:
                self.process.kill()
                self.process.wait(5)
                raise HarnessError("the kiosk did not stop on SIGTERM within 20 s") from exc

    def close(self) -> None:
        with contextlib.suppress(HarnessError):
            self.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._session.close()

    @property
    def screen_token(self) -> str:
        """The X-Screen-Token the kiosk's own page sends (derived from its secret key)."""
        if self._token is None:
            page = self._session.get(f"{self.url}/", timeout=5).text
            match = re.search(r'"screen_token":\s*"([0-9a-f]+)"', page)
            if match is None:
                raise HarnessError("no screen token in the kiosk page")
            self._token = match.group(1)
        return self._token

    def wedge(
        self, payload: str, session: requests.Session | None = None, timeout_s: float = 10
    ) -> dict[str, Any]:
        """One keyboard-wedge scan; the screen's answer (raises requests errors when down)."""
        answer = (session or self._session).post(
            f"{self.url}/screen/wedge",
            json={"payload": payload},
            headers={"X-Screen-Token": self.screen_token},
            timeout=timeout_s,
        )
        answer.raise_for_status()
        return answer.json()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


class ScreenWatcher:
    """Reads the kiosk screen's event stream (/stream) as its browser would, reconnecting after
    every restart. A `scan` event received is a result shown on the screen."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._address = (host, int(port))
        self.scans: list[dict[str, Any]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="screen-watcher", daemon=True)

    def start(self) -> ScreenWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)

    def wait_connected(self, timeout_s: float = 30) -> None:
        if not self._connected.wait(timeout_s):
            raise HarnessError("the screen's event stream did not connect")

    def forget_connection(self) -> None:
        """Call before a restart: wait_connected() then waits for the new process's stream."""
        self._connected.clear()

    @property
    def shown_event_ids(self) -> set[str]:
        with self._lock:
            return {s["event_id"] for s in self.scans if s.get("event_id")}

    def _run(self) -> None:
        while not self._stopping.is_set():
            # A killed kiosk ends the stream mid-line: reconnect, as the screen's browser does.
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                self._follow()
            self._connected.clear()
            self._stopping.wait(0.05)

    def _follow(self) -> None:
        conn = http.client.HTTPConnection(*self._address, timeout=30)
        self._conn = conn
        try:
            conn.request("GET", "/stream", headers={"Accept": "text/event-stream"})
            response = conn.getresponse()
            if response.status != 200:
                response.read()
                return
            self.connections += 1
            event = ""
            while not self._stopping.is_set():
                line = response.readline()
                if not line:
                    return
                text = line.decode("utf-8").rstrip("\r\n")
                if text.startswith("event:"):
                    event = text.partition(":")[2].strip()
                elif text.startswith("data:") and event == "hello":
                    self._connected.set()
                elif text.startswith("data:") and event == "scan":
                    data = json.loads(text.partition(":")[2])
                    with self._lock:
                        self.scans.append(data)
                elif not text:
                    event = ""
        finally:
            conn.close()
            self._conn = None


# --- what each side holds --------------------------------------------------------------------


@dataclass
class KioskLogView:
    """The kiosk's log read from its folder (no kiosk process may hold it)."""

    events: list[Any]
    last_seq: int
    acknowledged_seq: int
    verify_ok: bool
    verify_problems: str
    recovery: str

    @classmethod
    def read(cls, instance: Path) -> KioskLogView:
        from kiosk.store import EventLog, verify_log

        log = EventLog(instance / "log")
        try:
            events = list(log.iter_events())
            report = verify_log(log)
            problems = "" if report.ok else repr(report)
            return cls(
                events,
                log.last_seq,
                log.acknowledged_seq,
                report.ok,
                problems,
                log.recovery.summary() if not log.recovery.clean else "",
            )
        finally:
            log.close()

    @property
    def ids(self) -> set[str]:
        return {str(e.event_id) for e in self.events}


@dataclass
class CentreView:
    """What the centre stored for one kiosk."""

    rows: list[Any]
    chain_seq: int
    max_seq: int
    anomalies_open: Counter[str]
    anomalies_resolved: Counter[str]
    anomaly_rows: list[Any]
    rejected: int
    status: Any

    @classmethod
    def read(cls, engine: Engine, kiosk_id: str) -> CentreView:
        from central.db.schema import anomalies, events, kiosk_status, kiosks, rejected_events

        with engine.connect() as conn:
            rows = conn.execute(
                select(events).where(events.c.kiosk_id == kiosk_id).order_by(events.c.seq)
            ).all()
            head = conn.execute(
                select(kiosks.c.chain_seq, kiosks.c.max_seq).where(kiosks.c.kiosk_id == kiosk_id)
            ).one()
            found = conn.execute(select(anomalies).where(anomalies.c.kiosk_id == kiosk_id)).all()
            rejected = conn.execute(
                select(func.count())
                .select_from(rejected_events)
                .where(rejected_events.c.kiosk_id == kiosk_id)
            ).scalar_one()
            status = conn.execute(
                select(kiosk_status).where(kiosk_status.c.kiosk_id == kiosk_id)
            ).first()
        return cls(
            rows,
            head.chain_seq,
            head.max_seq,
            Counter(a.kind for a in found if a.resolved_at is None),
            Counter(a.kind for a in found if a.resolved_at is not None),
            found,
            rejected,
            status,
        )

    @property
    def ids(self) -> list[str]:
        return [r.event_id for r in self.rows]


def chain_head(engine: Engine, kiosk_id: str) -> tuple[int, int, int | None, datetime | None]:
    """(chain_seq, max_seq, queue length of the last heartbeat, when it came) at the centre."""
    from central.db.schema import kiosk_status, kiosks

    with engine.connect() as conn:
        head = conn.execute(
            select(kiosks.c.chain_seq, kiosks.c.max_seq).where(kiosks.c.kiosk_id == kiosk_id)
        ).one()
        status = conn.execute(
            select(kiosk_status.c.queue_length, kiosk_status.c.received_at).where(
                kiosk_status.c.kiosk_id == kiosk_id
            )
        ).first()
    return (
        head.chain_seq,
        head.max_seq,
        status.queue_length if status else None,
        status.received_at if status else None,
    )


def wait_drained(engine: Engine, kiosk_id: str, since: datetime, timeout_s: float) -> float:
    """Wait for a heartbeat sent after `since` (naive UTC) that reports an empty queue.

    The agent sends its heartbeat after pushing, so by then every event made before `since` is
    acknowledged. Returns the seconds waited."""
    started = time.monotonic()

    def drained() -> bool:
        _, _, queue, at = chain_head(engine, kiosk_id)
        return queue == 0 and at is not None and at > since

    _wait_for(drained, timeout_s, "the kiosk's queue to drain")
    return time.monotonic() - started


def utc_naive_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Delivery:
    """Shown on the screen ⊆ in the kiosk's log ⊆ at the centre, each exactly once."""

    shown: int
    stored: int
    at_centre: int
    shown_not_stored: list[str]
    stored_not_at_centre: list[str]
    at_centre_not_stored: list[str]
    duplicate_ids_at_centre: int
    duplicate_seqs_at_centre: int
    duplicate_ids_in_log: int
    log_verify_ok: bool
    log_problems: str
    chain_seq: int
    max_seq: int
    last_seq: int
    acknowledged_seq: int
    chain_anomalies: dict[str, int]
    rejected: int
    device_times_kept: bool

    @property
    def losses(self) -> int:
        return len(self.shown_not_stored) + len(self.stored_not_at_centre)

    @property
    def duplicates(self) -> int:
        return (
            self.duplicate_ids_at_centre
            + self.duplicate_seqs_at_centre
            + self.duplicate_ids_in_log
            + len(self.at_centre_not_stored)
        )

    @property
    def chains_whole(self) -> bool:
        return (
            self.chain_seq == self.max_seq == self.last_seq == self.stored
            and self.log_verify_ok
            and not any(self.chain_anomalies.values())
        )

    def problems(self) -> list[str]:
        """What is wrong, in words (empty when ok)."""
        found = []
        if self.shown_not_stored:
            found.append(f"shown but not in the log: {self.shown_not_stored[:5]}")
        if self.stored_not_at_centre:
            found.append(f"in the log, not at the centre: {self.stored_not_at_centre[:5]}")
        if self.at_centre_not_stored:
            found.append(f"at the centre, not in the log: {self.at_centre_not_stored[:5]}")
        if self.duplicates:
            found.append(
                f"duplicates: ids at centre {self.duplicate_ids_at_centre}, seqs at centre "
                f"{self.duplicate_seqs_at_centre}, ids in log {self.duplicate_ids_in_log}"
            )
        if not self.chains_whole:
            found.append(
                f"chain: centre chain_seq {self.chain_seq} max_seq {self.max_seq}, log last seq "
                f"{self.last_seq}, {self.stored} events, log verify {self.log_problems or 'ok'}, "
                f"anomalies {self.chain_anomalies}"
            )
        if self.rejected:
            found.append(f"{self.rejected} events rejected by the centre")
        if self.acknowledged_seq != self.last_seq:
            found.append(f"acknowledged {self.acknowledged_seq} of {self.last_seq}")
        if not self.device_times_kept:
            found.append("the centre's device_time differs from the kiosk's")
        return found

    def figures(self) -> dict[str, Any]:
        return {
            "shown on screen": self.shown,
            "stored in kiosk log": self.stored,
            "stored at centre": self.at_centre,
            "losses": self.losses,
            "duplicates": self.duplicates,
            "chain": f"chain_seq {self.chain_seq} = max_seq {self.max_seq} = last seq "
            f"{self.last_seq}" + ("" if self.chains_whole else " (NOT whole)"),
            "chain anomalies": dict(self.chain_anomalies) or "none",
            "rejected at centre": self.rejected,
        }


def compare(shown_ids: Iterable[str], log: KioskLogView, centre: CentreView) -> Delivery:
    shown = set(shown_ids)
    stored = log.ids
    centre_ids = centre.ids
    at_centre = set(centre_ids)
    seqs = [r.seq for r in centre.rows]
    by_id = {str(e.event_id): e for e in log.events}
    times_kept = all(
        r.device_time == by_id[r.event_id].device_time.astimezone(UTC).replace(tzinfo=None)
        for r in centre.rows
        if r.event_id in by_id
    )
    return Delivery(
        shown=len(shown),
        stored=len(log.events),
        at_centre=len(centre_ids),
        shown_not_stored=sorted(shown - stored),
        stored_not_at_centre=sorted(stored - at_centre),
        at_centre_not_stored=sorted(at_centre - stored),
        duplicate_ids_at_centre=len(centre_ids) - len(at_centre),
        duplicate_seqs_at_centre=len(seqs) - len(set(seqs)),
        duplicate_ids_in_log=len(log.events) - len(stored),
        log_verify_ok=log.verify_ok,
        log_problems=log.verify_problems,
        chain_seq=centre.chain_seq,
        max_seq=centre.max_seq,
        last_seq=log.last_seq,
        acknowledged_seq=log.acknowledged_seq,
        chain_anomalies={
            k: centre.anomalies_open[k] + centre.anomalies_resolved[k] for k in CHAIN_ANOMALIES
        },
        rejected=centre.rejected,
        device_times_kept=times_kept,
    )


# --- small things the trials share -----------------------------------------------------------


def blank_camera_folder(folder: Path) -> Path:
    """A folder with one empty grey frame: an `images` camera that sees nobody."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "empty.png"), np.full((480, 640), 128, dtype=np.uint8))
    return folder


def forged(payload: str) -> str:
    """A badge with one signature character changed: refused as forged."""
    last = payload[-1]
    return payload[:-1] + ("A" if last != "A" else "B")


@dataclass
class Stopwatch:
    started: float = field(default_factory=time.monotonic)

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 1)


def service_day_of(moment: datetime, timezone: str = "Asia/Shanghai", start_hour: int = 3) -> date:
    local = moment.astimezone(ZoneInfo(timezone)) - timedelta(hours=start_hour)
    return local.date()
