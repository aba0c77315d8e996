"""Search, filters and sorting on the staff pages' lists; names in pinyin order; a site picker
that scales to hundreds of sites (issue 14, item 13 and what users expect)."""

from __future__ import annotations

import re

import pytest

from central import roster
from central.roster_file import RosterRow
from central.web.lists import district_of
from tests.central_web.seed import seed
from tests.central_web.test_pages import text_of

MORE = [
    RosterRow(6, "D001", "何静", "东城", "BJ-DC-01", "东城一站"),
    RosterRow(7, "D002", "冯涛", "东城", "BJ-DC-02", "东城二站"),
    RosterRow(8, "D003", "刘洋", "西城", "BJ-XC-01", "西城一站"),
    RosterRow(9, "D004", "吴敏", "西城", "BJ-XC-01", "西城一站"),
    RosterRow(10, "D005", "孙丽", "西城", "BJ-XC-02", "西城二站"),
]


@pytest.fixture
def centre(app):
    seed(app)
    roster.import_roster(app.extensions["central"].engine, MORE)
    return app


def names_in(text: str, candidates: list[str]) -> list[str]:
    return sorted((n for n in candidates if n in text), key=text.index)


def test_district_is_the_site_id_without_its_last_part():
    assert district_of("BJ-DC-01") == "BJ-DC"
    assert district_of("BJ_DC.7") == "BJ_DC"
    assert district_of("S01") == "S01"


def test_a_sites_cadres_sort_by_pinyin_not_code_point(centre, viewer):
    # Code point order would be 宋 李 王 赵; pinyin: li, song, wang, zhao.
    text = text_of(viewer.get("/staff/sites/S01?sort=name"))
    assert names_in(text, ["宋昕", "李娜", "王强", "赵敏"]) == ["李娜", "宋昕", "王强", "赵敏"]
    text = text_of(viewer.get("/staff/sites/BJ-XC-01?sort=name"))
    assert names_in(text, ["刘洋", "吴敏"]) == ["刘洋", "吴敏"]


def test_a_sites_cadres_filter_by_status_and_find_by_pinyin_or_initials(centre, viewer):
    absent = text_of(viewer.get("/staff/sites/S01?status=absent"))
    assert names_in(absent, ["宋昕", "李娜", "王强"]) == ["王强"]
    present = text_of(viewer.get("/staff/sites/S01?status=present"))
    assert names_in(present, ["宋昕", "李娜", "王强"]) == ["李娜"]
    for query in ("sx", "songxin", "xin", "宋", "c001"):
        found = text_of(viewer.get(f"/staff/sites/S01?q={query}"))
        assert names_in(found, ["宋昕", "李娜", "王强"]) == ["宋昕"], query


def test_cadres_are_found_by_pinyin_in_a_site_or_district_and_sorted(centre, viewer):
    assert names_in(text_of(viewer.get("/staff/cadres?q=lw")), ["李娜", "刘洋"]) == []
    assert names_in(text_of(viewer.get("/staff/cadres?q=ly")), ["李娜", "刘洋"]) == ["刘洋"]
    district = text_of(viewer.get("/staff/cadres?district=BJ-DC"))
    assert names_in(district, ["何静", "冯涛", "刘洋"]) == ["冯涛", "何静"], "pinyin: feng, he"
    by_id = text_of(viewer.get("/staff/cadres?district=BJ-DC&sort=id"))
    assert names_in(by_id, ["何静", "冯涛"]) == ["何静", "冯涛"]
    site = text_of(viewer.get("/staff/cadres?site=BJ-XC-01&q=w"))
    assert names_in(site, ["刘洋", "吴敏", "王强"]) == ["吴敏"]
    assert "未找到" in text_of(viewer.get("/staff/cadres?q=%25"))


def test_all_sites_by_district_name_and_status(centre, viewer):
    text = text_of(viewer.get("/staff/?district=BJ-DC"))
    assert names_in(text, ["东城一站", "东城二站", "西城一站", "东湖站"]) == [
        "东城一站",
        "东城二站",
    ]
    assert "4 个站点中的" not in text and re.search(r"\d+ 个站点中的 2 个", text)
    # The totals are of the sites shown: two cadres expected, both absent.
    assert re.search(r"2 应到 0 已到 0 在岗", text)
    found = text_of(viewer.get("/staff/?q=xc"))
    assert names_in(found, ["东城一站", "西城一站"]) == ["西城一站"]
    absent = text_of(viewer.get("/staff/?show=silent"))
    assert names_in(absent, ["东湖站", "西山站"]) == ["西山站"]
    by_name = text_of(viewer.get("/staff/?sort=name"))
    # dongcheng er, dongcheng yi, donghu, xicheng, xishan
    assert names_in(by_name, ["东城一站", "东城二站", "东湖站", "西城一站", "西山站"]) == [
        "东城二站",
        "东城一站",
        "东湖站",
        "西城一站",
        "西山站",
    ]


def test_the_export_site_picker_ticks_a_district(centre, viewer):
    html = viewer.get("/staff/exports").get_data(as_text=True)
    assert 'name="district" value="BJ-DC"' in html
    # S01 and S02 are districts of one site each: no district of their own, listed apart.
    assert 'name="district" value="S01"' not in html and 'value="S01"' in html
    assert "不属于任何区域的站点（2 个）" in text_of(viewer.get("/staff/exports"))
    assert 'data-search="BJ-XC-01 西城一站 xichengyizhan xcyz"' in html
    answer = viewer.get("/staff/exports/download?district=BJ-DC&format=csv&what=stays")
    assert answer.status_code == 200
    assert viewer.get("/staff/exports/download?district=NOPE&format=csv").status_code == 400


def test_kiosks_filter_by_state_district_and_search(centre, admin):
    silent = text_of(admin.get("/staff/kiosks?state=silent"))
    assert "S02-1" in silent and "S01-1" not in silent
    assert "S01-1" in text_of(admin.get("/staff/kiosks?q=s01"))
    assert "S02-1" not in text_of(admin.get("/staff/kiosks?q=s01"))
    assert "2 台签到机中的 0 台" in text_of(admin.get("/staff/kiosks?district=BJ-DC"))


def test_corrections_are_found_by_cadre_pinyin_or_staff(centre, admin):
    from tests.central_web.helpers import csrf_of

    seeded = centre.extensions["seeded"]
    admin.post(
        "/staff/corrections",
        data={
            "csrf_token": csrf_of(admin),
            "cadre_id": "C001",
            "action": "void",
            "event_id": str(seeded.events["c1_departure"].event_id),
            "reason": "扫错了",
        },
    )
    assert "宋昕" in text_of(admin.get("/staff/corrections?q=songxin"))
    assert "宋昕" in text_of(admin.get("/staff/corrections?q=admin"))
    assert "宋昕" not in text_of(admin.get("/staff/corrections?q=lina"))
