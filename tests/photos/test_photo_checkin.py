"""A camera check-in keeps a photo whose hash is in the event; no face, no room, no photo: the
check-in is recorded all the same, flagged."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import date

import pytest

from kiosk.app import build_scan_loop
from kiosk.photos import PhotoStore
from kiosk.rules import FLAG_NO_FACE, FLAG_NO_PHOTO
from scanner import BadgeRead
from sync.badge_token import issue_token
from tests.fakes.camera import FakeCamera
from tests.kiosk_web.helpers import make_kit
from tests.photos.scenes import room, with_badge, with_face


def wait_for(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def camera_events(kit):
    return [e for e in kit.services.log.iter_events() if e.source == "camera"]


def run_camera(tmp_path, issuing_key, frames, **settings):
    """A kiosk whose camera plays `frames` (10 a second) through the real scan loop."""
    camera = FakeCamera(frames, after="none", read_delay_s=0.1)
    kit = make_kit(
        tmp_path,
        issuing_key,
        scan_loop_factory=lambda services: build_scan_loop(services, source=camera),
        photo_capture=True,
        **settings,
    )
    kit.services.start()
    return kit, camera


@pytest.fixture
def kits():
    made = []
    yield made
    for kit in made:
        kit.services.stop()


def test_camera_checkin_event_holds_the_hash_of_the_stored_photo(tmp_path, issuing_key, kits):
    badge = issue_token(issuing_key, "C001", 1, date(2026, 11, 1))
    face = with_face(room())
    # The person stands in view 3 s before holding the badge up: the face watcher (5 checks a
    # second here) has seen the face by then even on a busy machine.
    frames = [face] * 30 + [with_badge(face, badge)] * 3 + [face] * 3
    kit, _camera = run_camera(
        tmp_path, issuing_key, frames, face_check_fps=5.0, face_lookback_s=3.0
    )
    kits.append(kit)
    assert wait_for(lambda: len(camera_events(kit)) == 1)
    event = camera_events(kit)[0]
    assert event.cadre_id == "C001" and event.photo_sha256 is not None
    assert FLAG_NO_FACE not in event.flags and FLAG_NO_PHOTO not in event.flags
    assert kit.services.photos.flush()
    stored = kit.services.photos.read(event.photo_sha256)
    assert stored is not None and stored[:2] == b"\xff\xd8"
    assert hashlib.sha256(stored).hexdigest() == event.photo_sha256
    assert event.hash_is_valid() and "photo_sha256" in event.wire()
    files = list((kit.instance / "photos").rglob("*.jpg"))
    assert [p.name for p in files] == [f"{event.photo_sha256}.jpg"]
    assert 3_000 < len(stored) < 40_000


def test_empty_scene_is_flagged_no_face(tmp_path, issuing_key, kits):
    badge = issue_token(issuing_key, "C002", 1, date(2026, 11, 1))
    empty = room()
    frames = [empty] * 12 + [with_badge(empty, badge)] * 3 + [empty] * 3
    kit, _camera = run_camera(tmp_path, issuing_key, frames)
    kits.append(kit)
    assert wait_for(lambda: len(camera_events(kit)) == 1)
    event = camera_events(kit)[0]
    assert FLAG_NO_FACE in event.flags
    assert event.photo_sha256 is not None  # the frame the badge was read from, all the same


def read_of(kit, payload, image, at_ns):
    return BadgeRead(payload=payload, time_ns=at_ns, frame_id=1, image=image)


def test_full_photo_store_still_records_the_checkin(tmp_path, issuing_key, kits):
    kit = make_kit(tmp_path, issuing_key, photo_capture=True)
    kits.append(kit)
    services = kit.services
    services.photos = PhotoStore(
        kit.instance / "full-photos", cap_bytes=100, retention_days=30, min_free_bytes=0
    )
    services.photos.start()
    face = with_face(room())
    now = time.monotonic_ns()
    services.faces.check_now(1, face, now)
    message = services.handle_read(read_of(kit, kit.badge("C001"), with_badge(face, "x"), now))
    assert message["outcome"] == "arrival"
    [event] = camera_events(kit)
    assert event.photo_sha256 is None
    assert FLAG_NO_PHOTO in event.flags and FLAG_NO_FACE not in event.flags
    assert services.photos.state().count == 0


def test_photos_off_adds_nothing_to_the_event(tmp_path, issuing_key, kits):
    kit = make_kit(tmp_path, issuing_key)
    kits.append(kit)
    assert kit.services.photos is None and kit.services.faces is None
    kit.services.handle_read(read_of(kit, kit.badge("C001"), room(), time.monotonic_ns()))
    [event] = camera_events(kit)
    assert event.photo_sha256 is None and event.flags == []
    assert "photo_sha256" not in event.wire()  # old logs and old centres see the same record


def test_repeat_and_refused_scans_keep_no_photo(tmp_path, issuing_key, kits):
    kit = make_kit(tmp_path, issuing_key, photo_capture=True)
    kits.append(kit)
    services = kit.services
    services.photos.start()
    now = time.monotonic_ns()
    services.handle_read(read_of(kit, kit.badge("C001"), room(), now))
    services.handle_read(read_of(kit, kit.badge("C001"), room(), now + 1))  # repeat
    services.handle_read(read_of(kit, "NOT A BADGE", room(), now + 2))  # refused
    assert services.photos.flush()
    assert services.photos.state().count == 1


def test_require_face_asks_and_waits_for_a_face(tmp_path, issuing_key, kits):
    kit = make_kit(tmp_path, issuing_key, photo_capture=True, require_face=True, face_wait_s=5)
    kits.append(kit)
    services = kit.services
    services.photos.start()
    prompts = []
    subscription = services.bus.subscribe(None)
    face = with_face(room())
    now = time.monotonic_ns()

    def face_arrives():
        while not prompts:
            message = subscription.get(timeout=0.05)
            if message is not None and "event: prompt" in message.encode().decode():
                prompts.append(message)
        services.faces.check_now(9, face, now + 500_000_000)

    helper = threading.Thread(target=face_arrives)
    helper.start()
    services.handle_read(read_of(kit, kit.badge("C003"), room(), now))
    helper.join(5)
    [event] = camera_events(kit)
    assert prompts and "请正对摄像头" in prompts[0].encode().decode()
    assert FLAG_NO_FACE not in event.flags
    assert services.photos.flush()
    assert services.photos.read(event.photo_sha256) is not None


def test_require_face_records_after_the_wait_flagged(tmp_path, issuing_key, kits):
    kit = make_kit(tmp_path, issuing_key, photo_capture=True, require_face=True, face_wait_s=0.3)
    kits.append(kit)
    started = time.monotonic()
    message = kit.services.handle_read(read_of(kit, kit.badge("C002"), room(), time.monotonic_ns()))
    assert message["outcome"] == "arrival"
    assert time.monotonic() - started >= 0.3
    [event] = camera_events(kit)
    assert FLAG_NO_FACE in event.flags
