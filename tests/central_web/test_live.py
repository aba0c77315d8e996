"""Live pages: the all-sites page and a site's page poll a small JSON and update their figures;
a poll while nothing changed answers "unchanged" without reading the stays."""

from __future__ import annotations

from datetime import timedelta

from tests.central_web.seed import local, push, seed


def test_all_sites_figures_follow_a_new_arrival(app, viewer):
    seeded = seed(app)
    html = viewer.get("/staff/").get_data(as_text=True)
    assert 'data-live="/staff/live/overview.json?day=2026-11-29"' in html
    assert 'src="/staff/static/live.js"' in html
    first = viewer.get("/staff/live/overview.json?day=2026-11-29").get_json()
    assert first["sites"]["S01"]["arrived"] == 3 and first["totals"]["absent"] == 3
    assert first["sites"]["S02"]["silent"] == 1
    same = viewer.get(f"/staff/live/overview.json?day=2026-11-29&since={first['stamp']}")
    assert same.get_json() == {"unchanged": True, "stamp": first["stamp"]}
    east = seeded.kiosks["S01"]
    central = app.extensions["central"]
    push(central.engine, east, [east.event("C003", "arrival", local(11, 50))], central.now(), app)
    after = viewer.get(f"/staff/live/overview.json?day=2026-11-29&since={first['stamp']}")
    figures = after.get_json()
    assert figures["stamp"] != first["stamp"]
    assert figures["sites"]["S01"]["arrived"] == 4 and figures["totals"]["absent"] == 2


def test_time_alone_changes_the_stamp_so_a_kiosk_can_go_silent(app, viewer, clock):
    seed(app)
    first = viewer.get("/staff/live/overview.json").get_json()
    clock.value = clock.value + timedelta(minutes=10)
    later = viewer.get(f"/staff/live/overview.json?since={first['stamp']}").get_json()
    assert not later.get("unchanged")
    assert later["kiosks"]["silent"] == 2


def test_a_site_page_follows_a_cadre(app, viewer):
    seeded = seed(app)
    html = viewer.get("/staff/sites/S01").get_data(as_text=True)
    assert 'data-live="/staff/live/sites/S01.json?day=2026-11-29"' in html
    before = viewer.get("/staff/live/sites/S01.json").get_json()
    assert before["cadres"]["C003"] == {
        "status": "absent",
        "status_label": "缺勤",
        "arrived": "",
        "left": "",
    }
    east = seeded.kiosks["S01"]
    central = app.extensions["central"]
    push(central.engine, east, [east.event("C003", "arrival", local(11, 50))], central.now(), app)
    after = viewer.get("/staff/live/sites/S01.json").get_json()
    assert after["cadres"]["C003"]["status"] == "present"
    assert after["cadres"]["C003"]["arrived"] == "11:50"
    assert viewer.get("/staff/live/sites/NOPE.json").status_code == 404


def test_live_figures_need_a_login(app):
    answer = app.test_client().get("/staff/live/overview.json")
    assert answer.status_code == 401 and answer.get_json() == {"error": "login required"}
