"""Sync over real HTTP on loopback: a kiosk's backlog, then many kiosks pushing at once.

The centre runs in its own process (waitress, like `central serve`), on SQLite (WAL, the default)
and on PostgreSQL when one is reachable ($CADRE_TEST_POSTGRES_URL or --postgres-url; the role
must be allowed to create databases: a throwaway one is made and dropped).

1. backlog: a kiosk whose real local log (kiosk/store) holds 10,000 unsent events sends them
   with the sync agent; time from the first request to the last acknowledgement. Then the same
   backlog again from another kiosk whose every event has a photo (kiosk/photos.py, 18 kB
   each, as bench/latency.py measures them): time to its last event's acknowledgement (photos
   go after the events, on their own channel) and to its last photo.
2. many kiosks: 50 kiosks (two per site) push their events at the same moment, each with its
   own agent and HTTP connection; events stored per second, then a count at the centre: every
   event once (no loss, no duplicate) and every kiosk's hash chain complete.

Every record is what a kiosk makes: a camera scan carrying the badge token it was read from
(issued with the centre's key), dated in the past, so the centre verifies each proof and counts
it. The many kiosks' agents also send their clocks (X-Kiosk-Clock), their records' monotonic
times agreeing with their dates, so the centre measures each boot as it would a real one. A
record the centre does not count shows in "counted" below.

    .venv/bin/python bench/sync.py                      # the figures of the issue
    .venv/bin/python bench/sync.py --backlog 2000 --kiosks 10 --per-kiosk 200   # CI-sized
    .venv/bin/python bench/sync.py --without-proof-check   # the baseline of the proofs' cost

Figures depend on the machine and on what else runs on it: compare them within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from central import keys, kiosks, roster
from central.badges import issue_badges
from central.db.engine import create_schema, make_engine
from central.db.schema import badge_proofs
from central.db.schema import events as events_table
from central.db.schema import kiosks as kiosks_table
from central.db.schema import stays as stays_table
from central.roster_file import RosterRow
from central.stays import store as stay_store
from kiosk.store import DiskIO, EventLog, StoreConfig
from sync.agent import AgentTuning, SyncAgent
from sync.client import CentralClient
from sync.events import GENESIS_HASH, Event, seal

BACKLOG_CADRES = 500
BACKLOG_DAYS_AGO = 12  # the backlog kiosk has been offline since then


class NoSyncDisk(DiskIO):
    """Building the backlog is not what is measured: skip its fsyncs."""

    def fsync(self, fd: int) -> None:
        pass


# --- the centre in its own process -----------------------------------------------------------


def serve(instance: str, url: str, port: int, threads: int) -> None:
    """Child process: the central app under waitress (what `central serve` runs)."""
    import logging

    import waitress

    from central.app import create_app

    # 50 kiosks at once fill the queue on purpose: its "Task queue depth" warnings are noise here.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    from central.settings import CentralSettings

    if os.environ.get(SKIP_PROOF_CHECK):
        # The baseline the proof check's cost is measured against: ingest exactly as it is, but
        # no record is judged on its badge (never a setting of the centre: bench only).
        import central.ingest.push as push

        push.signature_verdicts = lambda connect, accepted, proofs: ({}, [])
        push.needs_proof = lambda event: False
    settings = CentralSettings(database_url=url, server_threads=threads)
    engine = make_engine(url, **({} if url.startswith("sqlite") else {"pool_size": threads}))
    app = create_app(instance, settings, engine=engine)
    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)


SKIP_PROOF_CHECK = "CADRE_BENCH_SKIP_PROOF_CHECK"


class Centre:
    def __init__(self, workdir: Path, url: str, threads: int, check_proofs: bool = True):
        self.url_db = url
        self.instance = workdir / "central"
        self.instance.mkdir(parents=True)
        key_path = self.instance / "issuing_key.pem"
        keys.create_issuing_key(key_path)
        self.key = keys.load_issuing_key(key_path)
        self.badges: dict[str, str] = {}
        self.engine = make_engine(url)
        create_schema(self.engine)
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}/"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.instance), url, str(port), str(threads)],
            env=os.environ | ({} if check_proofs else {SKIP_PROOF_CHECK: "1"}),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{self.base}api/v1/time", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the centre did not start") from None
                time.sleep(0.1)

    def issue_badges(self, forget: bool) -> None:
        """Print every cadre's badge (the centre keeps them as known-genuine); with `forget`, the
        centre is made to forget them, so each is verified with Ed25519 when first sent."""
        issued = issue_badges(self.engine, self.key)
        self.badges = {b.cadre_id: b.payload for b in issued}
        if forget:
            with self.engine.begin() as conn:
                conn.execute(badge_proofs.delete())

    def badge(self, cadre_id: str) -> str:
        return self.badges[cadre_id]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.engine.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_roster(engine: Any, sites: dict[str, int]) -> dict[str, list[str]]:
    """sites: site id -> how many cadres; returns the cadre ids of each site."""
    rows, by_site = [], {}
    for site_id, count in sites.items():
        by_site[site_id] = [f"C{site_id[1:]}{c:04d}" for c in range(count)]
        for cadre_id in by_site[site_id]:
            rows.append(RosterRow(len(rows) + 2, cadre_id, f"名{cadre_id}", "组", site_id, site_id))
    roster.import_roster(engine, rows)
    return by_site


def enrol(engine: Any, site_id: str, when: datetime | None = None) -> tuple[str, str]:
    when = when or datetime.now(UTC)
    new = kiosks.add_kiosk(engine, site_id, when, timedelta(hours=1))
    identity, _, token = kiosks.enrol(engine, new.code, when)
    return identity.kiosk_id, token


def scan(
    centre: Centre, kiosk_id: str, site_id: str, cadre_id: str, kind: str, at: datetime, mono: int
) -> dict:
    return {
        "event_id": uuid.uuid4(),
        "kiosk_id": kiosk_id,
        "site_id": site_id,
        "cadre_id": cadre_id,
        "badge_serial": 1,
        "kind": kind,
        "source": "camera",
        "device_time": at,
        "boot_id": f"boot-{kiosk_id}",
        "monotonic_ns": mono,
        "clock_trusted": True,
        "badge_token": centre.badge(cadre_id),
    }


def backlog_start() -> datetime:
    """Dawn (05:00 in Shanghai) BACKLOG_DAYS_AGO days ago."""
    today = datetime.now(UTC).date() - timedelta(days=BACKLOG_DAYS_AGO)
    return datetime(today.year, today.month, today.day, 21, 0, tzinfo=UTC) - timedelta(days=1)


def backlog_fields(
    centre: Centre, kiosk_id: str, site_id: str, cadres: list[str], size: int
) -> list[dict]:
    """A kiosk offline for days: every cadre arrives at dawn and leaves 9 h later, each day."""
    start = backlog_start()
    fields: list[dict] = []
    day = 0
    while len(fields) < size:
        for kind, hours in (("arrival", 0), ("departure", 9)):
            for i, cadre_id in enumerate(cadres):
                offset = timedelta(days=day, hours=hours, seconds=3 * i)
                mono = 10**12 + int(offset.total_seconds() * 1e9)
                fields.append(scan(centre, kiosk_id, site_id, cadre_id, kind, start + offset, mono))
        day += 1
    return fields[:size]


def day_window(cadres: int) -> datetime:
    """When the many kiosks' day began: recently enough that the kiosks' monotonic clocks (this
    machine's) reach back to it, inside one service day (they start at 03:00 in Shanghai)."""
    span = timedelta(seconds=6 * cadres + 600)
    now = datetime.now(UTC)
    uptime = timedelta(microseconds=time.monotonic_ns() // 1000)
    start = now - min(span, uptime * 0.9)
    boundary = now.replace(hour=19, minute=0, second=0, microsecond=0)  # 03:00 in Shanghai
    if start < boundary <= now:
        start = boundary - span
    return start


def day_fields(
    centre: Centre, kiosk_id: str, site_id: str, cadres: list[str], kind: str, start: datetime
) -> list[dict]:
    """One kiosk's scans of the day: every cadre of the site, arriving or (later) leaving; the
    monotonic times those of this machine's clock at those moments."""
    now, mono_now = datetime.now(UTC), time.monotonic_ns()
    later = timedelta(seconds=3 * len(cadres) + 300) if kind == "departure" else timedelta(0)
    fields = []
    for i, cadre_id in enumerate(cadres):
        at = start + later + timedelta(seconds=3 * i)
        mono = max(0, mono_now - int((now - at).total_seconds() * 1e9))
        fields.append(scan(centre, kiosk_id, site_id, cadre_id, kind, at, mono))
    return fields


class MemoryLog:
    """Sealed events in memory with the agent's three methods (the many-kiosks run)."""

    def __init__(self, fields: list[dict[str, Any]]):
        self.events: list[Event] = []
        previous = GENESIS_HASH
        for seq, f in enumerate(fields, start=1):
            event = seal(dict(f, seq=seq, prev_hash=previous))
            self.events.append(event)
            previous = event.hash
        self.cursor = 0
        self._lock = threading.Lock()

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


def agent(
    log: Any, base: str, kiosk_id: str, token: str, batch: int, clocks: bool = False
) -> SyncAgent:
    """`clocks`: send X-Kiosk-Clock as a kiosk does (its boot, this machine's clocks)."""
    boot_id = f"boot-{kiosk_id}"
    client = CentralClient(base, token, timeout_s=120, boot_id=boot_id if clocks else "")
    return SyncAgent(log, client, kiosk_id, boot_id, tuning=AgentTuning(batch_size=batch))


# --- the runs --------------------------------------------------------------------------------


@dataclass
class Figures:
    store: str
    counting: str = "badge proofs verified"
    backlog: int = 0
    backlog_s: float = 0.0
    kiosks: int = 0
    total: int = 0
    many_s: float = 0.0
    stored: int = 0
    counted: int = 0  # stored and counted (not kept aside: every proof verified)
    distinct: int = 0
    chains_complete: int = 0
    failures: int = 0
    backlog_stays_s: float = 0.0
    photo_events_s: float = 0.0  # the backlog with photos: until its last event was answered
    photo_all_s: float = 0.0  # ... and until its last photo was
    photos_sent: int = 0
    photo_bytes: int = 0
    many_stays_s: float = 0.0
    closed_stays: int = 0
    expected_stays: int = 0


def run_backlog(
    centre: Centre, workdir: Path, cadres: list[str], size: int, batch: int, figures: Figures
) -> None:
    kiosk_id, token = enrol(centre.engine, "S000", backlog_start() - timedelta(days=1))
    folder = workdir / "kiosk-log"
    builder = EventLog(folder, StoreConfig(), disk=NoSyncDisk())
    for fields in backlog_fields(centre, kiosk_id, "S000", cadres, size):
        builder.append(fields)
    builder.close()
    os.sync()  # what building left unwritten is not flushed by the timed run's first fsync
    log = EventLog(folder, StoreConfig())
    assert log.pending_count() == size
    sender = agent(log, centre.base, kiosk_id, token, batch)
    started = time.perf_counter()
    ok = sender.run_cycle(full=False)
    figures.backlog_s = time.perf_counter() - started
    figures.backlog = size - log.pending_count()
    if not ok:
        print(f"  backlog push failed: {sender.snapshot().last_error}")
        figures.failures += 1
    log.close()
    with centre.engine.connect() as conn:
        stored = conn.execute(
            select(func.count())
            .select_from(events_table)
            .where(events_table.c.kiosk_id == kiosk_id)
        ).scalar_one()
    if stored != size:
        print(f"  backlog: the centre holds {stored} of {size} events")
        figures.failures += 1
    figures.backlog_stays_s = wait_for_stays(centre, started)


def a_photo(n: int) -> bytes:
    """A photo-sized JPEG (the demo's drawn face in a room, 320 px, as the kiosk keeps them),
    made distinct by a counter after its end marker."""
    import numpy as np

    from scanner.demo import draw_face
    from scanner.photo import reviewer_jpeg

    global _PHOTO
    if _PHOTO is None:
        rng = np.random.default_rng(1)
        frame = (90 + rng.normal(0, 12, size=(480, 640))).clip(0, 255).astype(np.uint8)
        draw_face(frame, (320, 220), 180)
        _PHOTO = reviewer_jpeg(frame)
    return _PHOTO + n.to_bytes(8, "big")


_PHOTO: bytes | None = None


def run_photo_backlog(
    centre: Centre, workdir: Path, cadres: list[str], size: int, batch: int, figures: Figures
) -> None:
    """The backlog again, every event with a photo: events first, photos after."""
    import hashlib

    from kiosk.photo_outbox import PhotoOutbox
    from kiosk.photos import PhotoStore

    kiosk_id, token = enrol(centre.engine, "SP00", backlog_start() - timedelta(days=1))
    folder = workdir / "kiosk-log-photos"
    store = PhotoStore(
        workdir / "kiosk-photos",
        cap_bytes=10**10,
        retention_days=365,
        min_free_bytes=0,
        disk=NoSyncDisk(),
    )
    builder = EventLog(folder, StoreConfig(), disk=NoSyncDisk())
    for n, fields in enumerate(backlog_fields(centre, kiosk_id, "SP00", cadres, size)):
        jpeg = a_photo(n)
        digest = hashlib.sha256(jpeg).hexdigest()
        event = builder.append(dict(fields, photo_sha256=digest))
        store.write_now(digest, jpeg, event.device_time.date())
        figures.photo_bytes += len(jpeg)
    builder.close()
    # 15 MB of photos per 1,000 written without fsync: flushed now, not by the timed run's
    # first fsync.
    os.sync()
    log = EventLog(folder, StoreConfig())
    last_event_at: list[float] = []
    acknowledge = log.acknowledge

    def timed_acknowledge(through_seq: int) -> None:
        acknowledge(through_seq)
        if through_seq >= size:
            last_event_at.append(time.perf_counter())

    log.acknowledge = timed_acknowledge  # type: ignore[method-assign]
    outbox = PhotoOutbox(log, store)
    client = CentralClient(centre.base, token, timeout_s=120)
    sender = SyncAgent(
        log,
        client,
        kiosk_id,
        f"boot-{kiosk_id}",
        tuning=AgentTuning(batch_size=batch, photo_budget_s=3600),
        photos=outbox,
    )
    started = time.perf_counter()
    ok = sender.run_cycle(full=False)
    done = time.perf_counter()
    if not ok or not last_event_at or outbox.through_seq != size:
        print(f"  backlog with photos failed: {sender.snapshot().last_error}")
        figures.failures += 1
    figures.photo_events_s = (last_event_at[0] if last_event_at else done) - started
    figures.photo_all_s = done - started
    figures.photos_sent = sender.snapshot().photos_sent
    log.close()


def wait_for_stays(centre: Centre, since: float, limit_s: float = 600) -> float:
    """Seconds from `since` until the centre's stays queue is empty."""
    while True:
        with centre.engine.connect() as conn:
            if not stay_store.queued(conn):
                return time.perf_counter() - since
        if time.perf_counter() - since > limit_s:
            return float("inf")
        time.sleep(0.05)


def run_many(
    centre: Centre, by_site: dict[str, list[str]], n_kiosks: int, batch: int, figures: Figures
) -> None:
    """Two kiosks per site: one sees every cadre arrive, the other sees them leave."""
    site_ids = sorted(s for s in by_site if s not in ("S000", "SP00"))
    start = day_window(max(len(c) for c in by_site.values()))
    plans = []
    for k in range(n_kiosks):
        site_id = site_ids[k // 2]
        kiosk_id, token = enrol(centre.engine, site_id, start - timedelta(hours=1))
        kind = "arrival" if k % 2 == 0 else "departure"
        log = MemoryLog(day_fields(centre, kiosk_id, site_id, by_site[site_id], kind, start))
        sender = agent(log, centre.base, kiosk_id, token, batch, clocks=True)
        plans.append((kiosk_id, log, sender))
    start = threading.Barrier(n_kiosks + 1)
    outcomes: dict[str, bool] = {}

    def push(kiosk_id: str, sender: SyncAgent) -> None:
        start.wait()
        outcomes[kiosk_id] = sender.run_cycle(full=False)

    threads = [threading.Thread(target=push, args=(k, a)) for k, _, a in plans]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    figures.many_s = time.perf_counter() - began
    figures.many_stays_s = wait_for_stays(centre, began)
    figures.kiosks = n_kiosks
    figures.total = sum(len(log.events) for _, log, _ in plans)
    for kiosk_id, log, sender in plans:
        if not outcomes.get(kiosk_id) or log.pending_count():
            print(f"  {kiosk_id}: {log.pending_count()} left, {sender.snapshot().last_error}")
            figures.failures += 1
    ids = [k for k, _, _ in plans]
    used = site_ids[: (n_kiosks + 1) // 2]
    with centre.engine.connect() as conn:
        where = events_table.c.kiosk_id.in_(ids)
        figures.stored = conn.execute(
            select(func.count()).select_from(events_table).where(where)
        ).scalar_one()
        figures.distinct = conn.execute(
            select(func.count(func.distinct(events_table.c.event_id))).where(where)
        ).scalar_one()
        figures.counted = conn.execute(
            select(func.count())
            .select_from(events_table)
            .where(where, events_table.c.quarantine.is_(None))
        ).scalar_one()
        figures.chains_complete = sum(
            conn.execute(
                select(kiosks_table.c.chain_seq).where(kiosks_table.c.kiosk_id == k)
            ).scalar_one()
            == len(log.events)
            for k, log, _ in plans
        )
        figures.closed_stays = conn.execute(
            select(func.count())
            .select_from(stays_table)
            .where(stays_table.c.site_id.in_(used), stays_table.c.state == "closed")
        ).scalar_one()
    figures.expected_stays = sum(len(by_site[s]) for s in used) if n_kiosks % 2 == 0 else 0


def run_store(label: str, url: str, args: argparse.Namespace) -> Figures:
    figures = Figures(label)
    if args.without_proof_check:
        figures.counting = "badge proofs NOT checked"
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-sync-{label}-"))
    centre = Centre(workdir, url, args.threads, check_proofs=not args.without_proof_check)
    try:
        # The backlog with photos has a site (and cadres) of its own, so it meets a centre in
        # the same state as the plain one did.
        sizes = {"S000": BACKLOG_CADRES, "SP00": BACKLOG_CADRES}
        sizes.update({f"S{s + 1:03d}": args.per_kiosk for s in range((args.kiosks + 1) // 2)})
        by_site = load_roster(centre.engine, sizes)
        centre.issue_badges(forget=args.unknown_badges)
        run_backlog(centre, workdir, by_site["S000"], args.backlog, args.batch, figures)
        if not args.no_photos:
            run_photo_backlog(centre, workdir, by_site["SP00"], args.backlog, args.batch, figures)
        run_many(centre, by_site, args.kiosks, args.batch, figures)
    finally:
        centre.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def report(f: Figures) -> bool:
    rate = f.stored / f.many_s if f.many_s else 0.0
    exact = (
        f.stored == f.total
        and f.distinct == f.total
        and f.counted == f.total
        and f.chains_complete == f.kiosks
    )
    print(f"[{f.store}]")
    print(
        f"  backlog: {f.backlog} events from one kiosk in {f.backlog_s:.2f} s "
        f"({f.backlog / f.backlog_s if f.backlog_s else 0:,.0f} events/s)"
        f"  {'OK' if f.backlog_s <= 3.0 else 'OVER'} (target <= 3 s); "
        f"stays up to date {f.backlog_stays_s:.2f} s after the first request"
    )
    if f.photos_sent:
        per_thousand = f.photo_bytes / f.backlog * 1000 / 1e6 if f.backlog else 0.0
        print(
            f"  backlog with a photo each: its events in {f.photo_events_s:.2f} s "
            f"({'no slower' if f.photo_events_s <= f.backlog_s * 1.1 else 'SLOWER'} than "
            f"without: {f.backlog_s:.2f} s), then {f.photos_sent} photos by "
            f"{f.photo_all_s:.2f} s ({f.photo_bytes / 1e6:.0f} MB, {per_thousand:.1f} MB per "
            f"1,000 check-ins)"
        )
    print(
        f"  {f.kiosks} kiosks at once: {f.stored} events stored in {f.many_s:.2f} s = "
        f"{rate:,.0f} events/s  {'OK' if rate >= 3000 else 'UNDER'} (target >= 3,000/s); "
        f"stays up to date after {f.many_stays_s:.2f} s"
    )
    print(
        f"  count at the centre: {f.stored} stored, {f.distinct} distinct, "
        f"{f.counted} counted ({f.counting}), {f.total} sent, "
        f"{f.chains_complete}/{f.kiosks} chains complete: "
        f"{'no loss, no duplicate' if exact else 'MISMATCH'}; "
        f"{f.closed_stays}/{f.expected_stays} stays paired across the two kiosks of each site"
    )
    return exact and f.failures == 0 and f.closed_stays == f.expected_stays


def postgres_database(admin_url: str) -> tuple[str, Callable[[], None]] | None:
    name = f"cadre_bench_{os.getpid()}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"[postgresql] skipped: cannot create a database with {admin_url}: {exc}")
        admin.dispose()
        return None
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--kiosks", type=int, default=50)
    parser.add_argument(
        "--per-kiosk", type=int, default=400, help="cadres per site = events per kiosk"
    )
    parser.add_argument("--batch", type=int, default=500, help="events per request")
    parser.add_argument("--threads", type=int, default=16, help="waitress threads")
    parser.add_argument(
        "--unknown-badges",
        action="store_true",
        help="the centre has not seen the badges before: each is verified (Ed25519) once",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CADRE_TEST_POSTGRES_URL", ""),
        help="admin URL of a PostgreSQL server [default: $CADRE_TEST_POSTGRES_URL]",
    )
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument(
        "--no-photos", action="store_true", help="skip the backlog with a photo per event"
    )
    parser.add_argument(
        "--without-proof-check",
        action="store_true",
        help="the baseline: the centre judges no record on its badge proof (bench only), to "
        "measure what checking the proofs costs",
    )
    args = parser.parse_args()
    print(
        f"sync bench: backlog {args.backlog}, {args.kiosks} kiosks x {args.per_kiosk} events, "
        f"batches of {args.batch}, {os.cpu_count()} CPUs, badges "
        + ("never seen by the centre" if args.unknown_badges else "printed by the centre")
        + (", proofs NOT checked (baseline)" if args.without_proof_check else "")
    )
    good = True
    if args.only in (None, "sqlite"):
        folder = Path(tempfile.mkdtemp(prefix="bench-sync-db-"))
        try:
            good &= report(run_store("sqlite", f"sqlite:///{folder / 'central.db'}", args))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.only in (None, "postgresql"):
        made = postgres_database(args.postgres_url) if args.postgres_url else None
        if made is None:
            if not args.postgres_url:
                print("[postgresql] skipped: no --postgres-url / $CADRE_TEST_POSTGRES_URL")
        else:
            url, drop = made
            try:
                good &= report(run_store("postgresql", url, args))
            finally:
                drop()
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
