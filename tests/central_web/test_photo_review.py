"""The centre's photo review: flagged camera records first, a reviewer's verdict kept beside the
record (append-only), shown on the cadre's timeline and in the records export; photos shown
only to those allowed, never exported."""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from central.db.schema import photo_reviews
from central.photos import CentralPhotos
from scanner.photo import reviewer_jpeg
from sync.protocol import PhotoUpload
from tests.browser import chromium, shot
from tests.central_web.helpers import PASSWORDS, csrf_of
from tests.central_web.seed import local, push, seed
from tests.photos.scenes import room, with_face

DAY = "2026-11-29"


def jpeg(n: int) -> bytes:
    """A real check-in photo (a face in a room), each its own bytes."""
    frame = with_face(room())
    frame[0, :4] = n
    return reviewer_jpeg(frame)


@pytest.fixture
def photographed(app):
    """S01's kiosk sent C003's arrival with a photo and no face, C002's departure with one."""
    seeded = seed(app)
    central = app.extensions["central"]
    east = seeded.kiosks["S01"]
    suspect, plain = jpeg(1), jpeg(2)
    made = {
        "suspect": east.event(
            "C003",
            "arrival",
            local(6, 20),
            photo_sha256=hashlib.sha256(suspect).hexdigest(),
            flags=["no_face"],
        ),
        "plain": east.event(
            "C002", "departure", local(11, 0), photo_sha256=hashlib.sha256(plain).hexdigest()
        ),
    }
    push(central.engine, east, list(made.values()), central.now(), app)
    store = CentralPhotos.of_instance(central.instance)
    results = store.receive(
        central.engine,
        east.identity,
        [
            PhotoUpload.of(e.photo_sha256, e.event_id, data)
            for e, data in ((made["suspect"], suspect), (made["plain"], plain))
        ],
        central.now() + timedelta(hours=8),
        30,
    )
    assert [r.status for r in results] == ["stored", "stored"]
    return made, {"suspect": suspect, "plain": plain}


def verdict(client, event, choice, note=""):
    return client.post(
        "/staff/review",
        data={
            "event_id": str(event.event_id),
            "verdict": choice,
            "note": note,
            "csrf_token": csrf_of(client),
        },
    )


def test_review_lists_flagged_first_and_keeps_verdicts(app, admin, photographed):
    made, data = photographed
    page = admin.get(f"/staff/review?site=S01&day={DAY}").get_data(as_text=True)
    order = [page.index(f'id="r-{made[k].event_id}"') for k in ("suspect", "plain")]
    assert order[0] < order[1]  # no face: first, though later in the day than... nothing
    assert f"/staff/photos/{made['suspect'].photo_sha256}.jpg" in page
    photo = admin.get(f"/staff/photos/{made['suspect'].photo_sha256}.jpg")
    assert photo.status_code == 200 and photo.data == data["suspect"]
    assert "no-store" in photo.headers["Cache-Control"]
    # A proxy is not suspected without saying why.
    refused = verdict(admin, made["suspect"], "proxy_suspected")
    assert refused.status_code == 302
    engine = app.extensions["central"].engine
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(photo_reviews)).scalar_one() == 0
    verdict(admin, made["suspect"], "ok", "looked fine at first")
    verdict(admin, made["suspect"], "proxy_suspected", "同一张脸也出现在王强的记录里")
    with engine.connect() as conn:
        kept = conn.execute(select(photo_reviews.c.verdict).order_by(photo_reviews.c.review_id))
        assert list(kept.scalars()) == ["ok", "proxy_suspected"]  # appended, nothing replaced
    page = admin.get(f"/staff/review?site=S01&day={DAY}").get_data(as_text=True)
    assert "同一张脸也出现在王强的记录里" in page
    timeline = admin.get(f"/staff/cadres/C003?from={DAY}&to={DAY}").get_data(as_text=True)
    assert "疑似代签" in timeline and "同一张脸也出现在王强的记录里" in timeline
    assert f"/staff/photos/{made['suspect'].photo_sha256}.jpg" in timeline
    export = admin.get(f"/staff/exports/download?from={DAY}&to={DAY}&what=events&format=csv")
    rows = list(csv.reader(io.StringIO(export.data[3:].decode("utf-8"), newline="")))
    header = rows[0]
    assert header[-2:] == ["照片", "照片审核"]
    by_id = {row[header.index("记录编号")]: row for row in rows[1:]}
    suspect_row = by_id[str(made["suspect"].event_id)]
    assert suspect_row[-2] == "已收到"
    assert suspect_row[-1] == "疑似代签: 同一张脸也出现在王强的记录里 (admin)"
    assert by_id[str(made["plain"].event_id)][-2:] == ["已收到", ""]
    assert by_id[str(app.extensions["seeded"].events["c1_arrival"].event_id)][-2:] == ["", ""]
    assert data["suspect"] not in export.data and b"\xff\xd8\xff" not in export.data


