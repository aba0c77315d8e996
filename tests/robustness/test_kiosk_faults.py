"""A full disk and an unplugged camera on a running kiosk: it says so, keeps what it confirmed,
and comes back by itself.

The kiosk is the real one (waitress on 127.0.0.1, scan loop, rules, store, status ticker) with a
camera that can be unplugged and a disk (the store's DiskIO seam) that can run out of space.
What the screen hears arrives over its event bus, as the page's stream would carry it; what the
lead sees comes from the lead's API. Waits have generous time-outs only against a hang: how many
seconds each step takes is measured by bench/kiosk_faults.py, not asserted here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from kiosk.bus import Subscription
from kiosk.store import EventLog, verify_log
from tests.kiosk_web.helpers import LOCAL, csrf, form_key, login
from tests.robustness.faulty_kiosk import FaultyKiosk, faulty_kiosk, wait_for

HANG = 30.0  # seconds: only a kiosk that hangs takes this long
FAST_CAMERA = {
    "camera_restart_backoff_s": 0.1,
    "camera_restart_backoff_max_s": 0.4,
    "camera_repeat_s": 0.3,
}
DISK_FULL_TEXT = "未记录：签到机存储已满，请告知现场负责人。"


class Screen:
    """What a kiosk screen would have shown: the latest status and the scan results."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.status: dict[str, Any] | None = None
        self.scans: list[dict[str, Any]] = []

    def pump(self) -> None:
        while (message := self.subscription.get(timeout=0.02)) is not None:
            if message.event == "status":
                self.status = message.data
            elif message.event == "scan":
                self.scans.append(message.data)

    def until(self, predicate: Callable[[Screen], bool], what: str) -> None:
        def seen() -> bool:
            self.pump()
            return predicate(self)

        wait_for(seen, HANG, what)


_hidden_at: dict[str, float] = {}


def scan(kiosk: FaultyKiosk, screen: Screen, cadre_id: str) -> dict[str, Any]:
    """Hold `cadre_id`'s badge up until the screen shows a result; take it away again."""
    badge = kiosk.live.kit.badge(cadre_id)
    # A badge shown again must have been out of view longer than the scanner's repeat window.
    window = kiosk.services.settings.camera_repeat_s + 0.1
    time.sleep(max(0.0, _hidden_at.get(badge, -1e9) + window - time.monotonic()))
    before = len(screen.scans)
    kiosk.camera.show(badge)
    try:
        screen.until(lambda s: len(s.scans) > before, f"a scan result for {cadre_id}")
    finally:
        kiosk.camera.hide()
        _hidden_at[badge] = time.monotonic()
    return screen.scans[-1]


def readiness(kiosk: FaultyKiosk) -> dict[str, str]:
    client = kiosk.live.kit.app.test_client()
    login(client)
    items = client.get("/lead/api/readiness", environ_base=LOCAL).get_json()["items"]
    return {item["key"]: item["state"] for item in items}


@pytest.fixture
def kiosk(tmp_path, issuing_key, monkeypatch):
    with faulty_kiosk(
        tmp_path, issuing_key, monkeypatch.setattr, status_period_s=0.2, **FAST_CAMERA
    ) as made:
        wait_for(lambda: made.services.camera_health()["state"] == "ok", HANG, "a working camera")
        yield made


@pytest.fixture
def screen(kiosk):
    subscription = kiosk.services.bus.subscribe()
    yield Screen(subscription)
    subscription.close()


def reopened_log(kiosk: FaultyKiosk) -> EventLog:
    """The log as the next start of the kiosk would open it (the running one closed first)."""
    kiosk.services.stop()
    return EventLog(kiosk.live.kit.instance / "log")


