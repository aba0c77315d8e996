"""The dawn surge: 500 kiosks, 40,000 check-ins in half an hour, against 1 and 3 centre processes.

Simulated kiosks are the real sync agent and HTTP client (sync/agent.py, sync/client.py) with a
log in memory (tests/scale/cluster.py KioskLog), many per process in a few worker processes,
each with default sync settings: a scan appends to the log and wakes the agent, which pushes at
once; pull (what changed since the kiosk's last pull) and heartbeat every 30 s. They talk HTTP
through a round-robin proxy (its own process; tests/fakes/round_robin_proxy.py, what nginx
does) to `central serve` processes on one PostgreSQL database. Every cadre scans once; arrival
times follow a shift start (a beta curve: few early, a peak some minutes before the start, a
tail of the late), 30 simulated minutes compressed into --real-minutes. A share of the kiosks
(--offline-share) is offline from 25% to 70% of the window: they keep scanning and push their
backlog when they come back.

Scenarios, each on a copy of one prepared database (roster, badges and kiosks made once):
one process, three processes, three with one killed (SIGKILL) half-way. Printed for each:

- offered scans/s and stored events/s (whole run and the busiest minute);
- scan to visible in the all-sites figures (a stay row for the arrival, polled every 0.5 s),
  p50 / p95 / max, for kiosks online and, apart, for the backlog of the offline ones;
- the all-sites page (GET /staff/, logged in, through the proxy, once a second) during the
  surge: p50 / p95 / max and errors;
- CPU seconds of each centre process, of PostgreSQL's backends for this database, of the proxy
  and of the kiosk workers (which share the machine's cores), and the most connections held.

    .venv/bin/python bench/dawn.py                               # 500 kiosks, 40,000, 4 min
    .venv/bin/python bench/dawn.py --kiosks 50 --checkins 4000 --real-minutes 1   # a quick look

Needs PostgreSQL: --server-url or $CADRE_TEST_POSTGRES_URL (scripts/start-test-postgres.sh).
Everything runs on this machine: the load generator competes with the centre for the cores, so
read the CPU lines before the rates.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests
from sqlalchemy import make_url, text

from tests.central_web.helpers import csrf_from
from tests.scale.cluster import RECOMMENDED, Cluster

HERE = Path(__file__).resolve()
CLK_TCK = os.sysconf("SC_CLK_TCK")
STAFF = ("dawn", "dawn staff password 1")


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every core, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / CLK_TCK, sum(fields) / CLK_TCK


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- the kiosk worker (a child process) ----------------------------------------------------------


class HeldVersions:
    """What a kiosk holds of the roster, keys and settings, as a real kiosk keeps it: its
    pulls ask only for what changed since (a full roster once, then nothing at dawn)."""

    def __init__(self) -> None:
        from sync.protocol import PullRequest

        self._request = PullRequest()

    def request(self) -> Any:
        return self._request

    def take(self, answer: Any) -> None:
        changed: dict[str, Any] = {}
        if answer.roster is not None:
            changed["roster_version"] = answer.roster.version
        if answer.public_keys is not None:
            changed["keys_version"] = answer.public_keys.version
        if answer.settings is not None:
            changed["settings_version"] = answer.settings.version
        if changed:
            self._request = self._request.model_copy(update=changed)


def worker(spec_path: Path, out_path: Path) -> int:
    from central.kiosks import KioskIdentity
    from sync.agent import SyncAgent
    from sync.client import CentralClient
    from tests.scale.cluster import KioskLog

    spec = json.loads(spec_path.read_text())
    t0 = spec["t0"]
    network_cut = threading.Event()
    CutOffClient = _cut_off_client_class()
    logs: dict[str, KioskLog] = {}
    agents: dict[str, SyncAgent] = {}
    schedule: list[tuple[float, str, str, str, int]] = []
    for k in spec["kiosks"]:
        log = KioskLog(KioskIdentity(k["kiosk_id"], k["site_id"]))
        logs[k["kiosk_id"]] = log
        client: CentralClient = (
            CutOffClient(network_cut, spec["url"], k["token"], timeout_s=30)
            if k["offline"]
            else CentralClient(spec["url"], k["token"], timeout_s=30)
        )
        held = HeldVersions()
        agents[k["kiosk_id"]] = SyncAgent(
            log,
            client,
            k["kiosk_id"],
            log.boot_id,
            pull_versions=held.request,
            on_pull=held.take,
        )
        schedule += [
            (at, k["kiosk_id"], cadre, token, serial) for at, cadre, token, serial in k["scans"]
        ]
    schedule.sort()
    offline = {k["kiosk_id"] for k in spec["kiosks"] if k["offline"]}
    # The offline kiosks lose the network at offline_from and get it back at offline_until, as
    # a site's uplink does: their agents run throughout and fail as a real one would meanwhile.
    cut_at, back_at = spec["offline_from"], spec["offline_until"]
    scanned: list[tuple[str, str, float]] = []
    for agent in agents.values():
        agent.start()
    cut, back = False, False

    def reconnect() -> None:
        network_cut.clear()
        for kiosk_id_off in offline:
            agents[kiosk_id_off].wake()

    for at, kiosk_id, cadre, token, serial in schedule:
        if not cut and at >= cut_at:
            time.sleep(max(0.0, t0 + cut_at - time.time()))
            network_cut.set()
            cut = True
        if not back and at >= back_at:
            time.sleep(max(0.0, t0 + back_at - time.time()))
            reconnect()
            back = True
        time.sleep(max(0.0, t0 + at - time.time()))
        event = logs[kiosk_id].record(cadre, "arrival", (token, serial))
        scanned.append((str(event.event_id), kiosk_id, time.time()))
        agents[kiosk_id].wake()
    if not back:
        reconnect()
    deadline = time.time() + spec["drain_s"]
    while time.time() < deadline and any(log.pending_count() for log in logs.values()):
        for agent in agents.values():
            agent.wake()
        time.sleep(0.5)
    left = sum(log.pending_count() for log in logs.values())
    for agent in agents.values():
        agent.stop(5)
    out_path.write_text(
        json.dumps(
            {
                "scanned": scanned,
                "left": left,
                "cpu_s": cpu_seconds(os.getpid()),
                "errors": Counter(
                    a.snapshot().last_error_code or "ok" for a in agents.values()
                ).most_common(),
            }
        )
    )
    return 0


def _cut_off_client_class() -> type:
    from sync.client import CentralClient, SyncError

    class CutOffClient(CentralClient):
        """The real client, behind a site uplink the bench can cut: while it is cut, every
        exchange fails as an unreachable centre does, before anything is sent."""

        def __init__(self, cut: threading.Event, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._cut = cut

        def _exchange(self, *args: Any, **kwargs: Any) -> Any:
            if self._cut.is_set():
                raise SyncError("cannot reach the centre: the site's network is cut (bench)")
            return super()._exchange(*args, **kwargs)

    return CutOffClient


def proxy_child(ports: list[int], ready: Path, keepalive: int) -> int:
    from tests.fakes.round_robin_proxy import RoundRobinProxy

    proxy = RoundRobinProxy(ports, keepalive=keepalive).start()
    ready.write_text(proxy.url)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    proxy.stop()
    return 0


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class Plan:
    sites: list[str]
    cadres: dict[str, list[str]]  # site -> cadre ids
    arrivals: list[tuple[float, str, str]]  # (real offset s, site, cadre)
    offline_sites: set[str]
    offline_from: float
    offline_until: float
    window_s: float


def make_plan(args: argparse.Namespace) -> Plan:
    rng = random.Random(args.seed)
    sites = [f"D{n:03d}" for n in range(args.kiosks)]
    per = args.checkins // len(sites)
    extra = args.checkins - per * len(sites)
    cadres = {
        s: [f"{s}-{i}" for i in range(per + (1 if n < extra else 0))] for n, s in enumerate(sites)
    }
    window = args.real_minutes * 60
    arrivals = []
    for site, ids in cadres.items():
        for cadre in ids:
            # A shift start at the end of the window: a peak about 6 minutes before it.
            arrivals.append((rng.betavariate(3.0, 1.6) * window, site, cadre))
    arrivals.sort()
    offline = set(rng.sample(sites, round(args.offline_share * len(sites))))
    return Plan(sites, cadres, arrivals, offline, 0.25 * window, 0.70 * window, window)


# --- one scenario -----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    processes: int
    scanned: dict[str, tuple[str, float]] = field(default_factory=dict)  # event -> kiosk, at
    visible: dict[str, float] = field(default_factory=dict)
    page: list[tuple[float, float, int]] = field(default_factory=list)  # at, seconds, status
    health: list[tuple[float, float, int]] = field(default_factory=list)  # GET /healthz, same
    cpu_centre: dict[int, float] = field(default_factory=dict)
    cpu_postgres: float = 0.0
    cpu_proxy: float = 0.0
    cpu_workers: float = 0.0
    connections_max: int = 0
    connections_by_process: dict[str, int] = field(default_factory=dict)
    received: list[float] = field(default_factory=list)
    stored_at: dict[str, float] = field(default_factory=dict)  # event -> received by the centre
    stored: int = 0
    distinct: int = 0
    left: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    killed_at: float | None = None
    staff_process: bool = False  # the last of cpu_centre served the staff pages only
    machine_busy: float = 0.0  # CPU s the whole machine spent over the scans (others' too)
    machine_total: float = 0.0  # CPU s it had (cores x seconds)
    started: float = 0.0
    ended: float = 0.0
    stays_steps: list[tuple[str, float, float, int]] = field(default_factory=list)


class Watch:
    """Polls, in the main process: stays that appeared (first seen per arrival event), the
    all-sites page, and PostgreSQL's backends (connections and their CPU)."""

    def __init__(self, cluster: Cluster, proxy_url: str, result: Result, staff_url: str) -> None:
        self.cluster = cluster
        self.proxy_url = proxy_url
        self.staff_url = staff_url
        self.result = result
        self._stop = threading.Event()
        self._backend_cpu: dict[int, float] = {}
        self._threads = [
            threading.Thread(target=self._stays, daemon=True),
            threading.Thread(target=self._page, daemon=True),
            threading.Thread(target=self._health, daemon=True),
            threading.Thread(target=self._backends, daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self.result.cpu_postgres = sum(self._backend_cpu.values())

    def _stays(self) -> None:
        last = 0
        query = text(
            "SELECT stay_id, arrival_event_id FROM stays WHERE stay_id > :last ORDER BY stay_id"
        )
        while not self._stop.wait(0.5):
            try:
                with self.cluster.engine.connect() as conn:
                    rows = conn.execute(query, {"last": last}).all()
            except Exception:
                continue
            seen = time.time()
            for row in rows:
                last = max(last, row.stay_id)
                if row.arrival_event_id and row.arrival_event_id not in self.result.visible:
                    self.result.visible[row.arrival_event_id] = seen

    def _page(self) -> None:
        browser = requests.Session()
        page = browser.get(f"{self.staff_url}staff/login", timeout=30)
        browser.post(
            f"{self.staff_url}staff/login",
            data={"username": STAFF[0], "password": STAFF[1], "csrf_token": csrf_from(page.text)},
            allow_redirects=False,
            timeout=30,
        )
        while not self._stop.wait(1.0):
            began = time.time()
            try:
                answer = browser.get(f"{self.staff_url}staff/", timeout=60, allow_redirects=False)
                status = answer.status_code
            except requests.RequestException:
                status = 0
            self.result.page.append((began, time.time() - began, status))

    def _health(self) -> None:
        # Two tiny queries: its latency is the wait in a centre's queue of requests, what every
        # page waits for before its own work begins.
        while not self._stop.wait(1.0):
            began = time.time()
            try:
                status = requests.get(f"{self.proxy_url}healthz", timeout=60).status_code
            except requests.RequestException:
                status = 0
            self.result.health.append((began, time.time() - began, status))

    def _backends(self) -> None:
        query = text(
            "SELECT pid, application_name FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        while not self._stop.wait(0.5):
            try:
                with self.cluster.engine.connect() as conn:
                    rows = conn.execute(query).all()
            except Exception:
                continue
            per = Counter(
                r.application_name for r in rows if r.application_name.startswith("central")
            )
            self.result.connections_max = max(self.result.connections_max, sum(per.values()))
            for name, count in per.items():
                known = self.result.connections_by_process.get(name, 0)
                self.result.connections_by_process[name] = max(known, count)
            for row in rows:
                used = cpu_seconds(row.pid)
                if used is not None:
                    self._backend_cpu[row.pid] = used


def run_scenario(
    name: str,
    processes: int,
    kill: bool,
    template: str,
    template_instance: Path,
    server_url: str,
    plan: Plan,
    kiosks: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    workdir: Path,
) -> Result:
    result = Result(name, processes)
    database = f"cadre_dawn_{uuid.uuid4().hex[:8]}"
    admin = make_engine_autocommit(server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}" TEMPLATE "{template}"'))
    url = make_url(server_url).set(database=database).render_as_string(hide_password=False)
    instance = workdir / name / "central"
    shutil.copytree(template_instance, instance)
    settings = {"trusted_proxies": 1}
    cluster = Cluster(instance, url, settings, threads=args.threads)
    proxy: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = []
    watch: Watch | None = None
    try:
        cluster.start(processes)
        ready = workdir / name / "proxy-url"
        proxy = subprocess.Popen(
            [
                sys.executable,
                str(HERE),
                "--proxy-child",
                ",".join(map(str, cluster.ports)),
                "--ready",
                str(ready),
                "--proxy-keepalive",
                str(args.proxy_keepalive),
            ]
        )
        deadline = time.time() + 30
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.1)
        proxy_url = ready.read_text()
        staff_url = proxy_url
        if args.staff_upstream:
            # Staff pages on an upstream of their own (docs/central-nginx.md): one more process
            # that no kiosk talks to, as nginx's `location /staff/` sends them.
            cluster.start(1)
            staff_url = cluster.processes[-1].url
            result.staff_process = True
        watch = Watch(cluster, proxy_url, result, staff_url)
        watch.start()
        t0 = time.time() + 5  # the workers' start, once they have built their agents
        chunks: list[list[str]] = [plan.sites[i :: args.workers] for i in range(args.workers)]
        outs = []
        for index, chunk in enumerate(chunks):
            spec = {
                "url": proxy_url,
                "t0": t0,
                "offline_from": plan.offline_from,
                "offline_until": plan.offline_until,
                "drain_s": args.drain_s,
                "kiosks": [
                    {
                        "kiosk_id": kiosks[site]["kiosk_id"],
                        "site_id": site,
                        "token": kiosks[site]["token"],
                        "offline": site in plan.offline_sites,
                        "scans": [
                            [at, cadre, *kiosks[site]["badges"][cadre]]
                            for at, s, cadre in plan.arrivals
                            if s == site
                        ],
                    }
                    for site in chunk
                ],
            }
            spec_path = workdir / name / f"worker-{index}.json"
            spec_path.write_text(json.dumps(spec))
            out = workdir / name / f"worker-{index}.out.json"
            outs.append(out)
            workers.append(
                subprocess.Popen(
                    [sys.executable, str(HERE), "--worker", str(spec_path), "--out", str(out)]
                )
            )
        result.started = t0
        time.sleep(max(0.0, t0 - time.time()))
        busy_before, total_before = machine_cpu()
        if kill:
            time.sleep(max(0.0, t0 + plan.window_s / 2 - time.time()))
            victim = cluster.processes[0]
            result.cpu_centre[victim.process.pid] = cpu_seconds(victim.process.pid) or 0.0
            cluster.kill(victim)
            result.killed_at = time.time()
        for process in workers:
            process.wait()
        result.ended = time.time()
        busy_after, total_after = machine_cpu()
        result.machine_busy = busy_after - busy_before
        result.machine_total = total_after - total_before
        # Let the stays duty finish what was pushed last.
        settle = time.time() + 60
        while time.time() < settle and len(result.visible) < len(plan.arrivals):
            time.sleep(0.5)
        for serving in cluster.processes:
            if serving.alive:
                result.cpu_centre[serving.process.pid] = cpu_seconds(serving.process.pid) or 0.0
        if proxy is not None:
            result.cpu_proxy = cpu_seconds(proxy.pid) or 0.0
        for out in outs:
            data = json.loads(out.read_text())
            for event_id, kiosk_id, at in data["scanned"]:
                result.scanned[event_id] = (kiosk_id, at)
            result.left += data["left"]
            result.cpu_workers += data["cpu_s"] or 0.0
            result.errors.update(dict(data["errors"]))
        with cluster.engine.connect() as conn:
            result.stored_at = {
                r.event_id: r.received_at.replace(tzinfo=UTC).timestamp()
                for r in conn.execute(text("SELECT event_id, received_at FROM events"))
            }
            result.received = list(result.stored_at.values())
            result.stored = len(result.received)
            result.distinct = conn.execute(
                text("SELECT count(DISTINCT event_id) FROM events")
            ).scalar_one()
            # What the stays duty did (central/duties/runner.py records each step that worked).
            result.stays_steps = [
                (r.holder, r.started_at.timestamp(), r.ended_at.timestamp(), r.items)
                for r in conn.execute(
                    text(
                        "SELECT holder, started_at, ended_at, items FROM duty_runs "
                        "WHERE duty = 'stays' ORDER BY started_at"
                    )
                )
            ]
    finally:
        if watch is not None:
            watch.stop()
        for process in workers:
            if process.poll() is None:
                process.kill()
        if proxy is not None and proxy.poll() is None:
            proxy.terminate()
            proxy.wait(10)
        cluster.stop()
        drop_database(admin, database)
        admin.dispose()
    return result


def drop_database(admin: Any, name: str) -> None:
    """Drop a database of the run; a moment later again when a backend of another role (a
    monitor, autovacuum) is on it, and in the end only say so: the figures matter more."""
    for attempt in range(10):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except Exception as exc:
            if attempt == 9:
                print(f"  could not drop database {name}: {exc}".splitlines()[0], flush=True)
            time.sleep(3)


def make_engine_autocommit(url: str) -> Any:
    from central.db.engine import make_engine

    return make_engine(url, isolation_level="AUTOCOMMIT")


# --- preparing the template -------------------------------------------------------------------


def prepare(
    args: argparse.Namespace, plan: Plan, workdir: Path
) -> tuple[str, Path, dict[str, dict[str, Any]]]:
    """A database with the roster, badges, kiosks and a staff account, copied per scenario."""
    from central import badges, keys
    from central import kiosks as kiosk_store

    template = f"cadre_dawn_tpl_{uuid.uuid4().hex[:8]}"
    admin = make_engine_autocommit(args.server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{template}"'))
        for setting, value in RECOMMENDED.items():
            conn.execute(text(f"ALTER DATABASE \"{template}\" SET {setting} = '{value}'"))
    admin.dispose()
    url = make_url(args.server_url).set(database=template).render_as_string(hide_password=False)
    instance = workdir / "template" / "central"
    cluster = Cluster(instance, url, {})
    started = time.monotonic()
    cluster.init({site: len(plan.cadres[site]) for site in plan.sites})
    cluster.cli_input(STAFF[1] + "\n", "user", "add", STAFF[0], "--role", "viewer")
    key = keys.load_issuing_key(cluster.settings.issuing_key_path(instance))
    issued = badges.issue_badges(cluster.engine, key)
    by_cadre = {b.cadre_id: (b.payload, b.serial) for b in issued}
    now = datetime.now(UTC)
    kiosks: dict[str, dict[str, Any]] = {}
    for site in plan.sites:
        code = kiosk_store.add_kiosk(cluster.engine, site, now, timedelta(hours=2))
        identity, _, token = kiosk_store.enrol(cluster.engine, code.code, now)
        kiosks[site] = {
            "kiosk_id": identity.kiosk_id,
            "token": token,
            "badges": {c: by_cadre[c] for c in plan.cadres[site]},
        }
    cluster.engine.dispose()
    print(
        f"prepared {len(by_cadre)} cadres with badges, {len(kiosks)} kiosks in "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    return template, instance, kiosks


# --- report -----------------------------------------------------------------------------------


def busiest_minute(times: list[float]) -> float:
    if not times:
        return 0.0
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] > 60:
            start += 1
        best = max(best, end - start + 1)
    return best / 60


def report(result: Result, plan: Plan) -> None:
    print(
        f"== {result.name}: {result.processes} centre process(es)"
        + (f", one killed at {result.killed_at - result.started:.0f} s" if result.killed_at else "")
    )
    scans = [at for _, at in result.scanned.values()]
    span = max(scans) - min(scans) if scans else 0
    print(
        f"  offered: {len(scans)} scans in {span:.0f} s ({len(scans) / max(span, 1):.0f}/s), "
        f"busiest minute {busiest_minute(scans):.0f}/s"
    )
    stored_span = max(result.received) - min(result.received) if result.received else 0
    print(
        f"  stored: {result.stored} events ({result.distinct} distinct) in {stored_span:.0f} s "
        f"({result.stored / max(stored_span, 1):.0f}/s), busiest minute "
        f"{busiest_minute(result.received):.0f}/s; left unsent at the end {result.left}"
    )
    offline_from = result.started + plan.offline_from
    offline_until = result.started + plan.offline_until
    online_delay, backlog_delay, online_stored = [], [], []
    missing = 0
    for event_id, (kiosk_id, at) in result.scanned.items():
        site = kiosk_id.split("-")[0]
        backlog = site in plan.offline_sites and offline_from <= at < offline_until
        stored = result.stored_at.get(event_id)
        if stored is not None and not backlog:
            online_stored.append(stored - at)
        seen = result.visible.get(event_id)
        if seen is None:
            missing += 1
            continue
        if backlog:
            backlog_delay.append(seen - at)
        else:
            online_delay.append(seen - at)
    if online_stored:
        # Where scan to visible goes: the push (kiosk to the centre's commit) and the rest.
        print(
            f"  scan to stored, online kiosks: p50 {percentile(online_stored, 0.5):.1f} s, p95 "
            f"{percentile(online_stored, 0.95):.1f} s, max {max(online_stored):.1f} s"
        )
    for label, delays in (("online kiosks", online_delay), ("offline backlog", backlog_delay)):
        if delays:
            print(
                f"  scan to visible, {label}: p50 {percentile(delays, 0.5):.1f} s, p95 "
                f"{percentile(delays, 0.95):.1f} s, max {max(delays):.1f} s (n={len(delays)})"
            )
    if missing:
        print(f"  not visible within 60 s of the end: {missing}")
    during = [(s, status) for at, s, status in result.page if result.started <= at <= result.ended]
    ok = [s for s, status in during if status == 200]
    if ok:
        print(
            f"  all-sites page during the surge: p50 {percentile(ok, 0.5) * 1000:.0f} ms, p95 "
            f"{percentile(ok, 0.95) * 1000:.0f} ms, max {max(ok) * 1000:.0f} ms "
            f"(n={len(ok)}, errors {len(during) - len(ok)})"
        )
    health = [s for at, s, _ in result.health if result.started <= at <= result.ended]
    if health:
        print(
            f"  GET /healthz during the surge (the wait in the centre's queue): p50 "
            f"{percentile(health, 0.5) * 1000:.0f} ms, p95 {percentile(health, 0.95) * 1000:.0f} "
            f"ms, max {max(health) * 1000:.0f} ms (n={len(health)})"
        )
    centre = " + ".join(f"{v:.0f}" for v in result.cpu_centre.values())
    print(
        f"  CPU s: centre {centre}{' (the last: staff pages)' if result.staff_process else ''} = "
        f"{sum(result.cpu_centre.values()):.0f}; PostgreSQL backends "
        f"{result.cpu_postgres:.0f}; proxy {result.cpu_proxy:.0f}; kiosk workers "
        f"{result.cpu_workers:.0f}"
    )
    if result.machine_total:
        ours = (
            sum(result.cpu_centre.values())
            + result.cpu_postgres
            + result.cpu_proxy
            + result.cpu_workers
        )
        print(
            f"  machine over the scans: {result.machine_busy:.0f} CPU s busy of "
            f"{result.machine_total:.0f} ({100 * result.machine_busy / result.machine_total:.0f}%);"
            f" this run's processes about {ours:.0f} (centre, PostgreSQL, proxy, kiosks, whole "
            f"run), the load generator (proxy and kiosks) "
            f"{result.cpu_proxy + result.cpu_workers:.0f}"
        )
    steps = result.stays_steps
    if steps:
        took = [ended - started for _, started, ended, _ in steps]
        gaps = [later[1] - earlier[2] for earlier, later in itertools.pairwise(steps)]
        items = [n for *_, n in steps]
        print(
            f"  stays duty: {len(steps)} steps by {len({h for h, *_ in steps})} holder(s), "
            f"{sum(items)} pairs, {sum(items) / len(steps):.0f} a step (most {max(items)}); a "
            f"step took p50 {1000 * percentile(took, 0.5):.0f} ms, p95 "
            f"{1000 * percentile(took, 0.95):.0f} ms, max {1000 * max(took):.0f} ms; between "
            f"steps p50 {1000 * percentile(gaps, 0.5):.0f} ms, max "
            f"{1000 * max(gaps, default=0):.0f} ms"
        )
    most = max(result.connections_by_process.values(), default=0)
    print(
        f"  connections: at most {result.connections_max} at once, {most} by one process; "
        f"kiosk agents' last state {dict(result.errors)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kiosks", type=int, default=500)
    parser.add_argument("--checkins", type=int, default=40_000)
    parser.add_argument(
        "--real-minutes", type=float, default=4.0, help="the 30 minutes, compressed"
    )
    parser.add_argument("--offline-share", type=float, default=0.10)
    parser.add_argument("--workers", type=int, default=4, help="kiosk worker processes")
    parser.add_argument("--threads", type=int, default=8, help="server_threads per centre process")
    parser.add_argument("--drain-s", type=float, default=120, help="after the last scan")
    parser.add_argument("--scenarios", default="1,3,3kill")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--server-url", default=os.environ.get("CADRE_TEST_POSTGRES_URL", ""))
    parser.add_argument(
        "--staff-upstream",
        action="store_true",
        help="serve the staff pages from one more process of their own, as docs/central-nginx.md "
        "recommends (the page is polled there; kiosks still go through the proxy)",
    )
    parser.add_argument(
        "--proxy-keepalive",
        type=int,
        default=0,
        help="idle connections the proxy keeps to each centre process (nginx's keepalive; 0, "
        "the default: a new connection for every request). With 32 the scans' median fell but "
        "their p95 doubled: an overloaded process served the kept connections first while new "
        "ones waited to be accepted, past the kiosks' 15 s timeout (docs/decisions.md)",
    )
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--proxy-child", help=argparse.SUPPRESS)
    parser.add_argument("--ready", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.out)
    if args.proxy_child:
        return proxy_child(
            [int(p) for p in args.proxy_child.split(",")], args.ready, args.proxy_keepalive
        )
    if not args.server_url:
        parser.error("needs --server-url or CADRE_TEST_POSTGRES_URL (PostgreSQL)")
    plan = make_plan(args)
    workdir = Path(tempfile.mkdtemp(prefix="bench-dawn-"))
    load = os.getloadavg()
    print(
        f"{args.kiosks} kiosks ({len(plan.offline_sites)} offline from {plan.offline_from:.0f} to "
        f"{plan.offline_until:.0f} s), {len(plan.arrivals)} check-ins over 30 simulated minutes "
        f"in {plan.window_s:.0f} s ({30 / args.real_minutes:.1f}x compressed); "
        f"{args.workers} kiosk workers; {args.threads} threads per "
        f"centre process{'; staff pages on a process of their own' if args.staff_upstream else ''}"
        f"; the proxy keeps {args.proxy_keepalive} idle connections per process"
        f"; {os.cpu_count()} cores, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"at start; work folder {workdir}",
        flush=True,
    )
    template, instance, kiosks = prepare(args, plan, workdir)
    results = []
    try:
        for scenario in args.scenarios.split(","):
            processes = int(scenario.rstrip("kil"))
            result = run_scenario(
                scenario,
                processes,
                scenario.endswith("kill"),
                template,
                instance,
                args.server_url,
                plan,
                kiosks,
                args,
                workdir,
            )
            report(result, plan)
            print(f"  load average after: {os.getloadavg()[0]:.1f}", flush=True)
            results.append(result)
    finally:
        admin = make_engine_autocommit(args.server_url)
        drop_database(admin, template)
        admin.dispose()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
