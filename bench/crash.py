"""The long crash trial of the kiosk's event log: SIGKILL a writer at random moments.

A child process opens the log and appends events (acknowledging and archiving now and then); after
each append returns it writes the confirmed seq and event id to a pipe. The parent kills it with
SIGKILL after a random delay, then opens the log itself and checks that every confirmed event is
there with its id, exactly once, and that the acknowledged cursor never went back. At the end the
whole log is verified (seqs contiguous, hashes valid, each event linked to the one before).

    .venv/bin/python bench/crash.py                 # 2000 kills
    .venv/bin/python bench/crash.py --kills 300 --slow-fsync-ms 2

tests/kiosk_core/test_kiosk_crash.py runs the same trial CI-sized.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiosk.store import DiskIO, EventLog, StoreConfig, verify_log


class SlowFsyncDisk(DiskIO):
    """An SD card's fsync takes milliseconds: a wider window for a kill to land in."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def fsync(self, fd: int) -> None:
        time.sleep(self.delay_s)
        super().fsync(fd)


@dataclass
class TrialResult:
    kills: int = 0
    confirmed: int = 0
    acknowledged: int = 0
    archived_segments: int = 0
    torn_tails_cut: int = 0
    stale_temp_files: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def event_fields(rng: random.Random, cadres: int) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "kiosk_id": "crash-kiosk",
        "site_id": "S01",
        "cadre_id": f"C{rng.randrange(cadres):05d}",
        "badge_serial": 1,
        "kind": rng.choice(("arrival", "departure")),
        "source": "camera",
        "device_time": now,
        "boot_id": "crash-boot",
        "monotonic_ns": time.monotonic_ns(),
        "clock_trusted": True,
        "flags": ["not_on_roster"] if rng.random() < 0.1 else [],
    }


def _writer(directory: Path, config: StoreConfig, disk: DiskIO, seed: int, out_fd: int) -> None:
    """Runs in the child until killed."""
    rng = random.Random(seed)
    log = EventLog(directory, config, disk=disk)
    while True:
        event = log.append(event_fields(rng, 50))
        os.write(out_fd, f"E {event.seq} {event.event_id}\n".encode())
        roll = rng.random()
        if roll < 0.15 and event.seq > 5:
            through = event.seq - rng.randrange(5)
            log.acknowledge(through)
            os.write(out_fd, f"A {through}\n".encode())
        elif roll < 0.17:
            # Everything acknowledged is "old" a day from now: exercises moving segments.
            log.archive_old(datetime.now(UTC) + timedelta(days=1))


def _read_until(fd: int, confirmations: int, deadline_s: float = 10.0) -> bytes:
    data = b""
    end = time.monotonic() + deadline_s
    while data.count(b"\nE ") + data.startswith(b"E ") < confirmations:
        if time.monotonic() > end:
            break
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    return data


