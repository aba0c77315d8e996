from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from scanner import HealthState, ScanLoop, ScannerOptions, SourceError
from scanner.loop import Backoff
from tests.fakes.camera import FakeCamera, wait_until
from tests.fakes.clock import FakeClock
from tests.scanner.frames import BADGE_A, BADGE_B, badge_frame, empty_frame

FRAME_S = 0.1  # each fake read moves the fake clock by this much (10 fps)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, payload: str, frame_time_ns: int) -> None:
        with self.lock:
            self.calls.append((payload, frame_time_ns))

    @property
    def payloads(self) -> list[str]:
        with self.lock:
            return [p for p, _ in self.calls]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 29, 5, 20, tzinfo=UTC))


def options(**overrides) -> ScannerOptions:
    base = dict(
        source="demo",
        repeat_window_s=2.0,
        restart_backoff_s=0.01,
        restart_backoff_max_s=0.04,
        max_restarts=5,
        steady_after_s=1.0,
        no_frame_timeout_s=2.0,
    )
    base.update(overrides)
    return ScannerOptions(**base)


def run(loop: ScanLoop, camera: FakeCamera, until=None, timeout: float = 10.0) -> None:
    loop.start()
    try:
        wait_until(until or camera.exhausted.is_set, timeout, "the camera script to play")
        # Let the loop finish the frame in hand and the delivery thread catch up.
        reads = camera.reads
        wait_until(lambda: camera.reads > reads + 1, timeout, "two more reads")
    finally:
        loop.stop()


def tick(clock: FakeClock):
    return lambda: clock.advance(FRAME_S)


def test_a_badge_held_in_view_is_reported_once_and_again_after_the_window(clock):
    a = badge_frame(BADGE_A)
    blank = empty_frame()
    # 2 s in view, 1 s away (shorter than the 2 s window), 1 s back, 3 s away, then back.
    script = [a] * 20 + [blank] * 10 + [a] * 10 + [blank] * 30 + [a] * 5
    camera = FakeCamera(script, tick=tick(clock))
    got = Recorder()
    loop = ScanLoop(options(), got, source=camera, clock=clock.monotonic_ns)
    run(loop, camera)
    assert got.payloads == [BADGE_A, BADGE_A]
    first, second = (t for _, t in got.calls)
    assert (second - first) / 1e9 == pytest.approx((20 + 10 + 10 + 30) * FRAME_S)


def test_two_badges_in_turn_are_both_reported_at_once(clock):
    script = [badge_frame(BADGE_A)] * 3 + [badge_frame(BADGE_B)] * 3 + [badge_frame(BADGE_A)] * 3
    camera = FakeCamera(script, tick=tick(clock))
    got = Recorder()
    run(ScanLoop(options(), got, source=camera, clock=clock.monotonic_ns), camera)
    assert got.payloads == [BADGE_A, BADGE_B]
    times = [t for _, t in got.calls]
    assert (times[1] - times[0]) / 1e9 == pytest.approx(3 * FRAME_S)


def test_an_exception_in_the_callback_does_not_stop_the_loop(clock, caplog):
    seen: list[str] = []

    def fragile(payload: str, frame_time_ns: int) -> None:
        seen.append(payload)
        if payload == BADGE_A:
            raise RuntimeError("log is full")

    camera = FakeCamera([badge_frame(BADGE_A)] * 2 + [badge_frame(BADGE_B)] * 2, tick=tick(clock))
    loop = ScanLoop(options(), fragile, source=camera, clock=clock.monotonic_ns)
    with caplog.at_level(logging.ERROR, logger="scanner.loop"):
        run(loop, camera)
    assert seen == [BADGE_A, BADGE_B]
    assert loop.callback_errors == 1
    assert "on_payload failed" in caplog.text


def test_a_slow_callback_does_not_hold_up_frames(clock):
    release = threading.Event()
    got = Recorder()

    def slow(payload: str, frame_time_ns: int) -> None:
        release.wait(10)
        got(payload, frame_time_ns)

    camera = FakeCamera(
        [badge_frame(BADGE_A)] + [empty_frame(seed=i) for i in range(30)], tick=tick(clock)
    )
    loop = ScanLoop(options(), slow, source=camera, clock=clock.monotonic_ns)
    loop.start()
    try:
        # Every frame is read while the first payload's callback is still blocked.
        wait_until(camera.exhausted.is_set, 10, "all frames read during the slow callback")
        assert got.payloads == []
        release.set()
        wait_until(lambda: got.payloads == [BADGE_A], 5, "the payload delivered")
    finally:
        release.set()
        loop.stop()