def test_viewers_see_photos_only_when_allowed_and_never_judge(make_app, photographed, app):
    made, _ = photographed
    from tests.central_web.helpers import log_in

    viewer = app.test_client()
    log_in(viewer, "viewer")
    sha = made["suspect"].photo_sha256
    assert viewer.get(f"/staff/photos/{sha}.jpg").status_code == 403
    page = viewer.get(f"/staff/review?site=S01&day={DAY}").get_data(as_text=True)
    assert f"/staff/photos/{sha}.jpg" not in page and "verdict-form" not in page
    assert verdict(viewer, made["suspect"], "ok").status_code == 403
    app.extensions["central"].settings = app.extensions["central"].settings.model_copy(
        update={"photo_viewers_allowed": True}
    )
    assert viewer.get(f"/staff/photos/{sha}.jpg").status_code == 200
    anonymous = app.test_client()
    assert anonymous.get(f"/staff/photos/{sha}.jpg").status_code in (302, 401)


@pytest.fixture
def browser():
    yield from chromium()


@pytest.mark.browser
def test_a_reviewer_marks_a_proxy_and_the_timeline_and_export_say_so(browser, app, photographed):
    made, _ = photographed
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        page = context.new_page()
        page.goto(f"{url}/staff/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORDS["admin"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/staff/")
        page.click("nav >> text=照片审核")
        page.fill("input[name=site]", "S01")
        page.fill("input[name=day]", DAY)
        page.click("#review-form button[type=submit]")
        row = page.locator(f"#r-{made['suspect'].event_id}")
        row.wait_for()
        assert page.locator("li.review-row").first.get_attribute("id") == (
            f"r-{made['suspect'].event_id}"
        )
        image = row.locator(".review-photo img")
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
        row.locator("input[value=proxy_suspected]").check()
        row.locator("input[name=note]").fill("同一张脸也出现在王强的记录里")
        row.locator("button[type=submit]").click()
        page.wait_for_selector(f"#r-{made['suspect'].event_id} .verdict")
        assert "疑似代签" in page.locator(f"#r-{made['suspect'].event_id} .verdict").inner_text()
        shot(page, "central-photo-review", full_page=True)
        page.goto(f"{url}/staff/cadres/C003?from={DAY}&to={DAY}")
        cell = page.locator(f"#e-{made['suspect'].event_id}")
        assert "疑似代签" in cell.inner_text()
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0",
            arg=cell.locator("img.thumb").element_handle(),
        )
        shot(page, "central-cadre-photo", full_page=True)
        export = page.request.get(
            f"{url}/staff/exports/download?from={DAY}&to={DAY}&what=events&format=csv"
        )
        assert "疑似代签: 同一张脸也出现在王强的记录里 (admin)" in export.text()
        context.close()
    finally:
        server.shutdown()
        thread.join(timeout=5)
