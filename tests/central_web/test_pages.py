"""What the staff pages show, on the small centre of seed.py."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from tests.central_web.seed import local, push, seed
from tests.proofs import CHECKS


def text_of(response) -> str:
    """The page's visible text, one space between words, for plain assertions."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def site_row(text: str, name: str) -> str:
    """The text of the all-sites table row that starts with the site's name."""
    start = text.index(name, text.index("签到机 ", text.index("应到 到达")))
    return text[start : start + 160]


@pytest.fixture
def seeded(app):
    return seed(app)


def test_all_sites_counts_each_site_and_shows_the_silent_kiosk(seeded, viewer):
    response = viewer.get("/staff/")
    assert response.status_code == 200
    text = text_of(response)
    # expected, arrived, present, departed, no departure, absent per site
    assert re.search(r"东湖站 S01 · 1 人不在本站名单 3 3 2 1 0 1 ", site_row(text, "东湖站"))
    assert re.search(r"西山站 S02 2 0 0 0 0 2 ", site_row(text, "西山站"))
    assert "失联的签到机" in text
    assert re.search(r"S02 · S02-1 · 最后联系：3 小时前", text)
    html = response.get_data(as_text=True)
    assert '<tr class="dead" data-site="S02">' in html, (
        "the row of a site with a dead kiosk is marked"
    )
    assert "待发 2" in text, "the live kiosk's queue length"


def test_a_past_day_has_nobody_present(seeded, viewer):
    text = text_of(viewer.get("/staff/?day=2026-11-28"))
    assert "2026-11-28" in text
    assert re.search(r"东湖站 S01 3 0 0 0 0 3 ", site_row(text, "东湖站"))


def test_site_page_lists_cadres_with_status_and_arrival_chart(seeded, viewer):
    response = viewer.get("/staff/sites/S01")
    text = text_of(response)
    assert re.search(r"李娜 C002 城管一队 在岗 06:10", text)
    assert re.search(r"宋昕 C001 城管一队 已离开 06:00 11:30 5 小时 30 分", text)
    assert re.search(r"王强 C003 街道办 缺勤", text)
    assert re.search(r"赵敏 C004 · 不在本站名单", text)
    html = response.get_data(as_text=True)
    assert 'src="/staff/static/chart.js"' in html
    data = re.search(r'<script type="application/json" id="arrivals-data">(.*?)</script>', html)
    slots = {slot["t"]: slot["n"] for slot in json.loads(data[1])}
    assert slots["06:00"] == 2 and slots["07:00"] == 1, "slots in local time"
    assert "cdn" not in html.lower()
    chart = viewer.get("/staff/sites/S01/arrivals.json").get_json()
    assert chart["slot_minutes"] == 15
    counts = {slot["start"][11:16]: slot["arrivals"] for slot in chart["slots"]}
    assert counts["06:00"] == 2 and counts["07:00"] == 1 and counts["06:15"] == 0


def test_chart_script_is_served_locally(app, viewer):
    response = viewer.get("/staff/static/chart.js")
    assert response.status_code == 200
    assert b"createElementNS" in response.data


def test_unknown_site_and_cadre_are_404(seeded, viewer):
    assert viewer.get("/staff/sites/NOPE").status_code == 404
    assert viewer.get("/staff/cadres/NOPE").status_code == 404


def test_cadre_timeline_shows_device_and_corrected_time_and_stays(app, seeded, viewer):
    east = seeded.kiosks["S01"]
    # A kiosk whose clock ran an hour slow, not synchronised: time stays uncorrected and says so.
    late = east.event("C003", "arrival", local(6, 30) - timedelta(hours=1), clock_trusted=False)
    push(app.extensions["central"].engine, east, [late], app.extensions["central"].now(), app)
    text = text_of(viewer.get("/staff/cadres/C003"))
    assert "王强" in text
    assert re.search(r"2026-11-29 05:30:00 时间未校正", text)
    text = text_of(viewer.get("/staff/cadres/C001"))
    assert re.search(r"2026-11-29 S01 06:00 S01-1 11:30 S01-1 5 小时 30 分 完整", text)
    assert re.search(r"2026-11-29 11:30:00 2026-11-29 11:30:00 时钟可信 离开", text)
    assert text.count("UTC+08:00") == 1, "the page's one time zone, said once"


def test_cadre_search_by_name_and_id(seeded, viewer):
    assert "C002" in text_of(viewer.get("/staff/cadres?q=李"))
    text = text_of(viewer.get("/staff/cadres?q=C00"))
    assert all(cadre in text for cadre in ("C001", "C002", "C003", "C004", "C005"))
    assert "未找到" in text_of(viewer.get("/staff/cadres?q=%25"))


def test_anomalies_list_departure_without_arrival_and_two_sites(app, seeded, viewer):
    engine = app.extensions["central"].engine
    now = app.extensions["central"].now()
    east, west = seeded.kiosks["S01"], seeded.kiosks["S02"]
    push(engine, west, [west.event("C004", "arrival", local(8, 0))], now, app)
    push(
        engine,
        east,
        [
            east.event(
                "C003",
                "departure",
                local(9, 0),
                source="manual",
                operator="lead",
                reason="forgot",
                flags=["time_entered_by_operator"],  # the lead gave the time, as kiosks mark it
            )
        ],
        now,
        app,
    )
    text = text_of(viewer.get("/staff/anomalies"))
    assert "同一胸卡出现在两个站点" in text and "出现在站点 S01, S02" in text
    assert "有离开无到达" in text and "11-29 09:00 离开，但没有到达记录" in text
    only = text_of(viewer.get("/staff/anomalies?kind=two_sites"))
    assert "出现在站点 S01, S02" in only and "离开，但没有到达记录" not in only


def test_english_by_browser_and_by_choice(seeded, app):
    from tests.central_web.helpers import log_in

    client = app.test_client()
    log_in(client, "viewer")
    english = text_of(client.get("/staff/", headers={"Accept-Language": "en-US,en;q=0.9"}))
    assert "All sites" in english and "expected" in english and "全部站点" not in english
    chosen = text_of(
        client.get("/staff/?lang=zh_CN", headers={"Accept-Language": "en-US,en;q=0.9"})
    )
    assert "全部站点" in chosen
    html = client.get("/staff/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="zh-CN">' in html, "the choice is kept in the session"


def test_default_language_follows_the_setting(make_app):
    from tests.central_web.helpers import log_in

    app = make_app(language="en")
    client = app.test_client()
    log_in(client, "viewer")
    assert "All sites" in text_of(client.get("/staff/"))


def test_pages_send_no_store_and_a_strict_content_security_policy(seeded, viewer):
    response = viewer.get("/staff/")
    assert response.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_records_not_yet_paired_are_announced_not_hidden(app, seeded, viewer):
    from central.ingest.push import ingest_events

    central = app.extensions["central"]
    east = seeded.kiosks["S01"]
    late = east.event("C003", "arrival", local(11, 45))  # after the kiosk's last record
    # As the kiosk API stores a push: pairing is left to the refresher.
    ingest_events(
        central.engine,
        east.identity,
        [late.wire()],
        central.now(),
        central.rules,
        defer_stays=True,
        checks=CHECKS,
    )
    assert "刚收到 1 人的签到记录，正在配对" in text_of(viewer.get("/staff/"))
    central.stays.drain()
    text = text_of(viewer.get("/staff/"))
    assert "正在配对" not in text
    assert re.search(r"东湖站 S01 · 1 人不在本站名单 3 4 3 1 0 ", site_row(text, "东湖站"))
