"""A fresh kiosk set up by showing its camera the enrolment QR that `central kiosk add` printed,
in real processes (`central serve`, `kiosk run`) and a real browser on the kiosk's screen.

The kiosk starts with no token and no badge keys: its screen says "请出示签到机登记码". Its demo
camera is then given the QR's text (read back from the PNG the centre wrote) and shows it on a
badge in its synthetic room; the kiosk decodes it, enrols with the centre, and its screen loads
the normal page by itself. A badge scanned next is recorded and reaches the centre.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from central.db.schema import events
from scanner import QrDecoder, read_image
from tests.browser import chromium, shot
from tests.e2e.harness import Centre, KioskProcess


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def test_a_fresh_kiosk_is_enrolled_by_showing_its_camera_the_code(tmp_path: Path, browser):
    centre = Centre(tmp_path / "central", threads=4)
    centre.init({"CAM": 3})
    centre.start()
    kiosk = None
    try:
        with (centre.instance / "central.toml").open("a", encoding="utf-8") as toml:
            toml.write(f'\npublic_url = "{centre.url}"\n')
        png = tmp_path / "enrol.png"
        printed = centre.cli("kiosk", "add", "--site", "CAM", "--id", "CAM-1", "--qr", str(png))
        assert "CAM-1" in printed and png.exists()
        texts = [d.text for d in QrDecoder().decode(read_image(png))]
        assert len(texts) == 1 and texts[0].startswith("CKE2|") and centre.url in texts[0]

        shown = tmp_path / "camera-shows.txt"  # what the demo camera holds up: nothing yet
        kiosk = KioskProcess(
            tmp_path / "kiosk",
            {
                "camera_source": "demo",
                "camera_device": str(shown),
                "camera_restart_backoff_s": 0.2,
                "camera_restart_backoff_max_s": 0.5,
                "camera_max_restarts": 0,
                "result_display_s": 1.5,
                "sync_plain_http_allowed": True,  # both ends on loopback
            },
        )
        kiosk.spawn()
        kiosk.wait_ready()
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(kiosk.url + "/", wait_until="domcontentloaded")
        page.wait_for_selector("text=请出示签到机登记码", timeout=15000)
        shot(page, "setup-screen-800x480")

        shown.write_text(texts[0] + "\n", encoding="utf-8")
        # The kiosk reads the code, enrols, and its page loads the normal screen by itself.
        page.wait_for_selector("text=请向摄像头出示工牌", timeout=60000)
        shot(page, "setup-enrolled-800x480")
        assert "请出示签到机登记码" not in page.content()
        toml = (kiosk.instance / "kiosk.toml").read_text(encoding="utf-8")
        assert 'kiosk_id = "CAM-1"' in toml and (kiosk.instance / "sync_token").exists()
        assert (kiosk.instance / "centre_key.json").exists()  # the centre's key, pinned

        payload = centre.issue_badges("CAM")[0]
        answer = kiosk.wedge(payload)
        assert answer["outcome"] == "arrival", answer
        deadline = time.monotonic() + 30
        while True:
            with centre.engine.connect() as conn:
                stored = conn.execute(
                    select(events.c.kiosk_id, events.c.seq).where(events.c.kiosk_id == "CAM-1")
                ).all()
            if stored or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [tuple(r) for r in stored] == [("CAM-1", 1)]
        page.close()
    finally:
        if kiosk is not None:
            kiosk.close()
        centre.stop()
