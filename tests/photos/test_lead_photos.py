"""The site lead sees the photos: an event's photo under it in the log, today's arrivals as a
grid, newest first; nobody else does."""

from __future__ import annotations

import hashlib
import time

import pytest

from scanner import BadgeRead
from tests.browser import chromium, shot
from tests.kiosk_web.badge_camera import BadgeCamera
from tests.kiosk_web.helpers import LOCAL, login, make_kit
from tests.kiosk_web.live import live_kiosk
from tests.photos.scenes import astronaut_head, room, with_face


def checked_in(kit, *cadre_ids):
    services = kit.services
    for n, cadre_id in enumerate(cadre_ids):
        face = with_face(room())
        face[0, :4] = n  # each photo its own bytes
        now = time.monotonic_ns()
        services.faces.check_now(1, face, now)
        services.handle_read(BadgeRead(kit.badge(cadre_id), now, 1, face))
        kit.clock.advance(60)
    assert services.photos.flush()
    return [e for e in services.log.iter_events() if e.photo_sha256]


@pytest.fixture
def kit(tmp_path, issuing_key):
    made = make_kit(tmp_path, issuing_key, photo_capture=True)
    made.services.photos.start()
    yield made
    made.services.stop()


def test_lead_sees_each_events_photo_and_the_days_grid(kit):
    events = checked_in(kit, "C001", "C002", "C003")
    client = kit.app.test_client()
    first = events[0].photo_sha256
    assert client.get(f"/lead/photo/{first}.jpg", environ_base=LOCAL).status_code == 302
    assert client.get("/lead/photos", environ_base=LOCAL).status_code == 302
    login(client)
    page = client.get("/lead/", environ_base=LOCAL).get_data(as_text=True)
    for event in events:
        assert f"/lead/photo/{event.photo_sha256}.jpg" in page
    answer = client.get(f"/lead/photo/{first}.jpg", environ_base=LOCAL)
    assert answer.status_code == 200 and answer.mimetype == "image/jpeg"
    assert hashlib.sha256(answer.data).hexdigest() == first
    assert "no-store" in answer.headers["Cache-Control"]
    assert client.get(f"/lead/photo/{'0' * 64}.jpg", environ_base=LOCAL).status_code == 404
    assert client.get("/lead/photo/..%2f..%2fkiosk.toml.jpg", environ_base=LOCAL).status_code == 404
    grid = client.get("/lead/photos", environ_base=LOCAL).get_data(as_text=True)
    order = [grid.index(f"/lead/photo/{e.photo_sha256}.jpg") for e in reversed(events)]
    assert order == sorted(order)  # newest first
    for name in ("宋昕", "李明", "王芳"):
        assert name in grid


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.mark.browser
def test_the_lead_opens_an_events_photo(browser, tmp_path, issuing_key):
    camera = BadgeCamera(person=astronaut_head(180))
    with live_kiosk(tmp_path, issuing_key, camera=camera, photo_capture=True) as live:
        # The person stands in view a moment before holding the badge up.
        assert live.services.faces.wait_for_face(0, timeout_s=10) is not None
        camera.show(live.kit.badge("C001"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            e.photo_sha256 for e in live.services.log.iter_events()
        ):
            time.sleep(0.05)
        camera.hide()
        [event] = [e for e in live.services.log.iter_events() if e.photo_sha256]
        assert "no_face" not in event.flags
        assert live.services.photos.flush()
        context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
        page = context.new_page()
        page.goto(live.url + "/lead")
        page.fill("input[name=pin]", "2468")
        page.fill("input[name=name]", "张组长")
        page.click("button[type=submit]")
        page.wait_for_selector("#log")
        row = page.locator(f"li[data-event='{event.event_id}']")
        row.locator("details.photo summary").click()
        image = row.locator("details.photo img")
        image.wait_for(state="visible")
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
        assert image.evaluate("img => img.naturalWidth") == 320
        row.scroll_into_view_if_needed()
        shot(page, "lead-event-photo")
        page.goto(live.url + "/lead/photos")
        page.wait_for_selector(".photo-tile img")
        assert page.locator(".photo-tile").count() == 1
        shot(page, "lead-photo-grid")
        context.close()