def test_a_full_disk_refuses_scans_in_words_keeps_the_log_and_recovers_by_itself(kiosk, screen):
    confirmed = [scan(kiosk, screen, "C001")]
    assert confirmed[0]["outcome"] == "arrival"

    kiosk.disk.fill_up()
    refused = scan(kiosk, screen, "C002")
    assert (refused["outcome"], refused["reason"]) == ("refused", "store_full")
    assert refused["detail"] == DISK_FULL_TEXT and refused["event_id"] is None
    screen.until(lambda s: s.status and s.status["banner"] == DISK_FULL_TEXT, "the banner")
    assert readiness(kiosk)["disk"] == "bad"
    # Still full: every scan is refused the same way, nothing half-written is confirmed.
    assert scan(kiosk, screen, "C003")["reason"] == "store_full"
    assert kiosk.services.log.last_seq == 1

    kiosk.disk.free_up()
    # Nobody scans: the screen stops saying "not recorded" by itself.
    screen.until(lambda s: s.status and s.status["banner"] == "", "the banner to go")
    assert readiness(kiosk)["disk"] == "ok"
    for cadre_id in ("C002", "C003"):
        result = scan(kiosk, screen, cadre_id)
        assert result["outcome"] == "arrival", result
        confirmed.append(result)

    log = reopened_log(kiosk)
    try:
        report = verify_log(log)
        assert report.ok and report.count == 3, report
        assert not log.recovery.lost_anything
        stored = [str(e.event_id) for e in log.iter_events()]
        assert stored == [c["event_id"] for c in confirmed]
        assert [e.cadre_id for e in log.iter_events()] == ["C001", "C002", "C003"]
    finally:
        log.close()


def test_an_unplugged_camera_is_shown_and_reopened_by_itself(kiosk, screen):
    assert scan(kiosk, screen, "C001")["outcome"] == "arrival"
    opens = kiosk.camera.opens

    kiosk.camera.unplug()
    screen.until(
        lambda s: s.status and s.status["camera"]["state"] == "bad", "the camera shown as bad"
    )
    assert screen.status["camera"]["note"]  # words: use the barcode scanner, tell the lead
    assert readiness(kiosk)["camera"] == "bad"
    assert kiosk.services.health() == (True, "")  # a restart would not bring a cable back
    wait_for(lambda: kiosk.camera.opens >= opens + 2, HANG, "attempts to reopen the camera")

    kiosk.camera.plug()
    screen.until(lambda s: s.status and s.status["camera"]["state"] == "ok", "the camera back")
    assert readiness(kiosk)["camera"] == "ok"
    assert scan(kiosk, screen, "C002")["outcome"] == "arrival"

    log = reopened_log(kiosk)
    try:
        assert verify_log(log).ok and [e.cadre_id for e in log.iter_events()] == ["C001", "C002"]
    finally:
        log.close()


def test_a_camera_the_scanner_gave_up_on_is_tried_again(tmp_path, issuing_key, monkeypatch):
    """Unplugged for longer than camera_max_restarts reopenings: shown as failed, and still
    picked up again when it comes back, without a restart of the kiosk."""
    settings = dict(FAST_CAMERA, camera_max_restarts=2)
    with faulty_kiosk(
        tmp_path, issuing_key, monkeypatch.setattr, status_period_s=0.2, **settings
    ) as kiosk:
        wait_for(lambda: kiosk.services.camera_health()["state"] == "ok", HANG, "the camera")
        kiosk.camera.unplug()
        wait_for(
            lambda: kiosk.services.camera_health()["state"] == "failed",
            HANG,
            "the scanner to give up",
        )
        assert kiosk.services.screen_status()["camera"]["state"] == "bad"
        kiosk.camera.plug()
        wait_for(lambda: kiosk.services.camera_health()["state"] == "ok", HANG, "the camera back")
        subscription = kiosk.services.bus.subscribe()
        try:
            assert scan(kiosk, Screen(subscription), "C001")["outcome"] == "arrival"
        finally:
            subscription.close()