def test_a_camera_that_dies_is_reopened_with_backoff_and_health_says_so(clock, caplog):
    frames = [empty_frame(seed=i) for i in range(5)]
    unplugged = SourceError("USB camera unplugged")
    # Reads fail 5 times in a row (dead), two reopenings fail, the third works, frames flow.
    script = frames + [unplugged] * 5 + [badge_frame(BADGE_A)] * 3 + frames
    camera = FakeCamera(
        script,
        opens=[True, SourceError("no such device"), SourceError("no such device"), True],
        tick=tick(clock),
    )
    got = Recorder()
    loop = ScanLoop(options(), got, source=camera, clock=clock.monotonic_ns)
    seen_while_down: list[dict] = []
    camera.on_open(lambda attempt: seen_while_down.append(dict(loop.health())))
    with caplog.at_level(logging.WARNING, logger="scanner.loop"):
        run(loop, camera)
    assert camera.open_calls == 4
    assert got.payloads == [BADGE_A]  # it came back and reads badges again
    # While it was down the pages saw why, and that it is being reopened.
    down = seen_while_down[1:]
    assert [h["state"] for h in down] == ["restarting"] * 3
    assert "USB camera unplugged" in down[0]["detail"]
    assert "no such device" in down[-1]["detail"]
    assert [h["restarts"] for h in down] == [1, 2, 3]
    # Backoff doubles: 0.01, 0.02, 0.04 (the cap).
    delays = [r.getMessage() for r in caplog.records if "reopening in" in r.getMessage()]
    assert [m.split("reopening in ")[1].split(" s")[0] for m in delays] == ["0.01", "0.02", "0.04"]
    assert all("attempt" in m for m in delays) and "USB camera unplugged" in delays[0]
    health = loop.health()
    assert health.total_restarts == 3 and health.frames >= 8


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_reset():
    backoff = Backoff(1.0, 5.0)
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_the_loop_gives_up_after_the_restart_cap_until_asked_to_retry(clock, caplog):
    camera = FakeCamera(
        [badge_frame(BADGE_A)] * 3,
        opens=[SourceError("camera busy")] * 4,
        tick=tick(clock),
    )
    got = Recorder()
    loop = ScanLoop(options(max_restarts=3), got, source=camera, clock=clock.monotonic_ns)
    loop.start()
    try:
        wait_until(lambda: loop.health().state is HealthState.FAILED, 5, "the loop to give up")
        health = loop.health()
        assert "gave up after 3 reopenings" in health.detail and "camera busy" in health.detail
        assert camera.open_calls == 4
        loop.restart_camera()
        wait_until(lambda: got.payloads == [BADGE_A], 5, "frames after the retry")
        assert loop.health().state is not HealthState.FAILED
    finally:
        loop.stop()
    assert "gave up" in caplog.text


def test_frozen_frames_make_the_health_frozen_and_a_live_camera_is_reopened(clock):
    still = empty_frame()
    camera = FakeCamera([still] * 40, after="hold", tick=tick(clock))  # 4 s of the same frame
    loop = ScanLoop(
        options(frozen_after_s=2.0, frozen_restart_s=10.0),
        Recorder(),
        source=camera,
        clock=clock.monotonic_ns,
    )
    loop.start()
    try:
        wait_until(camera.exhausted.is_set, 10, "40 identical frames")
        health = loop.health()
        assert health.state is HealthState.FROZEN and "not changed" in health.detail
        assert camera.open_calls == 1
        # Still frozen at 10 s: the camera is closed and reopened.
        wait_until(lambda: camera.open_calls >= 2, 10, "the frozen camera to be reopened")
    finally:
        loop.stop()


def test_a_frozen_still_picture_is_not_reopened_when_the_source_is_not_a_camera(clock):
    camera = FakeCamera([empty_frame()] * 150, live=False, tick=tick(clock))  # 15 s
    loop = ScanLoop(
        options(frozen_after_s=2.0, frozen_restart_s=10.0),
        Recorder(),
        source=camera,
        clock=clock.monotonic_ns,
    )
    run(loop, camera)
    assert camera.open_calls == 1


