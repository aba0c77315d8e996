"""Scan-to-screen latency: from a frame with a badge entering the scan loop to the result
arriving at a browser's EventSource.

A real kiosk server (waitress on 127.0.0.1, the production app, store, rules and scan loop) reads
frames from a test camera that can hold badges up. Debian's chromium opens the kiosk screen (its
own stream and the MJPEG preview run as on the Pi) and, in the same page, one more EventSource
that stamps every `scan` message with performance.timeOrigin + performance.now() the moment it
arrives. The camera stamps the wall time at which the first frame showing the badge left read().
Browser and server run on one machine, so both stamps come from the same clock.

Each scan is a different cadre, so every one is a real arrival: verified, appended to the log,
fsync'd (on the instance folder's disk, under ./instance/), then published. Printed: median, p95
and max of the whole path, and its parts (frame to decoded payload, rules and store, publish to
the browser).

    .venv/bin/python bench/latency.py              # 200 scans with photos off, then 200 on
    .venv/bin/python bench/latency.py --scans 20   # a quick look (CI-sized)
    .venv/bin/python bench/latency.py --photos on  # only with photo_capture on

With photos on, the kiosk also keeps a photo of each check-in and looks up the face seen in the
moment before (kiosk/services.py camera_evidence): both runs have the same person standing in
the room, so the runs differ only in photo_capture. Printed for that run too: the photo and
face lookup's own part, the photos' size and storage per 1,000 check-ins.

Figures on this 2-core machine move with whatever else runs on it; a Raspberry Pi is slower.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.app import build_scan_loop, create_app
from kiosk.roster import CadreEntry, RosterSnapshot, RosterStore
from kiosk.server import KioskServer
from kiosk.settings import KioskSettings
from scanner.demo import draw_face
from sync.badge_token import issue_token, key_id_of, public_key_to_text
from tests.kiosk_web.badge_camera import BadgeCamera

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"

STAMPING_LISTENER = """
() => {
  window.benchArrivals = {};
  const source = new EventSource('/stream');
  source.addEventListener('scan', (event) => {
    const at = performance.timeOrigin + performance.now();
    const data = JSON.parse(event.data);
    window.benchArrivals[data.cadre_id] = [at, data.outcome];
  });
  return new Promise((resolve) => source.addEventListener('open', () => resolve(true)));
}
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def describe(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} median {statistics.median(values):7.1f} ms   "
        f"p95 {percentile(values, 95):7.1f} ms   max {max(values):7.1f} ms"
    )


def person_picture() -> np.ndarray:
    """Someone standing in the room beside where badges are held up (the demo's drawn face,
    which the face check finds)."""
    picture = np.full((240, 190), 105, dtype=np.uint8)
    draw_face(picture, (95, 125), 110)
    return picture