def test_the_disk_filling_while_the_camera_is_out_loses_nothing_confirmed(kiosk, screen):
    """Both at once, then both back: the log holds exactly what the screen confirmed."""
    confirmed = [scan(kiosk, screen, "C001")["event_id"]]
    kiosk.camera.unplug()
    kiosk.disk.fill_up()
    screen.until(lambda s: s.status and s.status["camera"]["state"] == "bad", "camera bad")
    # The lead checks someone in by hand meanwhile: refused in words, nothing stored.
    client = kiosk.live.kit.app.test_client()
    login(client)
    client.get("/lead/", environ_base=LOCAL)
    page = client.post(
        "/lead/manual",
        data={
            "cadre_id": "C003",
            "kind": "arrival",
            "reason": "camera out",
            "csrf_token": csrf(client),
            "form_key": form_key(kiosk.live.kit.app),
        },
        environ_base=LOCAL,
        follow_redirects=True,
    )
    assert page.status_code == 200 and DISK_FULL_TEXT in page.get_data(as_text=True)
    kiosk.camera.plug()
    screen.until(lambda s: s.status and s.status["camera"]["state"] == "ok", "camera back")
    assert scan(kiosk, screen, "C002")["reason"] == "store_full"
    screen.until(lambda s: s.status and s.status["banner"] == DISK_FULL_TEXT, "the banner")
    kiosk.disk.free_up()
    screen.until(lambda s: s.status and s.status["banner"] == "", "the banner to go")
    confirmed.append(scan(kiosk, screen, "C002")["event_id"])

    log = reopened_log(kiosk)
    try:
        assert verify_log(log).ok
        assert [str(e.event_id) for e in log.iter_events()] == confirmed
    finally:
        log.close()


def test_the_log_can_tell_whether_the_disk_takes_writes_again(tmp_path):
    from tests.robustness.faulty_kiosk import FullableDisk

    disk = FullableDisk()
    log = EventLog(tmp_path / "log", disk=disk)
    try:
        assert log.can_write()
        disk.fill_up()
        assert not log.can_write()
        disk.free_up()
        assert log.can_write()
        # The probe leaves nothing behind, and a reopened log is clean.
        assert sorted(p.name for p in (tmp_path / "log").iterdir() if p.is_file()) == ["LOCK"]
    finally:
        log.close()


@pytest.fixture
def small_filesystem(tmp_path):
    """A 3 MB tmpfs for the kiosk's instance folder: a disk that really fills up (root only)."""
    import os
    import subprocess

    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder, chunk: int = 16 * 1024):
    """Write a filler file until the filesystem says ENOSPC; its path."""
    import errno

    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_a_real_small_filesystem_filling_up_and_emptying(
    small_filesystem, issuing_key, monkeypatch
):
    import kiosk.services
    from tests.kiosk_web.live import live_kiosk

    monkeypatch.setattr(kiosk.services, "STATUS_PERIOD_S", 0.2)

    with live_kiosk(small_filesystem, issuing_key, **FAST_CAMERA) as live:
        kiosk = FaultyKiosk(live, None, live.camera)  # type: ignore[arg-type]
        services = live.services
        wait_for(lambda: services.camera_health()["state"] == "ok", HANG, "the camera")
        subscription = services.bus.subscribe()
        screen = Screen(subscription)
        try:
            confirmed = [scan(kiosk, screen, "C001")["event_id"]]
            filler = fill(small_filesystem)
            # The journal's last page still has room: a few more records fit, then none.
            for attempt in range(40):
                live.kit.clock.advance(minutes=3)  # past the repeat window: each scan writes
                result = scan(kiosk, screen, ("C002", "C003")[attempt % 2])
                if result["outcome"] == "refused":
                    break
                confirmed.append(result["event_id"])
            assert (result["outcome"], result["reason"]) == ("refused", "store_full")
            screen.until(lambda s: s.status and s.status["banner"] == DISK_FULL_TEXT, "banner")
            assert readiness(kiosk)["disk"] == "bad"
            filler.unlink()
            screen.until(lambda s: s.status and s.status["banner"] == "", "the banner to go")
            confirmed.append(scan(kiosk, screen, "C002")["event_id"])
        finally:
            subscription.close()
        log = reopened_log(kiosk)
        try:
            assert verify_log(log).ok
            assert [str(e.event_id) for e in log.iter_events()] == confirmed
        finally:
            log.close()
