"""Kiosk settings the app hands on: each one changes what the running kiosk does.

camera_restart_backoff_s / _max_s / camera_max_restarts reach the scan loop's reopening,
camera_preview_fps its preview encoder, camera_demo_seed the demo camera's scene, retention_days
the event log's archiving; the Arrive / Leave buttons go through CheckIn.scan(kind=...).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from kiosk.app import build_scan_loop
from kiosk.rules import FLAG_KIND_CHOSEN
from sync.config import SettingsError
from tests.fakes.camera import FakeCamera, wait_until
from tests.kiosk_web.helpers import LOCAL, make_kit


def wedge(kit, payload: str) -> dict:
    response = kit.app.test_client().post(
        "/screen/wedge",
        json={"payload": payload},
        headers={"X-Screen-Token": kit.services.screen_token},
        environ_base=LOCAL,
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def press(kit, kind: str) -> None:
    response = kit.app.test_client().post(
        "/screen/mode",
        json={"kind": kind},
        headers={"X-Screen-Token": kit.services.screen_token},
        environ_base=LOCAL,
    )
    assert response.status_code == 200, response.get_data(as_text=True)


def kit_with_camera(tmp_path, issuing_key, camera: FakeCamera, **settings):
    return make_kit(
        tmp_path,
        issuing_key,
        scan_loop_factory=lambda services: build_scan_loop(services, source=camera),
        **settings,
    )


# ---------------------------------------------------------------- camera reopening


@pytest.mark.parametrize("max_restarts", [1, 3])
def test_camera_backoff_and_max_restarts_drive_the_reopening(
    tmp_path, issuing_key, caplog, max_restarts
):
    dead = FakeCamera([], opens=[False] * 10, name="unplugged camera")
    kit = kit_with_camera(
        tmp_path,
        issuing_key,
        dead,
        camera_restart_backoff_s=0.01,
        camera_restart_backoff_max_s=0.02,
        camera_max_restarts=max_restarts,
    )
    caplog.set_level(logging.WARNING, logger="scanner.loop")
    try:
        kit.services.start()
        wait_until(lambda: kit.services.camera_health()["state"] == "failed", what="giving up")
        health = kit.services.camera_health()
        assert f"gave up after {max_restarts} reopenings" in health["detail"]
        assert dead.open_calls == max_restarts + 1  # the first opening, then the reopenings
        delays = [r.args[2] for r in caplog.records if "reopening in" in r.getMessage()]
        # Doubling from camera_restart_backoff_s, capped at camera_restart_backoff_max_s.
        assert delays == [0.01, 0.02, 0.02][:max_restarts]
    finally:
        kit.services.stop()


def test_a_backoff_cap_below_its_start_is_a_settings_error():
    from pathlib import Path

    from kiosk import settings as kiosk_settings

    with pytest.raises(SettingsError) as caught:
        kiosk_settings.load(
            Path("/nonexistent-instance"),
            env={
                "KIOSK_CAMERA_RESTART_BACKOFF_S": "10",
                "KIOSK_CAMERA_RESTART_BACKOFF_MAX_S": "5",
            },
        )
    assert "camera_restart_backoff_max_s" in str(caught.value)
    assert "at least camera_restart_backoff_s" in str(caught.value)


# ---------------------------------------------------------------- preview rate


def changing_frames(count: int = 20) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, size=(48, 64), dtype=np.uint8) for _ in range(count)]


@pytest.mark.parametrize("preview_fps, renewed", [(0.01, False), (30.0, True)])
def test_camera_preview_fps_caps_how_often_the_preview_is_made(
    tmp_path, issuing_key, preview_fps, renewed
):
    camera = FakeCamera(changing_frames(), after="loop", read_delay_s=0.005)
    kit = kit_with_camera(tmp_path, issuing_key, camera, camera_preview_fps=preview_fps)
    try:
        kit.services.start()
        loop = kit.services.scan_loop
        wait_until(lambda: loop.latest_jpeg() is not None, what="a first preview")
        first = loop.latest_jpeg()
        seen = loop.latest_frame().frame_id
        wait_until(lambda: loop.latest_frame().frame_id > seen + 3, what="newer frames")
        if renewed:
            # The looping camera may show the first frame again at any one instant: ask until
            # the preview follows the camera, as it must at 30 previews a second.
            wait_until(lambda: loop.latest_jpeg() != first, what="a renewed preview")
        else:
            time.sleep(0.2)  # many preview periods at 30 per second, far less than one at 0.01
            assert loop.latest_jpeg() == first
    finally:
        kit.services.stop()


# ---------------------------------------------------------------- demo camera


def first_demo_frame(tmp_path, issuing_key, seed: int) -> np.ndarray:
    tmp_path.mkdir()
    kit = make_kit(tmp_path, issuing_key, camera_demo_seed=seed)
    try:
        source = build_scan_loop(kit.services).source  # the camera the settings name
        source.open()
        try:
            return source.read()
        finally:
            source.close()
    finally:
        kit.services.stop()


def test_camera_demo_seed_picks_the_demo_scene(tmp_path, issuing_key):
    one = first_demo_frame(tmp_path / "a", issuing_key, seed=1)
    again = first_demo_frame(tmp_path / "b", issuing_key, seed=1)
    other = first_demo_frame(tmp_path / "c", issuing_key, seed=2)
    assert np.array_equal(one, again)
    assert not np.array_equal(one, other)


# ---------------------------------------------------------------- retention


@pytest.mark.parametrize("retention_days, archived", [(1, 10), (90, 0)])
def test_retention_days_moves_old_acknowledged_events_to_the_archive(
    tmp_path, issuing_key, retention_days, archived
):
    kit = make_kit(
        tmp_path,
        issuing_key,
        retention_days=retention_days,
        store_segment_events=10,
        store_checkpoint_events=1,
    )
    try:
        for number in range(12):  # one full segment of 10, two in the next
            assert wedge(kit, kit.badge(f"C{number:03d}"))["outcome"] == "arrival"
        kit.services.log.acknowledge(12)  # the centre has them
        kit.clock.advance(days=3)
        assert wedge(kit, kit.badge("C001"))["outcome"] == "arrival"  # a new service day
        log = kit.services.log
        log.wait_idle()  # the fold (and retention after it) runs on the log's own thread
        assert log.archived_count == archived
        assert len(list(log.iter_events())) == 13  # archived, never deleted
    finally:
        kit.services.stop()


# ---------------------------------------------------------------- Arrive / Leave buttons


def test_leave_button_departure_shows_the_hours_worked_and_is_one_event(tmp_path, issuing_key):
    kit = make_kit(tmp_path, issuing_key, show_arrive_leave_buttons=True)
    try:
        arrival = wedge(kit, kit.badge("C001"))
        assert arrival["outcome"] == "arrival"
        kit.clock.advance(hours=2, minutes=5)
        press(kit, "departure")
        departure = wedge(kit, kit.badge("C001"))
        assert departure["outcome"] == "departure"
        assert departure["worked_s"] == 2 * 3600 + 5 * 60
        assert "2" in departure["extra"] and "5" in departure["extra"]
        events = list(kit.services.log.iter_events())
        # The rules recorded the chosen kind themselves: no correction event beside it.
        assert [e.kind for e in events] == ["arrival", "departure"]
        assert FLAG_KIND_CHOSEN in events[-1].flags
        assert str(events[-1].event_id) == departure["event_id"]
    finally:
        kit.services.stop()


def test_arrive_button_within_the_repeat_window_of_an_arrival_is_a_repeat(tmp_path, issuing_key):
    kit = make_kit(tmp_path, issuing_key, show_arrive_leave_buttons=True)
    try:
        assert wedge(kit, kit.badge("C002"))["outcome"] == "arrival"
        kit.clock.advance(seconds=30)
        press(kit, "arrival")
        assert wedge(kit, kit.badge("C002"))["outcome"] == "repeat"
        assert [e.kind for e in kit.services.log.iter_events()] == ["arrival"]
    finally:
        kit.services.stop()