def run(args: argparse.Namespace, photos: bool) -> dict[str, Any]:
    """One kiosk, one browser, `args.scans` badges; photos on or off. Returns the timings."""
    from playwright.sync_api import sync_playwright

    (ROOT / "instance").mkdir(exist_ok=True)
    instance = Path(tempfile.mkdtemp(prefix="bench-latency-", dir=ROOT / "instance"))
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    cadre_ids = [f"B{i:05d}" for i in range(args.scans)]
    RosterStore(instance).save(
        RosterSnapshot(
            version=1,
            site_id="bench",
            cadres={c: CadreEntry(name=f"测试{c}", site_id="bench") for c in cadre_ids},
            public_keys={key_id_of(public): public_key_to_text(public)},
        )
    )
    badges = {c: issue_token(key, c, 1, date(2026, 1, 1)) for c in cadre_ids}

    # The same room with the same person in both runs: only photo_capture differs.
    camera = BadgeCamera(fps=args.fps, person=person_picture())
    settings = KioskSettings(
        kiosk_id="bench",
        site_id="bench",
        site_name="bench",
        camera_source="demo",
        camera_repeat_s=0.2,
        listen_host="127.0.0.1",
        photo_capture=photos,
    )
    app = create_app(
        instance,
        settings,
        scan_loop_factory=lambda services: build_scan_loop(services, source=camera),
    )
    services = app.extensions["kiosk"]

    # Stamps inside the server, for the breakdown (wall clock, same as the browser's).
    handled_at: dict[str, float] = {}
    published_at: dict[str, float] = {}
    evidence_ms: list[float] = []
    original_handle = services.handle_payload
    original_publish = services.bus.publish
    original_evidence = services.camera_evidence

    def timed_handle(payload: str, source: str = "camera", **extra: Any) -> Any:
        started = time.time()
        result = original_handle(payload, source, **extra)
        if result.get("cadre_id"):
            handled_at[result["cadre_id"]] = started
        return result

    def timed_publish(event: str, data: dict[str, Any]) -> Any:
        if event == "scan" and data.get("cadre_id"):
            published_at[data["cadre_id"]] = time.time()
        return original_publish(event, data)

    def timed_evidence(read: Any) -> Any:
        started = time.perf_counter()
        try:
            return original_evidence(read)
        finally:
            evidence_ms.append((time.perf_counter() - started) * 1000)

    services.handle_payload = timed_handle
    services.bus.publish = timed_publish
    services.camera_evidence = timed_evidence

    server = KioskServer(app, "127.0.0.1", 0, settings.server_threads)
    services.start()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    total: list[float] = []
    decode_part: list[float] = []
    store_part: list[float] = []
    push_part: list[float] = []
    missed = 0
    shown_on_screen = ""
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            page = browser.new_page(viewport={"width": 800, "height": 480})
            page.goto(server.url() + "/")
            page.wait_for_selector("#camera-badge[data-state='ok']", timeout=20_000)
            page.evaluate(STAMPING_LISTENER)
            for cadre in cadre_ids:
                camera.show(badges[cadre])
                try:
                    # A function, not an expression: the kiosk's CSP allows no eval of strings.
                    page.wait_for_function(
                        f"() => window.benchArrivals['{cadre}'] !== undefined", timeout=5_000
                    )
                except Exception:
                    missed += 1
                    camera.hide()
                    continue
                camera.hide()
                arrived_ms, outcome = page.evaluate(f"window.benchArrivals['{cadre}']")
                shown = camera.shown_at_wall
                if outcome != "arrival" or shown is None:
                    missed += 1
                    continue
                total.append(arrived_ms - shown * 1000)
                decode_part.append((handled_at[cadre] - shown) * 1000)
                store_part.append((published_at[cadre] - handled_at[cadre]) * 1000)
                push_part.append(arrived_ms - published_at[cadre] * 1000)
                time.sleep(args.gap)
            shown_on_screen = page.inner_text("#result-name")
            browser.close()
        store = services.photos
        if store is not None:
            store.flush()
        state = store.state() if store is not None else None
        events = [e for e in services.log.iter_events() if e.source == "camera"]
    finally:
        server.shutdown()
        thread.join(timeout=15)
        shutil.rmtree(instance, ignore_errors=True)
    return {
        "total": total,
        "decode": decode_part,
        "store": store_part,
        "push": push_part,
        "evidence": evidence_ms,
        "missed": missed,
        "shown": shown_on_screen,
        "photos": state,
        "no_face": sum(1 for e in events if "no_face" in e.flags),
        "events": len(events),
    }


def report(name: str, result: dict[str, Any], fps: float) -> None:
    total = result["total"]
    print(f"{name}: {len(total)} scans ({result['missed']} missed), camera {fps} fps")
    print(describe("frame in -> browser EventSource", total))
    print(describe("  frame in -> payload decoded", result["decode"]))
    if result["evidence"]:
        print(describe("    of which photo + face lookup", result["evidence"]))
    print(describe("  rules + fsync'd append -> publish", result["store"]))
    print(describe("  publish -> browser EventSource", result["push"]))
    state = result["photos"]
    if state is not None and state.count:
        per_thousand = state.bytes / state.count * 1000 / 1e6
        print(
            f"  photos kept: {state.count}, {state.bytes / state.count / 1000:.1f} kB each, "
            f"{per_thousand:.1f} MB per 1,000 check-ins; "
            f"flagged no_face: {result['no_face']} of {result['events']}"
        )
    print(f"  last name on the kiosk screen: {result['shown']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=200, help="badges per run (default 200)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frames per second")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between badges")
    parser.add_argument(
        "--photos",
        choices=("both", "on", "off"),
        default="both",
        help="photo_capture off, then on, in one run (default), or only one of them",
    )
    args = parser.parse_args()

    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.photos]
    results = {}
    for photos in modes:
        name = "photos on" if photos else "photos off"
        results[name] = run(args, photos)
        report(name, results[name], args.fps)
    ok = all(r["total"] and not r["missed"] for r in results.values())
    for name, result in results.items():
        under = percentile(result["total"], 95) < 100 if result["total"] else False
        print(f"{name}: p95 under 100 ms: {'yes' if under else 'no'}")
        ok = ok and under
    if len(results) == 2:
        off, on = (percentile(results[n]["total"], 95) for n in ("photos off", "photos on"))
        change = on - off
        print(
            f"p95 with photos minus without: {change:+.1f} ms (at most +10 ms: "
            f"{'yes' if change <= 10 else 'no'})"
        )
        ok = ok and change <= 10
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
