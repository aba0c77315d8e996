"""The face check: a real face is found, an empty room is not, and the watcher answers at once."""

from __future__ import annotations

import numpy as np

from scanner.demo import draw_face
from scanner.faces import FaceDetector, FaceWatcher, cascade_path
from tests.photos.scenes import room, with_face


def test_cascade_ships_inside_opencv():
    path = cascade_path()
    assert path is not None and path.stat().st_size > 100_000


def test_real_face_is_found_and_empty_room_is_not():
    detector = FaceDetector()
    faces = detector.faces(with_face(room()))
    assert len(faces) == 1
    box = faces[0]
    # Where the astronaut's face was pasted (left 30, top 20, 220 px wide head).
    assert 30 <= box.x <= 250 and 20 <= box.y <= 270 and box.w >= 60
    assert detector.faces(room()) == ()


def test_drawn_face_of_the_demo_is_found():
    frame = room()
    draw_face(frame, (200, 220), 110)
    assert len(FaceDetector().faces(frame)) == 1


def test_watcher_keeps_sightings_and_forgets_old_ones():
    now = [10_000_000_000]
    watcher = FaceWatcher(keep_s=5.0, clock=lambda: now[0])
    face, empty = with_face(room()), room()
    assert watcher.check_now(1, face, now[0]) is not None
    assert watcher.check_now(2, empty, now[0] + 100_000_000) is None
    assert watcher.sighting(now[0] - 1).frame_id == 1
    assert watcher.sighting(now[0] + 1) is None  # nothing with a face since
    now[0] += 6_000_000_000
    watcher.check_now(3, empty, now[0])
    assert watcher.sighting(0) is None  # older than keep_s


def test_watcher_thread_never_blocks_the_offer_and_finds_the_face():
    watcher = FaceWatcher(max_fps=0, clock=lambda: 30)
    watcher.start()
    try:
        face = with_face(room())
        for frame_id in range(1, 30):
            watcher.offer(frame_id, face if frame_id > 20 else np.zeros_like(face), frame_id)
        seen = watcher.wait_for_face(21, timeout_s=5.0)
        assert seen is not None and seen.frame_id >= 21
    finally:
        watcher.stop()
