"""Clock chaos, end to end: a kiosk's clock stepped back two hours, forward a day, and resumed
hours behind after power cuts, against a real centre (`central serve`).

Prints, per event: its seq, phase and boot, the kiosk's device time minus true time, whether the
kiosk trusted its clock, and what the centre made of it (trusted / corrected / uncorrected, the
corrected time minus true time, the service day). Phases are described in
tests/e2e/clock_trial.py; tests/e2e/test_clock_chaos.py asserts on the same run.

    .venv/bin/python bench/clock_chaos.py
    .venv/bin/python bench/clock_chaos.py --rounds 5      # the run five times, fresh kiosks
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.clock_trial import EXPECTED_STATUS, clock_trial
from tests.e2e.harness import Centre

SITE = "BENCH-CLK"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="print each scan as it happens")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-clock-"))
    centre = Centre(workdir / "central")
    worst = 0.0
    statuses: Counter[str] = Counter()
    problems: list[str] = []
    try:
        centre.init({SITE: 20})
        centre.start()
        payloads = centre.issue_badges(SITE)
        for round_number in range(1, args.rounds + 1):
            report = clock_trial(
                workdir / f"round-{round_number}",
                centre,
                payloads,
                kiosk_id=f"k-clock-{round_number}",
                site_id=SITE,
                progress=(lambda text: print(f"  {text}", flush=True))
                if args.verbose
                else (lambda _text: None),
            )
            print(f"round {round_number}")
            print(json.dumps(report.figures(), indent=2, ensure_ascii=False, default=str))
            for scan in report.scans:
                row = report.row(scan)
                statuses[row.time_status] += 1
                if row.time_status != EXPECTED_STATUS[scan.phase]:
                    problems.append(f"round {round_number} {scan.phase}: {row.time_status}")
                if row.time_status == "uncorrected":
                    continue
                middle = scan.before + (scan.after - scan.before) / 2
                error = abs((row.corrected_time - middle.replace(tzinfo=None)).total_seconds())
                worst = max(worst, error)
            if report.centre.chain_seq != len(report.scans) or report.log.last_seq != len(
                report.scans
            ):
                problems.append(f"round {round_number}: seq chain not whole")
    finally:
        centre.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"events by the centre's time status: {dict(statuses)}")
    print(f"largest |corrected - true| over every corrected or trusted event: {worst:.3f} s")
    print("RESULT:", "ok" if not problems else "; ".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
