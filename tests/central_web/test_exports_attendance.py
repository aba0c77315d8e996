"""The attendance export (who came, who is absent, counts per site, unit and district, the
arrival curve), exports in the page's language with times on one clock, and big exports as
background jobs."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from central import exports
from central.words import Words
from tests.central_web.helpers import csrf_of, run_jobs
from tests.central_web.seed import local, push, seed
from tests.central_web.test_pages import text_of

DAY = "2026-11-29"


@pytest.fixture
def seeded(app):
    return seed(app)


def _csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))


def _book(data: bytes) -> dict[str, list[tuple]]:
    workbook = load_workbook(io.BytesIO(data))
    return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in workbook}


def test_attendance_lists_the_absent_and_counts_sites_units_districts(seeded, viewer):
    response = viewer.get(f"/staff/exports/download?from={DAY}&to={DAY}&what=attendance")
    assert response.status_code == 200
    assert (
        "attendance-2026-11-29-2026-11-29-all-sites.xlsx" in response.headers["Content-Disposition"]
    )
    book = _book(response.data)
    assert list(book) == ["出勤名单", "按站点", "按单位", "按区", "到达曲线"]
    people = book["出勤名单"]
    assert people[0] == (
        "日期",
        "区",
        "站点",
        "站点名称",
        "编号",
        "姓名",
        "单位",
        "出勤",
        "首次到达 (UTC+08:00)",
        "最后离开 (UTC+08:00)",
        "时长(小时)",
        "到达记录方式",
    )
    by_key = {(row[2], row[4]): row for row in people[1:]}
    # Per site: the absent first, then the rest; a visitor from another site last.
    assert [row[4] for row in people[1:] if row[2] == "S01"] == ["C003", "C002", "C001", "C004"]
    assert by_key[("S01", "C003")][7:] == ("缺勤", None, None, None, None)
    assert by_key[("S01", "C001")][7:] == (
        "已离开",
        datetime(2026, 11, 29, 6, 0),
        datetime(2026, 11, 29, 11, 30),
        5.5,
        "胸卡",  # on a badge, not a person's word
    )
    assert by_key[("S01", "C002")][7:9] == ("在岗", datetime(2026, 11, 29, 6, 10))
    assert by_key[("S01", "C004")][5:8] == ("赵敏", "街道办", "不在本站名单")
    assert by_key[("S02", "C004")][7] == "缺勤"  # at another site: absent from their own
    assert by_key[("S02", "C005")][5] == '\'=HYPERLINK("x")'  # defused, as everywhere

    sites = {row[2]: row[4:] for row in book["按站点"][1:]}
    assert sites == {"S01": (3, 2, 1, 66.7, 1, 0), "S02": (2, 0, 2, 0.0, 0, 0)}
    units = {row[1]: row[2:] for row in book["按单位"][1:]}
    assert units == {
        "城管一队": (2, 2, 0, 100.0),
        "街道办": (2, 0, 2, 0.0),
        "'+unit": (1, 0, 1, 0.0),
    }
    assert [row[1:] for row in book["按区"][1:]] == [
        ("S01", 1, 3, 2, 1, 66.7),
        ("S02", 1, 2, 0, 2, 0.0),
    ]

    curve = book["到达曲线"]
    assert curve[0] == ("日期", "时段起 (UTC+08:00)", "到达人数", "累计到达", "累计到岗率(%)")
    assert len(curve) == 1 + 96  # every quarter of an hour of the service day (03:00 to 03:00)
    slots = {row[1]: row[2:] for row in curve[1:]}
    assert curve[1][1] == "03:00" and slots["05:45"] == (0, 0, 0.0)
    assert slots["06:00"] == (2, 2, 40.0)  # C001 06:00 and C002 06:10
    assert slots["07:00"] == (1, 3, 60.0)  # C004, at S01
    assert curve[-1][3:] == (3, 60.0)


def test_attendance_csv_holds_the_list_in_english(seeded, viewer):
    response = viewer.get(
        f"/staff/exports/download?from={DAY}&to={DAY}&what=attendance&format=csv&site=S01",
        headers={"Accept-Language": "en"},
    )
    rows = _csv(response.data)
    assert rows[0][7:9] == ["attendance", "first arrival (UTC+08:00)"]
    assert [(row[4], row[7]) for row in rows[1:]] == [
        ("C003", "absent"),
        ("C002", "present"),
        ("C001", "departed"),
        ("C004", "not on this site's roster"),
    ]
    assert rows[3][8:10] == ["2026-11-29 06:00:00", "2026-11-29 11:30:00"]


def test_every_cell_of_a_chinese_export_is_chinese(app, seeded, viewer):
    """Defect 5 for exports: kinds, sources, states and time statuses were English codes."""
    stays = _csv(viewer.get(f"/staff/exports/download?from={DAY}&to={DAY}&format=csv").data)
    assert stays[0][6:8] == ["到达 (UTC+08:00)", "离开 (UTC+08:00)"]
    states = {row[3]: row[9] for row in stays[1:]}
    assert states == {"C001": "完整", "C002": "尚未离开", "C004": "尚未离开"}
    assert "closed" not in str(stays) and "open" not in str(stays)

    events = _csv(
        viewer.get(f"/staff/exports/download?from={DAY}&to={DAY}&what=events&format=csv").data
    )
    header = events[0]
    assert header[4:8] == ["类型", "校正时间 (UTC+08:00)", "签到机时钟 (UTC+08:00)", "时间状态"]
    cells = {value for row in events[1:] for value in (row[4], row[7], row[10])}
    assert cells <= {
        "到达",
        "离开",
        "时钟可信",
        "已校正",
        "时钟未校正",
        "摄像头",
        "扫码枪",
        "手工录入",
    }
    for code in ("arrival", "departure", "trusted", "camera"):
        assert code not in cells


def test_kiosk_clock_times_are_on_the_sites_clock_face(app, seeded, viewer):
    """Defect 12 for exports: a kiosk writing its clock in UTC showed "07:54:35+00:00" beside
    15:54 local; both are now wall times of the site's zone under one offset."""
    east = seeded.kiosks["S01"]
    central = app.extensions["central"]
    utc_clock = local(15, 54).astimezone(ZoneInfo("UTC"))
    push(central.engine, east, [east.event("C003", "arrival", utc_clock)], central.now(), app)
    events = _csv(
        viewer.get(f"/staff/exports/download?from={DAY}&to={DAY}&what=events&format=csv").data
    )
    c3 = next(row for row in events[1:] if row[2] == "C003")
    assert c3[5] == "2026-11-29 15:54:00" and c3[6] == "2026-11-29 15:54:00"
    assert "+00:00" not in "".join(c3) and "UTC" not in "".join(c3)