def _read_all(fd: int, deadline_s: float = 5.0) -> bytes:
    chunks = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def run_trial(
    directory: Path,
    kills: int,
    *,
    seed: int = 1,
    config: StoreConfig | None = None,
    disk: DiskIO | None = None,
    max_delay_s: float = 0.005,
    confirm_at_most: int = 30,
    progress: Callable[[int, TrialResult], None] | None = None,
) -> TrialResult:
    config = config or StoreConfig(segment_events=40, checkpoint_events=9)
    disk = disk or DiskIO()
    rng = random.Random(seed)
    result = TrialResult()
    confirmed: dict[int, str] = {}
    acked = 0
    started = time.perf_counter()
    for round_number in range(kills):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            os.close(read_fd)
            try:
                _writer(directory, config, disk, seed * 100_003 + round_number, write_fd)
            finally:
                os._exit(0)
        os.close(write_fd)
        # Wait for a random number of confirmations (none: the kill may land while the child is
        # still opening and recovering the log), then a random moment more. Counting
        # confirmations keeps the trial meaningful however loaded the machine is.
        output = _read_until(read_fd, rng.randrange(confirm_at_most + 1))
        time.sleep(rng.uniform(0, max_delay_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        result.kills += 1
        output += _read_all(read_fd)
        os.close(read_fd)
        round_events: dict[int, str] = {}
        for line in output.split(b"\n"):
            parts = line.decode().split()
            # A line cut by the kill was never confirmed: pipe writes this small are atomic.
            if len(parts) == 3 and parts[0] == "E":
                round_events[int(parts[1])] = parts[2]
            elif len(parts) == 2 and parts[0] == "A":
                acked = max(acked, int(parts[1]))
        for seq, event_id in round_events.items():
            if seq in confirmed and confirmed[seq] != event_id:
                result.problems.append(f"round {round_number}: seq {seq} confirmed twice")
            confirmed[seq] = event_id
        with EventLog(directory, config) as log:
            result.torn_tails_cut += bool(log.recovery.torn_journal_bytes)
            result.stale_temp_files += len(log.recovery.stale_temp_files)
            if log.recovery.lost_anything:
                result.problems.append(f"round {round_number}: {log.recovery.summary()}")
            for seq, event_id in round_events.items():
                stored = log.event(seq)
                if stored is None or str(stored.event_id) != event_id:
                    result.problems.append(f"round {round_number}: confirmed seq {seq} missing")
            if log.acknowledged_seq < acked:
                result.problems.append(
                    f"round {round_number}: cursor {log.acknowledged_seq} behind {acked}"
                )
            if log.last_seq < max(confirmed, default=0):
                result.problems.append(f"round {round_number}: log ends before confirmed events")
        if progress is not None:
            progress(round_number + 1, result)
    with EventLog(directory, config) as log:
        report = verify_log(log)
        stored_ids = {str(e.event_id): e.seq for e in log.iter_events()}
        result.archived_segments = len(list(log.archive_dir.glob("seg-*.json")))
    if not report.ok:
        result.problems.append(f"final verify: {report}")
    for seq, event_id in confirmed.items():
        if stored_ids.get(event_id) != seq:
            result.problems.append(f"confirmed event {event_id} (seq {seq}) not found once")
    result.confirmed = len(confirmed)
    result.acknowledged = acked
    result.seconds = time.perf_counter() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument("--confirm-at-most", type=int, default=40)
    parser.add_argument("--slow-fsync-ms", type=float, default=0.0)
    parser.add_argument("--segment-events", type=int, default=40)
    parser.add_argument("--checkpoint-events", type=int, default=9)
    parser.add_argument("--dir", type=Path, default=None, help="keep the log here")
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="crash-trial-")) / "log"
    disk = SlowFsyncDisk(args.slow_fsync_ms / 1000) if args.slow_fsync_ms else DiskIO()

    def progress(done: int, result: TrialResult) -> None:
        if done % 100 == 0:
            print(f"  {done} kills, {len(result.problems)} problems", flush=True)

    result = run_trial(
        directory,
        args.kills,
        seed=args.seed,
        config=StoreConfig(
            segment_events=args.segment_events, checkpoint_events=args.checkpoint_events
        ),
        disk=disk,
        max_delay_s=args.max_delay_ms / 1000,
        confirm_at_most=args.confirm_at_most,
        progress=progress,
    )
    print(
        f"kills: {result.kills}  confirmed events: {result.confirmed}  "
        f"acknowledged through: {result.acknowledged}  archived segments: "
        f"{result.archived_segments}\n"
        f"torn journal tails cut at open: {result.torn_tails_cut}  stale temp files removed: "
        f"{result.stale_temp_files}  time: {result.seconds:.1f} s"
    )
    for problem in result.problems[:20]:
        print("PROBLEM:", problem)
    print("OK: every confirmed event present exactly once" if result.ok else "FAILED")
    if args.dir is None:
        shutil.rmtree(directory.parent, ignore_errors=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
