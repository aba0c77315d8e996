"""How long one check-in takes to store as history grows: our log next to stock TinyDB and SQLite.

For 1k, 10k and 100k events already in history, times appending one event (durable when the call
returns) and prints median and p95 in ms for:

- kiosk.store.EventLog: TinyDB segments behind a fsync'd journal (sealing the Event included);
- stock TinyDB 4 with JSONStorage (a few inserts only at 100k: each rewrites the whole file);
- sqlite3 in WAL mode with synchronous=FULL, one commit per event;
- a line of an event's size written and fsync'd to a plain file: the floor, what one durable
  write costs on this disk at this moment (a loaded machine shows in it first).

Then the resident memory of a fresh process that opens the 100k-event log, appends, and answers
the questions the pages ask. Other work on the machine disturbs absolute figures: compare within
one run.

With --baseline, the same appends are timed, size by size and in turn, on the kiosk.store of
another checkout (say the commit before a change), each in its own process and log folder:

    .venv/bin/python bench/store.py            # full run
    .venv/bin/python bench/store.py --quick    # 1k and 10k only
    git worktree add /tmp/store-before <commit>
    .venv/bin/python bench/store.py --baseline /tmp/store-before
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinydb import TinyDB

CADRES = 5000
ROOT = Path(__file__).resolve().parents[1]


def fields(rng: random.Random, moment: datetime) -> dict[str, Any]:
    return {
        "kiosk_id": "bench-kiosk",
        "site_id": "S01",
        "cadre_id": f"C{rng.randrange(CADRES):05d}",
        "badge_serial": 1,
        "kind": rng.choice(("arrival", "departure")),
        "source": "camera",
        "device_time": moment,
        "boot_id": "bench-boot",
        "monotonic_ns": time.monotonic_ns(),
        "clock_trusted": True,
    }


def sample_docs(count: int) -> list[dict[str, Any]]:
    """`count` sealed events as JSON documents (for the stock TinyDB and SQLite rows)."""
    from sync.events import GENESIS_HASH, seal  # here: a worker imports ours from its checkout

    rng = random.Random(3)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    docs, previous = [], GENESIS_HASH
    for seq in range(1, count + 1):
        event = seal(
            dict(
                fields(rng, start + timedelta(seconds=seq * 30)),
                event_id=uuid.uuid4(),
                seq=seq,
                prev_hash=previous,
            )
        )
        previous = event.hash
        docs.append(event.wire())
    return docs


def summary(times_s: list[float]) -> tuple[float, float, float]:
    ms = sorted(t * 1000 for t in times_s)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return statistics.median(ms), p95, ms[-1]


def time_log_in(tree: Path, directory: Path, size: int, appends: int) -> dict[str, Any]:
    """Fill the log at `directory` to `size` events and time `appends` more, with the kiosk.store
    of the checkout `tree`, in a process of its own."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(tree), str(directory), str(size), str(appends)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def worker(tree: Path, directory: Path, size: int, appends: int) -> None:
    """Runs in the child: kiosk.store comes from `tree`."""
    sys.path.insert(0, str(tree))
    from kiosk.store import DiskIO, EventLog, StoreConfig

    class NoSyncDisk(DiskIO):
        """Only for filling history fast before timing; never used for the timed appends."""

        def fsync(self, fd: int) -> None:
            pass

        def fsync_dir(self, path: Path) -> None:
            pass

    rng = random.Random(1)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    with EventLog(directory, disk=NoSyncDisk()) as log:
        for index in range(size - log.last_seq):
            log.append(fields(rng, start + timedelta(seconds=(log.last_seq + index) * 30)))
    os.sync()  # the fill's unsynced pages must not be flushed inside the timed fsyncs
    rng = random.Random(2)
    started = time.perf_counter()
    log = EventLog(directory, StoreConfig())
    opened = time.perf_counter() - started
    times = []
    moment = datetime.now(UTC)
    for _ in range(appends):
        begin = time.perf_counter()
        log.append(fields(rng, moment))
        times.append(time.perf_counter() - begin)
    log.close()
    print(
        json.dumps(
            {
                "times": times,
                "opened": opened,
                "store": str(Path(sys.modules["kiosk.store"].__file__ or "").parent),
            }
        )
    )


def time_floor(folder: Path, appends: int) -> list[float]:
    """A line of an event's size written and fsync'd to a plain file: what one durable append
    costs at least on this disk, now (the floor under the EventLog's figures)."""
    path = folder / "floor.jsonl"
    line = b"x" * 520 + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    times = []
    try:
        for _ in range(appends):
            begin = time.perf_counter()
            os.write(fd, line)
            os.fsync(fd)
            times.append(time.perf_counter() - begin)
    finally:
        os.close(fd)
        path.unlink()
    return times


def time_stock_tinydb(
    folder: Path, docs: list[dict[str, Any]], count: int, inserts: int
) -> list[float]:
    path = folder / f"stock-{count}.json"
    path.write_text(json.dumps({"_default": {str(i + 1): d for i, d in enumerate(docs[:count])}}))
    db = TinyDB(path)
    times = []
    for doc in docs[count : count + inserts]:
        begin = time.perf_counter()
        db.insert(doc)
        times.append(time.perf_counter() - begin)
    db.close()
    path.unlink()
    return times


