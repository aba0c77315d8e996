"""How fast the staff pages answer on a big centre: 40,000 cadres, 500 sites, 1,000,000 events.

    .venv/bin/python bench/central.py                      # SQLite (and PostgreSQL if
                                                           # CADRE_TEST_POSTGRES_URL is set)
    .venv/bin/python bench/central.py --pg postgresql+psycopg://user:pw@127.0.0.1/db
    .venv/bin/python bench/central.py --small              # a CI-sized run (4,000 / 50 / 100k)

The store is filled straight through the tables (no ingest, no pairing): two weeks of arrivals
and departures at two kiosks per site, the stays they make, kiosk heartbeats (some kiosks silent),
and a sprinkling of anomalies and staff corrections. Then the pages are fetched through the
Flask test client, logged in, and the median of several runs is printed:

    all-sites page (today)      target <= 300 ms
    a cadre's timeline          target <= 100 ms

and what a live page's refresh costs (the JSON it polls every 15 s, with and without news).

Figures drift with the machine's load (other work shares its 2 cores): compare within one run.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, Index, Table, text

from central import users
from central.app import create_app
from central.db import schema as tables
from central.db.engine import create_schema, make_engine
from central.settings import CentralSettings
from central.timefix import DayRule
from central.web import indexes as staff_indexes  # noqa: F401  (its indexes join the tables)

ZONE = "Asia/Shanghai"
DAY_START = "03:00"
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DateTime on SQLite
PASSWORD = "bench password 1"
# The columns `generate` fills, in its order; later columns (badge_token, quarantine...) are left
# to their defaults: every generated record counts.
EVENT_COLUMNS = [c.name for c in tables.events.columns][:23]
STAY_COLUMNS = [c.name for c in tables.stays.columns if c.name != "stay_id"]
BULK_TABLES = (tables.events, tables.stays, tables.anomalies)


@dataclass(frozen=True)
class Size:
    cadres: int
    sites: int
    events: int


FULL = Size(40_000, 500, 1_000_000)
SMALL = Size(4_000, 50, 100_000)


# --- the data --------------------------------------------------------------------------------


@dataclass
class Generated:
    events: list[tuple[Any, ...]]
    stays: list[tuple[Any, ...]]
    anomalies: list[dict[str, Any]]
    corrections: list[dict[str, Any]]
    last_day: date
    busy_cadre: str


def generate(size: Size, today: date, rule: DayRule, seed: int = 6) -> Generated:
    """Events of the service days up to `today`, newest last, `size.events` in all."""
    rng = random.Random(seed)
    per_day = int(size.cadres * 0.92 * 2)
    days = -(-size.events // per_day)
    first_day = today - timedelta(days=days - 1)
    events: list[tuple[Any, ...]] = []
    stays: list[tuple[Any, ...]] = []
    anomalies: list[dict[str, Any]] = []
    seq = [0] * (size.sites * 2)
    number = 0
    day_start_utc = {d: rule.bounds(first_day + timedelta(days=d))[0] for d in range(days)}
    received = datetime(2026, 1, 1)
    for day_index in range(days):
        day = first_day + timedelta(days=day_index)
        start = day_start_utc[day_index]
        for cadre in range(size.cadres):
            if len(events) >= size.events:
                break
            if rng.random() > 0.92:
                continue  # absent that day
            site = cadre % size.sites
            cadre_id, site_id = f"C{cadre:05d}", f"S{site:03d}"
            arrive_kiosk = site * 2 + rng.randrange(2)
            leave_kiosk = site * 2 + rng.randrange(2)
            arrival = start + timedelta(minutes=150 + rng.gauss(0, 25))  # about 05:30 local
            departure = arrival + timedelta(minutes=480 + rng.gauss(0, 40))
            leaves = day_index < days - 1 or rng.random() < 0.3
            kinds = [("arrival", arrival, arrive_kiosk)]
            if leaves:
                kinds.append(("departure", departure, leave_kiosk))
            ids = []
            for kind, moment, kiosk in kinds:
                seq[kiosk] += 1
                number += 1
                event_id = f"00000000-0000-4000-8000-{number:012x}"
                ids.append((event_id, moment, f"K{kiosk:04d}"))
                events.append(
                    (
                        event_id,
                        f"K{kiosk:04d}",
                        site_id,
                        seq[kiosk],
                        cadre_id,
                        1,
                        kind,
                        "camera",
                        moment,
                        480,
                        f"boot-{kiosk}",
                        seq[kiosk] * 1_000_000_000,
                        True,
                        None,
                        None,
                        None,
                        "[]",
                        "0" * 64,
                        f"{number:064x}",
                        moment,
                        "trusted",
                        day,
                        received,
                    )
                )
            (arrival_id, arrival_at, arrival_kiosk) = ids[0]
            departure_id, departure_at, departure_kiosk = ids[1] if leaves else (None, None, None)
            open_stay = not leaves
            stays.append(
                (
                    cadre_id,
                    site_id,
                    day,
                    arrival_at,
                    departure_at,
                    arrival_id,
                    departure_id,
                    arrival_kiosk,
                    departure_kiosk,
                    None if open_stay else int((departure_at - arrival_at).total_seconds()),
                    "open" if open_stay else "closed",
                    False,  # arrival_by_hand: badge scans
                    None if open_stay else False,  # departure_by_hand
                    '["cross_kiosk"]' if leaves and arrival_kiosk != departure_kiosk else "[]",
                )
            )
            if rng.random() < 0.003:
                anomalies.append(
                    {
                        "kind": rng.choice(["two_sites", "overlong_stay", "kiosk_disagrees"]),
                        "kiosk_id": None,
                        "site_id": site_id,
                        "cadre_id": cadre_id,
                        "service_day": day,
                        "event_id": arrival_id,
                        "seq": None,
                        "boot_id": None,
                        "detail": "seen at sites S000, S001",
                        "detected_at": received,
                        "resolved_at": None,
                    }
                )
    events = events[: size.events]
    extra = [
        {
            "action": "add",
            "target_event_id": None,
            "new_event_id": f"10000000-0000-4000-8000-{i:012x}",
            "cadre_id": f"C{i:05d}",
            "site_id": f"S{i % size.sites:03d}",
            "kind": "departure",
            "event_time": day_start_utc[days - 2] + timedelta(hours=12),
            "service_day": first_day + timedelta(days=days - 2),
            "reason": "forgot to scan",
            "staff_user": "bench",
            "created_at": received,
        }
        for i in range(0, size.cadres, 97)
    ]
    return Generated(events, stays, anomalies, extra, today, "C00006")


def kiosk_rows(size: Size, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(7)
    naive_now = now.astimezone(UTC).replace(tzinfo=None)
    kiosks, status = [], []
    for kiosk in range(size.sites * 2):
        kiosk_id = f"K{kiosk:04d}"
        kiosks.append(
            {
                "kiosk_id": kiosk_id,
                "site_id": f"S{kiosk // 2:03d}",
                "name": "",
                "token_hash": f"{kiosk:064x}",
                "created_at": naive_now - timedelta(days=30),
                "created_by": "bench",
                "enrolled_at": naive_now - timedelta(days=30),
                "chain_seq": 0,
                "chain_hash": "0" * 64,
                "max_seq": 0,
            }
        )
        silent = rng.random() < 0.02
        status.append(
            {
                "kiosk_id": kiosk_id,
                "received_at": naive_now - timedelta(hours=3 if silent else 0, seconds=20),
                "app_version": "1.0",
                "queue_length": rng.choice([0, 0, 0, 3]),
                "camera_ok": rng.random() > 0.01,
                "camera_detail": "",
                "clock_trusted": True,
                "boot_id": f"boot-{kiosk}",
                "ready": True,
                "ready_detail": "",
                "report": "{}",
            }
        )
    return kiosks, status


# --- loading ---------------------------------------------------------------------------------


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime(SQLITE_TIME)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _indexes(bulk_tables: Sequence[Table]) -> list[Index]:
    return [index for table in bulk_tables for index in table.indexes]


def load_sqlite(path: Path, size: Size, data: Generated, now: datetime) -> float:
    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    _small_tables(engine, size, data, now)
    engine.dispose()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    # Indexes are built once after the rows are in: much faster than keeping them up to date.
    for index in _indexes(BULK_TABLES):
        connection.execute(f'DROP INDEX IF EXISTS "{index.name}"')
    marks = ",".join("?" * len(EVENT_COLUMNS))
    connection.executemany(
        f"INSERT INTO events ({','.join(EVENT_COLUMNS)}) VALUES ({marks})",
        ([_sqlite_value(v) for v in row] for row in data.events),
    )
    marks = ",".join("?" * len(STAY_COLUMNS))
    connection.executemany(
        f"INSERT INTO stays ({','.join(STAY_COLUMNS)}) VALUES ({marks})",
        ([_sqlite_value(v) for v in row] for row in data.stays),
    )
    connection.commit()
    connection.close()
    engine = make_engine(f"sqlite:///{path}")
    for index in _indexes(BULK_TABLES):
        index.create(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def _small_tables(engine: Engine, size: Size, data: Generated, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            tables.sites.insert(),
            [
                {"site_id": f"S{s:03d}", "name": f"站点{s:03d}", "change_version": 1}
                for s in range(size.sites)
            ],
        )
        conn.execute(
            tables.cadres.insert(),
            [
                {
                    "cadre_id": f"C{c:05d}",
                    "name": f"干部{c:05d}",
                    "unit": f"单位{c % 300}",
                    "site_id": f"S{c % size.sites:03d}",
                    "badge_serial": 1,
                    "updated_at": now,
                    "change_version": 1,
                }
                for c in range(size.cadres)
            ],
        )
        kiosks, status = kiosk_rows(size, now)
        conn.execute(tables.kiosks.insert(), kiosks)
        conn.execute(tables.kiosk_status.insert(), status)
        if data.anomalies:
            conn.execute(tables.anomalies.insert(), data.anomalies)
        conn.execute(tables.corrections.insert(), data.corrections)
    users.add_user(engine, "bench", PASSWORD, "viewer")


def load_postgres(url: str, size: Size, data: Generated, now: datetime) -> tuple[Engine, float]:
    """Into a fresh schema of the database at `url`, with COPY."""
    started = time.perf_counter()
    schema = f"bench_{os.getpid()}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    create_schema(engine)
    _small_tables(engine, size, data, now)
    with engine.begin() as conn:
        for index in _indexes(BULK_TABLES):
            conn.execute(text(f'DROP INDEX IF EXISTS "{index.name}"'))
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY events ({','.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                for row in data.events:
                    copy.write_row(row)
            with cursor.copy(f"COPY stays ({','.join(STAY_COLUMNS)}) FROM STDIN") as copy:
                for row in data.stays:
                    copy.write_row(row)
    for index in _indexes(BULK_TABLES):
        index.create(engine, checkfirst=True)
    # Statistics for the planner, as autovacuum would gather soon after a real load; committed,
    # or PostgreSQL forgets them.
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return engine, time.perf_counter() - started


def drop_postgres(url: str, engine: Engine) -> None:
    schema = f"bench_{os.getpid()}"
    engine.dispose()
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


# --- timing ----------------------------------------------------------------------------------


def median_ms(fetch: Callable[[], Any], runs: int) -> tuple[float, list[float]]:
    fetch()  # warm: first-use costs (templates, the store's cache) are not what staff wait for
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fetch()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), times


def time_pages(engine: Engine, instance: Path, data: Generated, now: datetime, runs: int) -> None:
    app = create_app(
        instance,
        CentralSettings(timezone=ZONE, service_day_start=DAY_START),
        engine=engine,
        now=lambda: now,
    )
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    marker = 'name="csrf_token" value="'
    token = page[page.index(marker) + len(marker) :].split('"', 1)[0]
    answer = client.post(
        "/staff/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 302, "bench login failed"

    def fetch(url: str) -> Callable[[], None]:
        def get() -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        return get

    day = data.last_day.isoformat()
    checks = [
        ("all-sites page (today)", f"/staff/?day={day}", 300),
        ("a cadre's timeline (14 days)", f"/staff/cadres/{data.busy_cadre}?to={day}", 100),
        ("a site page (today)", f"/staff/sites/S001?day={day}", None),
        ("anomalies (7 days)", f"/staff/anomalies?to={day}", None),
    ]
    for label, url, target in checks:
        median, times = median_ms(fetch(url), runs)
        verdict = "" if target is None else ("  ok" if median <= target else "  OVER TARGET")
        goal = f" (target <= {target} ms)" if target else ""
        spread = f"min {min(times):.0f} max {max(times):.0f}"
        print(f"  {label:30s} median {median:7.1f} ms  [{spread}]{goal}{verdict}")
    size_kb = len(client.get(f"/staff/?day={day}").data) // 1024
    print(f"  (all-sites page: {size_kb} kB of HTML)")
    # Live pages: each open all-sites or site page polls its JSON every 15 s. A poll that finds
    # the same stamp answers "unchanged"; otherwise the figures are read as the page reads them.
    live = f"/staff/live/overview.json?day={day}"
    stamp = client.get(live).get_json()["stamp"]
    live_checks = [
        ("live refresh, all sites (new data)", live),
        ("live refresh, all sites (unchanged)", f"{live}&since={stamp}"),
        ("live refresh, a site (new data)", f"/staff/live/sites/S001.json?day={day}"),
    ]
    for label, url in live_checks:
        median, times = median_ms(fetch(url), runs)
        spread = f"min {min(times):.0f} max {max(times):.0f}"
        print(f"  {label:36s} median {median:7.1f} ms  [{spread}]")
    size_kb = len(client.get(live).data) / 1024
    print(f"  (all-sites live JSON: {size_kb:.0f} kB; the page polls it every 15 s)")


def count_rows(engine: Engine) -> str:
    with engine.connect() as conn:
        counts = {
            name: conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
            for name in ("cadres", "sites", "events", "stays", "kiosks", "anomalies")
        }
    return ", ".join(f"{value:,} {name}" for name, value in counts.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="4,000 cadres, 50 sites, 100k events")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per page (median)")
    parser.add_argument(
        "--pg",
        default=os.environ.get("CADRE_TEST_POSTGRES_URL", ""),
        help="PostgreSQL URL (default: $CADRE_TEST_POSTGRES_URL); empty: SQLite only",
    )
    parser.add_argument("--keep", type=Path, help="keep the SQLite store in this folder")
    args = parser.parse_args(argv)
    size = SMALL if args.small else FULL
    rule = DayRule.of(ZONE, DAY_START)
    today = date(2026, 11, 29)
    # 12:00 local on the last day: the morning's arrivals are in, few have left.
    now = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)

    started = time.perf_counter()
    data = generate(size, today, rule)
    print(
        f"generated {len(data.events):,} events, {len(data.stays):,} stays of "
        f"{size.cadres:,} cadres at {size.sites} sites in {time.perf_counter() - started:.1f} s"
    )

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-central-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "central.db"
    if path.exists():
        path.unlink()
    seconds = load_sqlite(path, size, data, now)
    engine = make_engine(f"sqlite:///{path}")
    print(f"\nSQLite: loaded in {seconds:.1f} s ({count_rows(engine)})")
    time_pages(engine, folder / "instance-sqlite", data, now, args.runs)
    engine.dispose()

    if args.pg:
        pg_engine, seconds = load_postgres(args.pg, size, data, now)
        print(f"\nPostgreSQL: loaded in {seconds:.1f} s ({count_rows(pg_engine)})")
        try:
            time_pages(pg_engine, folder / "instance-pg", data, now, args.runs)
        finally:
            drop_postgres(args.pg, pg_engine)
    else:
        print("\nPostgreSQL: skipped (no --pg URL and no CADRE_TEST_POSTGRES_URL)")
    print("\nFigures drift with the machine's load; compare within one run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
