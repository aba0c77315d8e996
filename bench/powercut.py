"""Power cuts at every crash point of the kiosk's event log, on an ext4-like and a POSIX disk.

Each workload (a first start; appends that race the background fold; restarts of a log with
history, clean and after a crash) runs once over a disk that records every file operation. Then
for every crash point (after each operation) and each disk model, the states a power cut may have
left are built (unsynced operations dropped or reordered, writes torn at 512 / 4096 bytes or at
random, zero-filled or holed, a rename or mkdir not persisted) and each is opened with the log's
own recovery and checked: every confirmed event once and unchanged, nothing invented, seqs
increasing, the chain whole or its break reported, the cursor not past the log, not ahead of the
centre and not behind what was confirmed, a repair reported once, and an event appended after
recovery still there after a clean reopen. See tests/kiosk_core/crashstates.py.

    .venv/bin/python bench/powercut.py                 # every crash point of every workload
    .venv/bin/python bench/powercut.py --every 5       # every fifth crash point
    .venv/bin/python bench/powercut.py --workload burst --model posix

Exits 1 when the ext4 model shows any failure or the POSIX model loses a confirmed event.
tests/kiosk_core/test_kiosk_powercut.py runs a sample of the same in `make test`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.kiosk_core.crashstates import (
    WORKLOADS,
    Tally,
    describe_failure,
    explore,
    record,
    scratch_dir,
)

MODELS = ("ext4", "posix")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    parser.add_argument("--model", action="append", choices=MODELS)
    parser.add_argument("--every", type=int, default=1, help="every n-th crash point only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=10, help="failures printed in full")
    args = parser.parse_args()
    workloads = args.workload or list(WORKLOADS)
    models = tuple(args.model or MODELS)
    # Recovery logs what it repairs at WARNING; thousands of states would drown the figures.
    logging.disable(logging.WARNING)

    total = Tally()
    started = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="bench-powercut-", dir=scratch_dir()))
    try:
        for number, name in enumerate(workloads):
            run, prepare = WORKLOADS[name]
            began = time.perf_counter()
            trace = record(name, base / f"rec-{number}", run, prepare=prepare)
            points = len(trace.crash_points())
            tally = explore(trace, models, every=args.every, seed=args.seed + number)
            total.add(tally)
            tried = ", ".join(f"{m} {tally.tried[m]}" for m in models)
            failed = sum(tally.failed.values())
            print(
                f"{name:<20} {len(trace.ops):>4} operations, {points:>4} crash points: states "
                f"{tried}; failures {failed}  ({time.perf_counter() - began:.0f} s)",
                flush=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print()
    print("states tried by crash point (what the store was doing when the power went):")
    phases = sorted({phase for _model, phase in total.by_phase})
    print(f"  {'':<34}" + "".join(f"{m:>8}" for m in models))
    for phase in phases:
        print(f"  {phase:<34}" + "".join(f"{total.by_phase[(m, phase)]:>8}" for m in models))
    print("states tried by how they were made:")
    kinds = sorted({kind for _model, kind in total.by_state_kind})
    for kind in kinds:
        print(f"  {kind:<34}" + "".join(f"{total.by_state_kind[(m, kind)]:>8}" for m in models))
    print()
    print(f"{'':<36}" + "".join(f"{m:>8}" for m in models))
    print(f"{'states tried':<36}" + "".join(f"{total.tried[m]:>8}" for m in models))
    kinds_failed = sorted({kind for _model, kind in total.failed})
    for kind in kinds_failed:
        print(f"{'failed: ' + kind:<36}" + "".join(f"{total.failed[(m, kind)]:>8}" for m in models))
    if not kinds_failed:
        print(f"{'failed (any kind)':<36}" + "".join(f"{0:>8}" for _ in models))
    print(f"time {time.perf_counter() - started:.0f} s")
    for trace, failure in total.examples[: args.show]:
        print("  " + describe_failure(trace, failure))
    ext4_failures = total.failures("ext4")
    posix_lost = total.failures("posix", "lost-confirmed") + total.failures("posix", "changed")
    ok = ext4_failures == 0 and posix_lost == 0
    print(
        "RESULT:",
        "ok" if ok else "FAILED",
        f"(ext4: {ext4_failures} failures; posix: {posix_lost} confirmed events lost or changed)",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
