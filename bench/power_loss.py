"""Power loss while scanning: the whole kiosk process SIGKILLed at random moments, 200 times.

A fresh centre and an enrolled kiosk on 127.0.0.1 (real `central serve` and `kiosk run`
processes). While the demo camera shows badges and a keyboard-wedge driver types more, the
kiosk process (scan loop, store, sync agent, pages) is killed with SIGKILL at a random moment,
restarted, killed again... Some kills land while it starts (opening and repairing its log, the
agent's first push), the rest while it serves. A client follows the screen's event stream
(/stream) throughout, reconnecting after each restart: a scan result it receives was shown.
After the last kill the kiosk starts once more, the agent drains, and the sides are compared:
shown on the screen ⊆ in the kiosk's log ⊆ at the centre, each exactly once, chains whole.

    .venv/bin/python bench/power_loss.py                  # 200 kills
    .venv/bin/python bench/power_loss.py --kills 12 --live-max-s 1.2   # CI-sized
    .venv/bin/python bench/power_loss.py --kills 100 --fault-rate 0.3  # and a faulty network

A SIGKILL is the power cut of a process: its unflushed user-space buffers, open files and
half-done steps are lost, but what it wrote to the kernel is not. Losing the disk's own cache is
the fsync contract (bench/crash.py and the store's DiskIO seam test that side).

tests/e2e/test_power_loss.py runs it CI-sized. Figures depend on what else runs here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import Centre
from tests.e2e.trials import power_trial

SITE = "BENCH-PWR"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--live-min-s", type=float, default=0.2)
    parser.add_argument("--live-max-s", type=float, default=3.0)
    parser.add_argument("--early-share", type=float, default=0.15, help="kills while starting")
    parser.add_argument("--wedge-rate", type=float, default=30.0, help="wedge scans per second")
    parser.add_argument("--camera-fps", type=float, default=30.0)
    parser.add_argument("--cadres", type=int, default=6000, help="badges in the rotation")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="sync through the fault proxy too"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-power-"))
    centre = Centre(workdir / "central")
    try:
        print(f"work folder {workdir}; setting up the centre with {args.cadres} cadres", flush=True)
        centre.init({SITE: args.cadres})
        centre.start()
        payloads = centre.issue_badges(SITE)
        report = power_trial(
            workdir,
            centre,
            payloads,
            kiosk_id="k-bench-pwr",
            site_id=SITE,
            kills=args.kills,
            seed=args.seed,
            live_s=(args.live_min_s, args.live_max_s),
            early_kill_share=args.early_share,
            wedge_rate=args.wedge_rate,
            camera_fps=args.camera_fps,
            fault_rate=args.fault_rate,
            progress=lambda text: print(f"  {text}", flush=True),
        )
    finally:
        centre.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report.figures(), indent=2, ensure_ascii=False, default=str))
    problems = report.problems()
    print("RESULT:", "ok" if not problems else "; ".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