def time_sqlite(folder: Path, docs: list[dict[str, Any]], count: int, inserts: int) -> list[float]:
    path = folder / f"wal-{count}.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT UNIQUE, cadre_id TEXT, "
        "body TEXT)"
    )
    db.execute("CREATE INDEX by_cadre ON events (cadre_id, seq)")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?)",
        [(d["seq"], d["event_id"], d["cadre_id"], json.dumps(d)) for d in docs[:count]],
    )
    db.execute("COMMIT")
    times = []
    for doc in docs[count : count + inserts]:
        begin = time.perf_counter()
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?)",
            (doc["seq"], doc["event_id"], doc["cadre_id"], json.dumps(doc)),
        )
        times.append(time.perf_counter() - begin)
    db.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return times


RSS_PROBE = """
import resource, sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from kiosk.store import EventLog
log = EventLog(Path(sys.argv[1]))
now = datetime.now(UTC)
fields = dict(kiosk_id="bench-kiosk", site_id="S01", cadre_id="C00001", badge_serial=1,
              kind="arrival", source="camera", device_time=now, boot_id="bench-boot",
              monotonic_ns=time.monotonic_ns(), clock_trusted=True)
for _ in range(300):
    log.append(fields)
log.pending(500)
log.latest_by_cadre()
log.events_between(now - timedelta(days=2), now + timedelta(days=1))
log.last_event("C00042")
status = Path("/proc/self/status").read_text()
rss = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
       if line.startswith(("VmRSS", "VmHWM"))}
print(rss["VmRSS"] // 1024, rss["VmHWM"] // 1024, log.last_seq)
log.close()
"""


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k only")
    parser.add_argument("--appends", type=int, default=1000, help="timed appends per size")
    parser.add_argument(
        "--baseline", type=Path, help="a checkout whose kiosk.store is timed too, in turn"
    )
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    stock_inserts = {1_000: 100, 10_000: 20, 100_000: 5}
    variants = [("EventLog", ROOT)]
    if args.baseline is not None:
        if not (args.baseline / "kiosk" / "store").is_dir():
            parser.error(f"{args.baseline} holds no kiosk/store")
        variants.append(("baseline", args.baseline.resolve()))
    folder = Path(tempfile.mkdtemp(prefix="store-bench-"))
    print(f"history of up to {sizes[-1]:,} events, {CADRES} cadres; folder {folder}")
    for label, tree in variants:
        print(f"  {label}: kiosk.store of {tree}")
    docs = sample_docs(sizes[-1] + max(args.appends, 100))
    rows: list[tuple[int, dict[str, Any], Any, Any]] = []
    try:
        for size in sizes:
            ours: dict[str, Any] = {}
            for label, tree in variants:
                # Each variant keeps its own log folder and grows it size after size.
                ours[label] = time_log_in(tree, folder / f"log-{label}", size, args.appends)
            stock = time_stock_tinydb(folder, docs, size, stock_inserts[size])
            wal = time_sqlite(folder, docs, size, 300)
            ours["write+fsync"] = {"times": time_floor(folder, args.appends), "opened": 0.0}
            rows.append((size, ours, summary(stock), summary(wal)))
            print(f"  measured {size:,}", flush=True)
        print()
        print("ms to append one durable event: median / p95 / p99 / slowest")
        names = [label for label, _tree in variants] + ["write+fsync"]
        header = f"{'history':>9} | " + " | ".join(f"{n:^31}" for n in names)
        print(header + f" | {'stock TinyDB':^17} | {'sqlite WAL FULL':^15} | open s")
        for size, ours, stock, wal in rows:
            cells = []
            for name in names:
                ms = sorted(t * 1000 for t in ours[name]["times"])
                p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
                median, p95, slowest = summary(ours[name]["times"])
                cells.append(f"{median:6.3f} / {p95:6.3f} / {p99:6.2f} / {slowest:6.2f}")
            opened = " / ".join(f"{ours[n]['opened']:.2f}" for n in names[:-1])
            print(
                f"{size:>9,} | " + " | ".join(cells) + f" | {stock[0]:7.1f} / {stock[1]:7.1f} | "
                f"{wal[0]:6.3f} / {wal[1]:6.3f} | {opened}"
            )
        for name in names:
            first = summary(rows[0][1][name]["times"])[0]
            last = summary(rows[-1][1][name]["times"])[0]
            print(f"{name} median at {rows[-1][0]:,} / at 1k: {last / first:.2f}x")
            print(
                f"{name} slowest append: "
                + ", ".join(
                    f"{size:,}: {summary(ours[name]['times'])[2]:.1f} ms" for size, ours, *_ in rows
                )
            )
        if not args.quick:
            probe = subprocess.run(
                [sys.executable, "-c", RSS_PROBE, str(folder / "log-EventLog"), str(ROOT)],
                capture_output=True,
                text=True,
                check=True,
            )
            rss, peak, last_seq = probe.stdout.split()
            print(
                f"kiosk process with {int(last_seq):,} events in history: RSS {rss} MB "
                f"(peak {peak} MB) after open, 300 appends, pending(500), presence, a day's events"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