def test_an_offset_that_changes_inside_the_range_is_written_with_each_time():
    berlin = ZoneInfo("Europe/Berlin")
    request = exports.ExportRequest(date(2026, 10, 24), date(2026, 10, 26))  # summer time ends
    shape = exports.TimeShape.of(berlin, request)
    assert shape.label is None and shape.header == "Europe/Berlin"
    cell = shape.cell(datetime(2026, 10, 24, 10, 0))
    assert cell is not None and cell.utcoffset() == timedelta(hours=2)
    still = exports.TimeShape.of(
        berlin, exports.ExportRequest(date(2026, 11, 2), date(2026, 11, 3))
    )
    assert still.label == "UTC+01:00"


def test_every_export_word_has_a_chinese_translation():
    from central import words as export_words

    words = Words("zh-CN")
    tables = (
        export_words.KINDS,
        export_words.SOURCES,
        export_words.TIME_STATUSES,
        export_words.STAY_STATES,
        export_words.ATTENDANCE,
        export_words.FLAGS,
    )
    untranslated = [
        message for table in tables for message in table.values() if words(message) == message
    ]
    assert not untranslated
    assert words.flags(["departure_without_arrival", "a_flag_added_later"]) == (
        "有离开无到达、其他（a_flag_added_later）"
    )


def test_a_big_export_becomes_a_background_job(make_app, viewer):
    big = make_app(export_inline_max_rows=3)
    seed(big)
    from tests.central_web.helpers import log_in

    client = big.test_client()
    log_in(client, "viewer")
    refused = client.get(f"/staff/exports/download?from={DAY}&to={DAY}&what=attendance")
    assert refused.status_code == 200 and refused.mimetype == "text/html"
    assert "约 5 行" in text_of(refused)

    form = {
        "from": DAY,
        "to": DAY,
        "what": "attendance",
        "format": "xlsx",
        "form_token": "k1",
        "csrf_token": csrf_of(client),
    }
    started = client.post("/staff/exports", data=form)
    assert started.status_code == 303
    job_url = started.headers["Location"]
    assert client.post("/staff/exports", data=form).headers["Location"] == job_url
    assert run_jobs(client) == 1
    info = client.get(job_url + ".json").get_json()
    assert (info["state"], info["done"], info["total"]) == ("done", 6, 6)
    book = _book(client.get(info["download_url"]).data)
    assert len(book["出勤名单"]) == 1 + 6

    small = client.post("/staff/exports", data={**form, "what": "stays", "form_token": "k2"})
    assert small.status_code == 200 and small.data.startswith(b"PK")  # the file at once


def test_the_command_line_export_shows_progress_and_writes_attendance(app, seeded, tmp_path):
    from click.testing import CliRunner

    from central.cli import main as central_cli

    out = tmp_path / "absent.xlsx"
    result = CliRunner().invoke(
        central_cli,
        [
            "--instance",
            str(app.extensions["central"].instance),
            "export",
            "--from",
            DAY,
            "--to",
            DAY,
            "--what",
            "attendance",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"wrote 6 rows to .*absent\.xlsx", result.output)
    assert list(_book(out.read_bytes())) == ["出勤名单", "按站点", "按单位", "按区", "到达曲线"]


def test_attendance_says_who_came_on_a_persons_word(app, seeded, viewer):
    """An arrival the lead entered by hand counts as arrived, said apart (issue 11)."""
    east = seeded.kiosks["S01"]
    central = app.extensions["central"]
    by_hand = {"source": "manual", "operator": "组长王", "reason": "忘带胸卡", "badge_serial": None}
    push(
        central.engine,
        east,
        [east.event("C003", "arrival", local(8, 20), **by_hand)],
        central.now(),
        app,
    )
    book = _book(viewer.get(f"/staff/exports/download?from={DAY}&to={DAY}&what=attendance").data)
    c3 = next(row for row in book["出勤名单"][1:] if row[4] == "C003")
    assert (c3[7], c3[8], c3[11]) == ("在岗", datetime(2026, 11, 29, 8, 20), "手工录入")
    sites = {row[2]: row[4:] for row in book["按站点"][1:]}
    assert sites["S01"] == (3, 3, 0, 100.0, 1, 1)
