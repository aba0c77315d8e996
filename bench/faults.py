"""Network faults, end to end: 10,000 scans through a real kiosk whose network misbehaves.

A fresh centre (`central init`, roster import, `central kiosk add`, `central serve`) and a
kiosk (`kiosk enroll`, `kiosk run`) on 127.0.0.1; the kiosk's sync goes through the fault proxy
of tests/fakes/faulty_proxy.py (drops, resets, delays, 500s, garbage and cut bodies, answers
lost after the centre stored the batch, requests delivered twice). Each scan is a new badge
typed by a keyboard-wedge scanner into the kiosk page (the real scan path: rules, fsync'd log,
the screen's answer, the agent woken). Then the agent drains and the two sides are compared:
every scan once in the log and once at the centre, the hash chain whole.

    .venv/bin/python bench/faults.py                          # 10,000 scans, half the requests fail
    .venv/bin/python bench/faults.py --scans 300 --batch-size 10      # CI-sized
    .venv/bin/python bench/faults.py --delay-s 6 --timeout-s 5        # delays outlast the timeout

tests/e2e/test_network_faults.py runs it CI-sized. Figures depend on what else runs here.
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
from tests.e2e.trials import network_trial

SITE = "BENCH-NET"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", type=int, default=10_000)
    parser.add_argument("--fault-rate", type=float, default=0.5, help="share of faulty requests")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=500, help="sync_batch_size")
    parser.add_argument("--delay-s", type=float, default=0.2, help="the proxy's delay fault")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="sync_timeout_s")
    parser.add_argument("--clients", type=int, default=2, help="wedge scanners typing at once")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    centre = Centre(workdir / "central")
    try:
        print(f"work folder {workdir}; setting up the centre with {args.scans} cadres", flush=True)
        centre.init({SITE: args.scans})
        centre.start()
        payloads = centre.issue_badges(SITE)
        report = network_trial(
            workdir,
            centre,
            payloads,
            kiosk_id="k-bench-net",
            site_id=SITE,
            scans=args.scans,
            fault_rate=args.fault_rate,
            seed=args.seed,
            delay_s=args.delay_s,
            batch_size=args.batch_size,
            sync_timeout_s=args.timeout_s,
            clients=args.clients,
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
