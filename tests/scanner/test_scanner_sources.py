from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from scanner import (
    DemoSource,
    HealthState,
    ImageFolderSource,
    OpenCvSource,
    PicameraSource,
    ScanLoop,
    ScannerOptions,
    SourceError,
    VideoFileSource,
    decode_frame,
    open_source,
)
from scanner.sources import usb_target
from tests.fakes.camera import wait_until
from tests.scanner.frames import BADGE_A, BADGE_B, badge_frame, empty_frame


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()


def test_a_video_file_plays_its_frames_and_loops(tmp_path):
    path = tmp_path / "badges.avi"
    write_video(path, [badge_frame(BADGE_A)] * 2 + [badge_frame(BADGE_B)] * 2)
    source = VideoFileSource(path, paced=False)
    with source:
        texts = [decode_frame(source.read()) for _ in range(6)]
    assert texts == [[BADGE_A], [BADGE_A], [BADGE_B], [BADGE_B], [BADGE_A], [BADGE_A]]


def test_a_corrupt_video_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "corrupt.avi"
    path.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(range(256)) * 40)
    with pytest.raises(SourceError, match=r"corrupt\.avi"):
        source = VideoFileSource(path, paced=False)
        source.open()
        source.read()


def test_a_missing_video_file_gives_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        VideoFileSource(tmp_path / "nope.mp4").open()


def test_the_scan_loop_survives_a_corrupt_video_file_and_reports_why(tmp_path, caplog):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\xde\xad\xbe\xef" * 500)
    options = ScannerOptions(
        source="file",
        device=str(path),
        paced=False,
        restart_backoff_s=0.01,
        restart_backoff_max_s=0.01,
        max_restarts=2,
    )
    loop = ScanLoop(options, lambda payload, t: None)
    with caplog.at_level(logging.WARNING, logger="scanner.loop"):
        loop.start()
        try:
            wait_until(lambda: loop.health().state is HealthState.FAILED, 10, "the loop to give up")
            assert loop.running  # waiting for a retry, not crashed
            assert "corrupt.mp4" in loop.health().detail
        finally:
            loop.stop()
    assert "corrupt.mp4" in caplog.text


def test_an_image_folder_plays_in_name_order_skips_bad_files_and_loops(tmp_path):
    cv2.imwrite(str(tmp_path / "1.png"), badge_frame(BADGE_A))
    (tmp_path / "2.jpg").write_bytes(b"not an image")
    cv2.imwrite(str(tmp_path / "3.png"), badge_frame(BADGE_B))
    (tmp_path / "notes.txt").write_text("ignored")
    with ImageFolderSource(tmp_path, paced=False) as source:
        texts = [decode_frame(source.read()) for _ in range(3)]
    assert texts == [[BADGE_A], [BADGE_B], [BADGE_A]]


def test_an_empty_or_missing_image_folder_is_refused(tmp_path):
    with pytest.raises(SourceError, match="holds no images"):
        ImageFolderSource(tmp_path).open()
    with pytest.raises(SourceError, match="does not exist"):
        ImageFolderSource(tmp_path / "missing").open()
    (tmp_path / "bad.png").write_bytes(b"broken")
    source = ImageFolderSource(tmp_path, paced=False)
    source.open()
    with pytest.raises(SourceError, match="no image"):
        source.read()


def test_demo_source_frames_show_each_payload_and_decode_to_it(tmp_path):
    payload_file = tmp_path / "badges.txt"
    payload_file.write_text(f"{BADGE_A}\n\n{BADGE_B}\n", encoding="utf-8")
    source = open_source(ScannerOptions(source="demo", device=str(payload_file), paced=False))
    assert isinstance(source, DemoSource)
    decoded: list[str] = []
    with source:
        for _ in range(160):
            decoded += decode_frame(source.read())
    assert set(decoded) == {BADGE_A, BADGE_B}  # both shown, nothing else read
    assert decoded.index(BADGE_A) < decoded.index(BADGE_B)


def test_demo_scene_is_reproducible_and_says_where_the_code_is():
    first = DemoSource([BADGE_A], seed=3, paced=False)
    second = DemoSource([BADGE_A], seed=3, paced=False)
    frames = [first.scene.frame(i) for i in range(60)]
    assert all(np.array_equal(f.image, second.read()) for f in frames)
    shown = [f for f in frames if f.code_in_view]
    assert shown and all(f.payload == BADGE_A for f in shown)
    assert any(f.phase == "gap" and f.payload is None for f in frames)


def test_demo_without_a_payload_file_shows_sample_badges():
    source = open_source(ScannerOptions(source="demo", device="0", paced=False))
    source.open()
    assert all(p.startswith("CB1") and len(p) == 130 for p in source.scene.payloads)


def test_demo_with_a_missing_or_empty_payload_file_fails_at_open(tmp_path):
    missing = open_source(ScannerOptions(source="demo", device=str(tmp_path / "badges.txt")))
    with pytest.raises(SourceError, match="does not exist"):
        missing.open()
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    empty = open_source(ScannerOptions(source="demo", device=str(tmp_path / "empty.txt")))
    with pytest.raises(SourceError, match="no payloads"):
        empty.open()


def test_source_names_map_to_sources(tmp_path):
    assert isinstance(open_source(ScannerOptions(source="usb", device="2")), OpenCvSource)
    assert open_source(ScannerOptions(source="url", device="rtsp://127.0.0.1/x")).live
    assert isinstance(open_source(ScannerOptions(source="file", device="a.mp4")), VideoFileSource)
    assert isinstance(open_source(ScannerOptions(source="images", device=".")), ImageFolderSource)
    assert isinstance(open_source(ScannerOptions(source="picamera")), PicameraSource)
    with pytest.raises(ValueError, match="unknown camera source"):
        ScannerOptions(source="webcam")


def test_usb_device_is_an_index_or_a_path():
    assert usb_target("0") == 0
    assert usb_target(" 3 ") == 3
    assert usb_target("/dev/video2") == "/dev/video2"


def test_picamera_without_picamera2_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(SourceError, match="python3-picamera2"):
        PicameraSource().open()


def test_a_usb_camera_that_is_not_there_fails_to_open_with_a_hint():
    with pytest.raises(SourceError, match="plugged in"):
        OpenCvSource("/dev/video-does-not-exist").open()


def test_empty_frame_helper_has_no_code():
    assert decode_frame(empty_frame(seed=5)) == []
