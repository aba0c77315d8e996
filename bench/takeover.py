"""Several `central serve` processes on one PostgreSQL: duty takeover and what they hold.

A fresh database, N `central serve` processes behind the round-robin proxy of
tests/fakes/round_robin_proxy.py, and K kiosks (the real sync agent and HTTP client, a log in
memory) scanning and pushing all along. Meanwhile the process holding the stays duty is killed
with SIGKILL a few times (a new process is started in its place each time), then stopped once
with SIGTERM. Printed:

- takeover: seconds from the kill (by the database's clock) until another process holds the
  stays lease, and until it has done the duty's work (first `duty_runs` row) when there was some;
- the connections each process holds (pg_stat_activity by application_name) against its pool,
  and the longest statement and the longest open transaction seen (what statement_timeout and
  idle_in_transaction_session_timeout must allow, docs/central-nginx.md; the database is made
  with the values recommended there);
- the end state: every event stored once, the stays queue empty, no two duty runs at once.

    .venv/bin/python bench/takeover.py                        # 3 processes, 20 kiosks, 3 kills
    .venv/bin/python bench/takeover.py --processes 2 --kills 1 --lease-s 10

Needs a PostgreSQL server: --server-url, or $CADRE_TEST_POSTGRES_URL (scripts/start-test-postgres.sh
prints one). Figures depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text

from central import kiosks
from central.db import schema
from central.db.engine import DUTY_CONNECTIONS, POOL_OVERFLOW
from central.duties import lease as leases
from central.duties.report import overlapping_runs
from central.stays import store as stay_store
from sync.agent import AgentTuning, SyncAgent
from sync.client import CentralClient
from tests.fakes.round_robin_proxy import RoundRobinProxy
from tests.scale.cluster import Cluster, KioskLog, fresh_database, holder_pid

CADRES_PER_SITE = 30


class Sampler:
    """pg_stat_activity every `every_s`: connections per process, longest statement and
    transaction."""

    def __init__(self, cluster: Cluster, every_s: float = 0.5) -> None:
        self.cluster = cluster
        self.every_s = every_s
        self.max_by_process: Counter[str] = Counter()
        self.max_total = 0
        self.longest_statement_s = 0.0
        self.longest_transaction_s = 0.0
        self.longest_idle_in_transaction_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        query = text(
            "SELECT application_name, state,"
            " extract(epoch FROM clock_timestamp() - query_start) AS running,"
            " extract(epoch FROM clock_timestamp() - xact_start) AS open_for"
            " FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE 'central %' AND pid <> pg_backend_pid()"
        )
        while not self._stop.wait(self.every_s):
            try:
                with self.cluster.engine.connect() as conn:
                    rows = conn.execute(query).all()
            except Exception:  # the database is busy being killed around: try again
                continue
            per = Counter(r.application_name for r in rows)
            for name, count in per.items():
                self.max_by_process[name] = max(self.max_by_process[name], count)
            self.max_total = max(self.max_total, len(rows))
            for r in rows:
                if r.state == "active" and r.running is not None:
                    self.longest_statement_s = max(self.longest_statement_s, float(r.running))
                if r.open_for is not None:
                    self.longest_transaction_s = max(self.longest_transaction_s, float(r.open_for))
                if r.state == "idle in transaction" and r.running is not None:
                    self.longest_idle_in_transaction_s = max(
                        self.longest_idle_in_transaction_s, float(r.running)
                    )


class Kiosks:
    """K kiosks, one per site, each scanning a cadre of its site every `every_s` and pushing."""

    def __init__(self, cluster: Cluster, proxy: RoundRobinProxy, count: int, every_s: float):
        self.every_s = every_s
        self.logs: list[KioskLog] = []
        self.agents: list[SyncAgent] = []
        self.retries = 0
        self._stop = threading.Event()
        now = datetime.now(UTC)
        self.badges = {f"TO{n:03d}": cluster.badges(f"TO{n:03d}") for n in range(count)}
        for n in range(count):
            site = f"TO{n:03d}"
            code = kiosks.add_kiosk(cluster.engine, site, now, timedelta(hours=1))
            identity, _, token = kiosks.enrol(cluster.engine, code.code, now)
            log = KioskLog(identity)
            self.logs.append(log)
            client = CentralClient(proxy.url, token, timeout_s=30)
            self.agents.append(
                SyncAgent(log, client, identity.kiosk_id, log.boot_id, tuning=AgentTuning())
            )
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(count)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def _run(self, index: int) -> None:
        log, agent = self.logs[index], self.agents[index]
        site = log.identity.site_id
        kinds: dict[str, str] = {}
        n = 0
        while not self._stop.is_set():
            cadre = f"{site}-{n % CADRES_PER_SITE}"
            kinds[cadre] = "departure" if kinds.get(cadre) == "arrival" else "arrival"
            log.record(cadre, kinds[cadre], self.badges[site][cadre])
            n += 1
            if not agent.run_cycle(full=n % 20 == 1):
                self.retries += 1
            self._stop.wait(self.every_s)
        deadline = time.monotonic() + 120
        while log.pending_count() and time.monotonic() < deadline:
            if not agent.run_cycle(full=False):
                self.retries += 1
                time.sleep(0.2)

    @property
    def made(self) -> int:
        return sum(len(log.events) for log in self.logs)


def stays_holder(cluster: Cluster) -> dict[str, Any] | None:
    with cluster.engine.connect() as conn:
        for row in leases.holders(conn):
            if row["duty"] == "stays" and row["live"]:
                return row
    return None


def wait_for(check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)
    return value


def takeover(cluster: Cluster, how: str) -> tuple[float | None, float | None]:
    """Kill (or stop) the stays holder; seconds until another holds it, and until it worked."""
    held = wait_for(lambda: stays_holder(cluster), 30)
    assert held is not None, "no process holds the stays duty"
    victim = cluster.by_pid(holder_pid(held["holder"]))
    with cluster.engine.connect() as conn:
        at = leases.database_now(conn)
    if how == "SIGKILL":
        cluster.kill(victim)
    else:
        victim.process.terminate()
        victim.process.wait(30)
    new = wait_for(
        lambda: (h := stays_holder(cluster)) is not None and h["holder"] != held["holder"] and h,
        60,
    )
    if not new:
        return None, None
    held_after = (new["acquired_at"] - at).total_seconds()

    def first_run() -> Any:
        with cluster.engine.connect() as conn:
            return conn.execute(
                select(func.min(schema.duty_runs.c.started_at)).where(
                    schema.duty_runs.c.duty == "stays",
                    schema.duty_runs.c.holder == new["holder"],
                )
            ).scalar_one()

    started = wait_for(first_run, 30)
    return held_after, (started - at).total_seconds() if started else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--kiosks", type=int, default=20)
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs of the stays holder")
    parser.add_argument("--between-s", type=float, default=8.0, help="load between two kills")
    parser.add_argument("--scan-every-s", type=float, default=0.25, help="per kiosk")
    parser.add_argument("--lease-s", type=float, default=5.0, help="duty_lease_s")
    parser.add_argument("--threads", type=int, default=8, help="server_threads")
    parser.add_argument("--server-url", default=os.environ.get("CADRE_TEST_POSTGRES_URL", ""))
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    if not args.server_url:
        parser.error("needs --server-url or CADRE_TEST_POSTGRES_URL (PostgreSQL)")

    workdir = Path(tempfile.mkdtemp(prefix="bench-takeover-"))
    with fresh_database(args.server_url) as database:
        settings = {"repeat_window_s": 1, "duty_lease_s": args.lease_s, "trusted_proxies": 1}
        cluster = Cluster(workdir / "central", database.url, settings, threads=args.threads)
        cluster.init({f"TO{n:03d}": CADRES_PER_SITE for n in range(args.kiosks)})
        print(
            f"{args.processes} processes x {args.threads} threads, {args.kiosks} kiosks scanning "
            f"every {args.scan_every_s} s, duty_lease_s {args.lease_s}; work folder {workdir}",
            flush=True,
        )
        proxy: RoundRobinProxy | None = None
        sampler: Sampler | None = None
        results: dict[str, list[tuple[float | None, float | None]]] = {"SIGKILL": [], "SIGTERM": []}
        started = time.monotonic()
        try:
            cluster.start(args.processes)
            proxy = RoundRobinProxy(cluster.ports).start()
            sampler = Sampler(cluster).start()
            load = Kiosks(cluster, proxy, args.kiosks, args.scan_every_s)
            load.start()
            for how in ["SIGKILL"] * args.kills + ["SIGTERM"]:
                time.sleep(args.between_s)
                results[how].append(takeover(cluster, how))
                print(f"  {how}: taken over after {fmt(results[how][-1])}", flush=True)
                cluster.start(1)  # a new process in the dead one's place (systemd would)
                proxy.backends.append(cluster.processes[-1].port)
            time.sleep(args.between_s)
            load.stop()
            elapsed = time.monotonic() - started
            settled = wait_for(lambda: stays_settled(cluster), 120)
        finally:
            if sampler is not None:
                sampler.stop()
            if proxy is not None:
                proxy.stop()
            cluster.stop()
        report(cluster, load, sampler, results, args, elapsed, bool(settled))
        cluster.engine.dispose()
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def stays_settled(cluster: Cluster) -> bool:
    with cluster.engine.connect() as conn:
        return stay_store.queued(conn) == 0


def fmt(pair: tuple[float | None, float | None]) -> str:
    held, worked = pair
    held_text = "never" if held is None else f"{held:.1f} s"
    worked_text = "no work yet" if worked is None else f"first work at {worked:.1f} s"
    return f"{held_text} ({worked_text})"


def report(
    cluster: Cluster,
    load: Kiosks,
    sampler: Sampler | None,
    results: dict[str, list[tuple[float | None, float | None]]],
    args: argparse.Namespace,
    elapsed: float,
    settled: bool,
) -> None:
    with cluster.engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(schema.events)).scalar_one()
        distinct = conn.execute(
            select(func.count(func.distinct(schema.events.c.event_id)))
        ).scalar_one()
        overlaps = overlapping_runs(conn)
        runs = conn.execute(
            select(schema.duty_runs.c.holder).where(schema.duty_runs.c.duty == "stays")
        ).all()
    kills = [held for held, _ in results["SIGKILL"] if held is not None]
    print("== takeover of the stays duty")
    if kills:
        print(
            f"  after SIGKILL: median {statistics.median(kills):.1f} s, max {max(kills):.1f} s "
            f"(n={len(kills)}; lease {args.lease_s} s, retry 1 s)"
        )
    for pair in results["SIGTERM"]:
        print(f"  after SIGTERM (lease released): {fmt(pair)}")
    print("== PostgreSQL connections")
    pool = args.threads + DUTY_CONNECTIONS
    if sampler is not None:
        most = max(sampler.max_by_process.values(), default=0)
        print(
            f"  most held by one process {most} (pool {pool} + overflow {POOL_OVERFLOW}); "
            f"most at once, all processes {sampler.max_total}"
        )
        print(
            f"  longest statement seen {sampler.longest_statement_s:.2f} s; longest transaction "
            f"{sampler.longest_transaction_s:.2f} s; longest idle in transaction "
            f"{sampler.longest_idle_in_transaction_s:.2f} s"
        )
    print("== result")
    print(
        f"  {load.made} events made in {elapsed:.0f} s ({load.made / elapsed:.0f}/s), "
        f"{stored} stored, {distinct} distinct; kiosk retries {load.retries}"
    )
    print(
        f"  stays queue empty: {settled}; stays runs {len(runs)} by "
        f"{len({r.holder for r in runs})} processes; overlapping duty runs: {len(overlaps)}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
