"""One person holding up three colleagues' badges in three seconds: flagged at the kiosk, an
anomaly with its photos at the centre; two different people one after another are not."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from central import photo_review
from central.app import create_app
from central.db.schema import anomalies
from central.services import central_of
from kiosk.holders import MIN_LIKENESS, SeveralBadges, face_patch, likeness
from kiosk.photo_outbox import PhotoOutbox
from kiosk.rules import FLAG_SEVERAL_BADGES
from scanner import BadgeRead, FaceDetector, FaceSighting
from scanner.demo import DEMO_CAST, DemoScene, draw_face
from sync.agent import SyncAgent
from sync.client import CentralClient
from tests.fakes.network import WSGIAdapter, session_with
from tests.kiosk_web.helpers import make_kit
from tests.photos.scenes import room, with_face
from tests.sync.helpers import T0, enrolled, load_roster


def show(kit, cadre_id, frame, at_ns):
    services = kit.services
    services.faces.check_now(1, frame, at_ns)
    return services.handle_read(BadgeRead(kit.badge(cadre_id), at_ns, 1, frame))


def camera_events(kit):
    return [e for e in kit.services.log.iter_events() if e.source == "camera"]


def test_three_badges_in_three_seconds_from_one_holder(tmp_path, issuing_key):
    kit = make_kit(tmp_path, issuing_key, photo_capture=True)
    kit.services.photos.start()
    try:
        start = time.monotonic_ns()
        for n, cadre_id in enumerate(("C001", "C002", "C003")):
            frame = with_face(room())
            frame[0, :4] = n  # another frame of the same person
            assert show(kit, cadre_id, frame, start + n * 1_000_000_000)["outcome"] == "arrival"
        first, second, third = camera_events(kit)
        assert FLAG_SEVERAL_BADGES not in first.flags
        assert FLAG_SEVERAL_BADGES in second.flags and FLAG_SEVERAL_BADGES in third.flags
        assert all(e.photo_sha256 for e in (first, second, third))
        assert kit.services.photos.flush()

        # At the centre: an anomaly for each flagged record, its photo there for review.
        centre = create_app(tmp_path / "centre", now=lambda: T0, config={"TESTING": True})
        load_roster(central_of(centre).engine, {"site-1": ["C001", "C002", "C003"]})
        _, token = enrolled(central_of(centre).engine, "site-1", "kiosk-t1")
        client = CentralClient(
            "http://centre.test", token, session=session_with(WSGIAdapter(centre))
        )
        agent = SyncAgent(
            kit.services.log,
            client,
            "kiosk-t1",
            "boot-1",
            photos=PhotoOutbox(kit.services.log, kit.services.photos),
        )
        assert agent.run_cycle()
        with central_of(centre).engine.connect() as conn:
            found = conn.execute(
                select(anomalies.c.cadre_id, anomalies.c.service_day).where(
                    anomalies.c.kind == "several_badges"
                )
            ).all()
            page_rows = photo_review.review_rows(conn, "site-1", found[0].service_day)
        assert sorted(row.cadre_id for row in found) == ["C002", "C003"]
        flagged = {r.event_id: r for r in page_rows if "anomaly:several_badges" in r.reasons}
        assert set(flagged) == {str(second.event_id), str(third.event_id)}
        assert all(r.photo_held for r in flagged.values())
    finally:
        kit.services.stop()


def test_two_people_one_after_another_are_not_flagged(tmp_path, issuing_key):
    kit = make_kit(tmp_path, issuing_key, photo_capture=True)
    try:
        start = time.monotonic_ns()
        show(kit, "C001", with_face(room()), start)
        other = room()
        draw_face(other, (140, 150), 150)  # someone else, standing where the first one stood
        show(kit, "C002", other, start + 1_000_000_000)
        # The same person again, but after the window: a new arrival, not flagged either.
        show(kit, "C003", with_face(room()), start + 7_000_000_000)
        assert all(FLAG_SEVERAL_BADGES not in e.flags for e in camera_events(kit))
    finally:
        kit.services.stop()


def test_the_demo_queue_is_people_unlike_each_other():
    """The demo camera's queue (scripts/demo.py) is drawn people; the kiosk must not take them
    for one person showing everyone's badges, or every demo check-in is flagged."""
    scene = DemoScene(["demo"], person=True)
    held = {}
    index = 0
    while len(held) < 2 * len(DEMO_CAST):
        frame = scene.frame(index)
        if frame.phase == "hold":
            held.setdefault(frame.appearance, frame.image)
        index += 3
    detector = FaceDetector()
    holders = SeveralBadges(window_s=5.0)
    # held's keys are the appearances' first frames; one after another, 1.2 s apart.
    for k, (_first_frame, image) in enumerate(sorted(held.items())):
        boxes = detector.faces(image)
        assert boxes, f"no face found in appearance {k}"
        sighting = FaceSighting(k, k * 1_200_000_000, image, boxes)
        # Closer together than at a real gate: each is compared with the four before it.
        assert holders.others(sighting.time_ns, f"C{k:03d}", sighting) == [], k
        holders.note(sighting.time_ns, f"C{k:03d}", sighting)


@pytest.mark.parametrize("width", [80, 115, 150])
def test_every_two_of_the_demo_cast_are_told_apart(width):
    """115 px across is the demo's person; 80 and 150 a step back and a step closer."""
    detector = FaceDetector()
    patches = []
    for variant in range(len(DEMO_CAST)):
        image = room()
        draw_face(image, (200, 200), width, variant=variant)
        boxes = detector.faces(image)
        assert boxes, f"the face check finds no face in DEMO_CAST[{variant}] at {width} px"
        patches.append(face_patch(FaceSighting(1, 0, image, boxes))[1])
    for a in range(len(patches)):
        for b in range(a + 1, len(patches)):
            assert likeness(patches[a], patches[b]) < MIN_LIKENESS, (a, b)
