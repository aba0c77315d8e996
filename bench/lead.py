"""What the site lead's phone costs the kiosk on a busy day: the page, its live poll, the export.

A kiosk with a roster of `--cadres` people and a day of `--events` scans (each cadre arrives and
leaves in turn, through the real rules and store), then the lead's page is asked for as a phone
would: the whole page, the small JSON it polls every 5 s, the part it fetches when something
changed, and the day's XLSX. Prints server time (median of `--rounds`) and bytes of each. Run it
on two checkouts to compare; routes a checkout does not have are said to be missing.

    .venv/bin/python bench/lead.py                 # 1,000 cadres, 2,000 events
    .venv/bin/python bench/lead.py --events 200    # CI-sized
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from kiosk.app import create_app  # noqa: E402
from kiosk.roster import CadreEntry, RosterSnapshot, RosterStore  # noqa: E402
from kiosk.settings import KioskSettings  # noqa: E402
from sync.badge_token import issue_token, key_id_of, public_key_to_text  # noqa: E402
from tests.fakes.clock import FakeClock  # noqa: E402

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红"
PIN = "2468"


def build(instance: Path, cadres: int, events: int) -> tuple[object, FakeClock]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    roster = {
        f"C{n:05d}": CadreEntry(
            name=SURNAMES[n % len(SURNAMES)] + GIVEN[(n // 7) % len(GIVEN)] + GIVEN[n % 5],
            unit=f"第{n % 12 + 1}街道办",
            site_id="S1",
        )
        for n in range(cadres)
    }
    RosterStore(instance).save(
        RosterSnapshot(
            version=1,
            site_id="S1",
            cadres=roster,
            public_keys={key_id_of(public): public_key_to_text(public)},
        )
    )
    clock = FakeClock(datetime(2026, 11, 30, 5, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    settings = KioskSettings(
        kiosk_id="K1", site_id="S1", site_name="基准站", lead_pin=PIN, camera_source="demo"
    )
    app = create_app(instance, settings, clock=clock, scan_loop_factory=lambda s: None)
    services = app.extensions["kiosk"]
    badges = {c: issue_token(key, c, 1, date(2026, 11, 1)) for c in roster}
    ids = list(roster)
    step = timedelta(seconds=max(1, int(12 * 3600 / max(events, 1))))
    for n in range(events):
        services.handle_payload(badges[ids[n % len(ids)]], "camera")
        clock.advance(seconds=step.total_seconds())
    return app, clock


def login(client) -> None:
    client.get("/lead/login")
    with client.session_transaction() as session:
        token = session.get("csrf_token", "")
    data = {"pin": PIN, "name": "组长", "csrf_token": token}
    forms = client.application.extensions.get("lead_forms")
    if forms is not None:
        data["form_key"] = forms.issue()
    response = client.post("/lead/login", data=data)
    assert response.status_code == 302, response.status_code


def measure(client, path: str, rounds: int) -> tuple[float, int] | None:
    times, size = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(path, headers={"Accept-Language": "zh-CN"})
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            return None
        size = len(response.data)
    return statistics.median(times), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cadres", type=int, default=1000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        app, _clock = build(Path(folder), args.cadres, args.events)
        print(
            f"kiosk with {args.cadres} cadres, {args.events} events in one day "
            f"(made in {time.perf_counter() - started:.1f} s); median of {args.rounds} requests"
        )
        client = app.test_client()
        login(client)
        day = "2026-11-30"
        for label, path in (
            ("whole page", f"/lead/?day={day}"),
            ("live poll (every 5 s)", "/lead/api/state"),
            ("live part (on a change)", f"/lead/?day={day}&part=live"),
            ("search 'wf'", f"/lead/?day={day}&q=wf&part=find"),
            ("events JSON, the day", f"/lead/api/events?day={day}"),
            ("XLSX of the day", f"/lead/export.xlsx?from={day}"),
        ):
            result = measure(client, path, args.rounds)
            if result is None:
                print(f"  {label:26s} missing in this checkout")
                continue
            seconds, size = result
            print(f"  {label:26s} {seconds * 1000:8.1f} ms  {size / 1024:9.1f} KB")
        app.extensions["kiosk"].stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
