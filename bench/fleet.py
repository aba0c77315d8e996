"""What the fleet report costs each heartbeat, as the kiosk's log grows.

For 1k, 10k and 100k events in the log (segments and journal as a running kiosk leaves them),
times kiosk.fleet.fleet_report on this machine (the real /sys, /proc, disk; vcgencmd where
there is one) and, as the baseline in the same run, the heartbeat's part that was there before
the fleet view: the disk's free space (shutil.disk_usage). Prints median and p95 in ms. The
report runs on the sync agent's thread once per heartbeat (sync_interval_s, 30 s by default),
never on the scan path.

    .venv/bin/python bench/fleet.py           # 1k, 10k, 100k
    .venv/bin/python bench/fleet.py --quick   # 1k, 10k
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk.fleet import FleetFacts, HostMachine, fleet_report
from kiosk.store import EventLog, StoreConfig

START = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)


def fill(log: EventLog, count: int) -> None:
    for i in range(count):
        log.append(
            {
                "event_id": uuid.uuid4(),
                "kiosk_id": "bench-1",
                "site_id": "S01",
                "cadre_id": f"C{i % 500:05d}",
                "badge_serial": 1,
                "kind": "arrival",
                "source": "camera",
                "device_time": START + timedelta(seconds=i),
                "boot_id": "boot-bench",
                "monotonic_ns": i * 1_000_000_000,
                "clock_trusted": True,
            }
        )
    log.wait_idle()


def timed(run, rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k events only")
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    machine = HostMachine()
    print(
        f"{'events':>8} {'log MB':>7} {'files':>6} {'report ms (median/p95)':>24} "
        f"{'disk_usage ms (median/p95)':>28}"
    )
    for size in sizes:
        folder = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
        try:
            with EventLog(folder / "log", StoreConfig()) as log:
                fill(log, size)
                facts = FleetFacts(
                    instance=folder,
                    log_folder=log.directory,
                    camera_health=lambda: {"source": "demo scene", "fps": 15.0},
                    recovery=lambda: None,
                    machine=machine,
                    started_monotonic=time.monotonic(),
                )
                report = fleet_report(facts)
                files = sum(1 for p in log.directory.rglob("*") if p.is_file())
                fleet = timed(lambda facts=facts: fleet_report(facts), args.rounds)
                disk = timed(lambda folder=folder: shutil.disk_usage(folder), args.rounds)
            mb = (report.log_bytes or 0) / 2**20
            print(
                f"{size:>8} {mb:>7.1f} {files:>6} {fleet[0]:>12.2f} / {fleet[1]:<9.2f} "
                f"{disk[0]:>14.3f} / {disk[1]:<9.3f}"
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
