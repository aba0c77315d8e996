"""Peers on loopback: how soon a scan at gate A is known at gate B, and what peers cost A's scans.

A fresh centre enrols four kiosks of one site (A, B, C, D, each a `kiosk run` process on
127.0.0.1, each told the others' addresses by the centre) and one kiosk of another site with
peers off (the baseline); then the centre stops, as at a site without network. Each scan is a new
badge typed by a keyboard-wedge scanner into A's page (the real scan path: rules, fsync'd log,
the screen's answer), one after the other, each at a random moment of B's polling. For each,
the time from A's answer until B keeps the record (B's peers/A.jsonl, read every 2 ms); and the
scan path's own time at A (the wedge's round trip) with its 3 peers polling it, against the same
scans at the baseline kiosk.

    .venv/bin/python bench/peers.py                     # 1,000 scans
    .venv/bin/python bench/peers.py --scans 100         # a short run
    .venv/bin/python bench/peers.py --interval-s 0.2    # peers asking more often

Targets (issue 17): known at B p95 < 1 s; A's scan p95 < 100 ms with 3 peers. Figures depend on
what else runs here.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import Centre, KioskProcess

SITE, SOLO = "BENCH-PEERS", "BENCH-SOLO"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--interval-s", type=float, default=0.5, help="peer_interval_s")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    centre = Centre(work / "central")
    kiosks: dict[str, KioskProcess] = {}
    try:
        centre.init({SITE: args.scans, SOLO: args.scans})
        centre.start()
        badges = centre.issue_badges(SITE)
        solo_badges = centre.issue_badges(SOLO)
        for kiosk_id, site in (("A", SITE), ("B", SITE), ("C", SITE), ("D", SITE), ("S", SOLO)):
            code = centre.add_kiosk(site, kiosk_id)
            kiosk = KioskProcess(
                work / kiosk_id,
                {
                    "sync_interval_s": 1,
                    "peer_interval_s": args.interval_s,
                    "peers_enabled": site == SITE,
                },
            )
            with (kiosk.instance / "kiosk.toml").open("a", encoding="utf-8") as toml:
                toml.write(f'peer_address = "127.0.0.1:{kiosk.port}"\n')
            kiosk.enroll(centre.url, code, centre.centre_key)
            kiosk.spawn()
            kiosks[kiosk_id] = kiosk
        for kiosk in kiosks.values():
            kiosk.wait_ready()

        def told(kiosk_id: str) -> bool:
            try:
                data = json.loads((kiosks[kiosk_id].instance / "peers.json").read_text())
            except (FileNotFoundError, ValueError):
                return False
            return len(data["peers"]) == 3

        deadline = time.monotonic() + 120
        while not all(told(k) for k in "ABCD"):
            if time.monotonic() > deadline:
                raise SystemExit("the centre did not name the peers within 120 s")
            time.sleep(0.2)
        centre.stop()
        time.sleep(2 * args.interval_s + 1)  # every peer thread asking A by now

        a, b, solo = kiosks["A"], kiosks["B"], kiosks["S"]
        known_file = b.instance / "peers" / "A.jsonl"
        known: list[float] = []
        scan_a: list[float] = []
        scan_solo: list[float] = []
        pace = random.Random(17)
        for n, payload in enumerate(badges[: args.scans], start=1):
            # Scans come at random moments of B's polling, not right after its last ask.
            time.sleep(pace.uniform(0, args.interval_s))
            started = time.perf_counter()
            answer = a.wedge(payload)
            answered = time.perf_counter()
            if answer.get("outcome") != "arrival":
                raise SystemExit(f"scan {n} at A: {answer}")
            scan_a.append(answered - started)
            while lines_in(known_file) < n:
                if time.perf_counter() - answered > 30:
                    raise SystemExit(f"scan {n}: B did not know it within 30 s")
                time.sleep(0.002)
            known.append(time.perf_counter() - answered)
            started = time.perf_counter()
            solo.wedge(solo_badges[n - 1])
            scan_solo.append(time.perf_counter() - started)

        def ms(values: list[float]) -> str:
            return (
                f"p50 {1000 * statistics.median(values):7.1f} ms  "
                f"p95 {1000 * pct(values, 95):7.1f} ms  max {1000 * max(values):7.1f} ms"
            )

        print(f"scans: {args.scans}, peer_interval_s {args.interval_s}, centre stopped")
        print(f"scan at A until B keeps it:          {ms(known)}   (target p95 < 1000 ms)")
        print(f"A's scan path, 3 peers polling it:  {ms(scan_a)}   (target p95 < 100 ms)")
        print(f"baseline, a kiosk with peers off:   {ms(scan_solo)}")
        return 0
    finally:
        for kiosk in kiosks.values():
            kiosk.close()
        centre.stop()
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