def test_changing_frames_are_not_frozen(clock):
    camera = FakeCamera([empty_frame(seed=i) for i in range(40)], tick=tick(clock))
    loop = ScanLoop(
        options(frozen_after_s=2.0), Recorder(), source=camera, clock=clock.monotonic_ns
    )
    loop.start()
    try:
        wait_until(camera.exhausted.is_set, 10, "frames")
        assert loop.health().state is HealthState.OK
    finally:
        loop.stop()


def test_dark_frames_make_the_health_dark_with_the_brightness(clock):
    camera = FakeCamera(
        [empty_frame(level=22, seed=i, noise=2) for i in range(10)], tick=tick(clock)
    )
    loop = ScanLoop(options(dark_below=40), Recorder(), source=camera, clock=clock.monotonic_ns)
    loop.start()
    try:
        wait_until(camera.exhausted.is_set, 10, "frames")
        health = loop.health()
        assert health.state is HealthState.DARK
        assert health.brightness is not None and health.brightness < 40
        assert "too dark" in health.detail
    finally:
        loop.stop()


def test_flat_frames_say_out_of_focus(clock):
    blurred = [cv2.GaussianBlur(empty_frame(seed=i), (0, 0), 6) for i in range(10)]
    camera = FakeCamera(blurred, tick=tick(clock))
    loop = ScanLoop(options(), Recorder(), source=camera, clock=clock.monotonic_ns)
    loop.start()
    try:
        wait_until(camera.exhausted.is_set, 10, "frames")
        health = loop.health()
        assert health.state is HealthState.BLURRY and health.sharpness is not None
    finally:
        loop.stop()


def test_no_frames_for_a_while_shows_in_health_and_restarts_the_camera(clock):
    camera = FakeCamera([empty_frame()], after="none", tick=tick(clock))
    loop = ScanLoop(
        options(no_frame_timeout_s=1.0), Recorder(), source=camera, clock=clock.monotonic_ns
    )
    loop.start()
    try:
        wait_until(lambda: camera.open_calls >= 2, 10, "a reopening after no frames")
    finally:
        loop.stop()
    assert loop.health().state is HealthState.STOPPED


def test_health_before_the_first_frame_is_starting_and_counts_fps(clock):
    camera = FakeCamera([empty_frame(seed=i) for i in range(12)], tick=tick(clock))
    loop = ScanLoop(options(), Recorder(), source=camera, clock=clock.monotonic_ns)
    assert loop.health().state is HealthState.STARTING
    run(loop, camera)
    health = loop.health()
    assert health.fps == pytest.approx(1 / FRAME_S, rel=0.05)
    assert health["source"] == "fake camera" and health.frames == 12


def test_stop_joins_the_threads_and_closes_the_camera(clock):
    camera = FakeCamera([empty_frame(seed=i) for i in range(5)], after="loop", tick=tick(clock))
    loop = ScanLoop(options(), Recorder(), source=camera, clock=clock.monotonic_ns)
    loop.start()
    wait_until(lambda: camera.reads > 10, 5, "reads")
    loop.stop()
    assert not loop.running
    assert not camera.is_open and camera.close_calls >= 1
    assert not any(t.name.startswith("scanner") for t in threading.enumerate())


def test_preview_jpeg_is_made_on_request_and_at_a_capped_rate(clock):
    frames = [empty_frame(seed=i) for i in range(3)]
    camera = FakeCamera(frames, after="hold")
    loop = ScanLoop(options(preview_fps=5), Recorder(), source=camera, clock=clock.monotonic_ns)
    assert loop.latest_jpeg() is None
    loop.start()
    try:
        wait_until(lambda: camera.frames_given == 3, 5, "frames")
        first = loop.latest_jpeg()
        assert first is not None and first[:2] == b"\xff\xd8"
        picture = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert picture.shape == (480, 640)
        # New frames keep coming, but within 1/5 s the same JPEG is served.
        wait_until(lambda: loop.latest_frame().frame_id > loop._jpeg_frame_id, 5, "new frame")
        assert loop.latest_jpeg() is first
        clock.advance(0.25)
        assert loop.latest_jpeg() is not first
    finally:
        loop.stop()


def test_preview_stream_counts_its_watchers(clock):
    camera = FakeCamera([empty_frame(seed=i) for i in range(3)], after="hold")
    loop = ScanLoop(options(preview_fps=50), Recorder(), source=camera, clock=clock.monotonic_ns)
    loop.start()
    try:
        stream = loop.preview_stream()
        assert next(stream)[:2] == b"\xff\xd8"
        assert loop.watchers == 1
        stream.close()
        assert loop.watchers == 0
    finally:
        loop.stop()
