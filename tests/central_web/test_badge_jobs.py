"""Badge printing in the browser: an explicit choice of whom, a background job with progress,
a result to download; and the job's page, JSON and access rules."""

from __future__ import annotations

import io
import re

import pypdfium2 as pdfium
import pytest
from sqlalchemy import func, select

from central import keys, roster
from central.db import schema
from central.jobs import store as job_store
from central.roster_file import RosterRow
from tests.central_web.helpers import csrf_of, log_in, print_badges, run_jobs
from tests.central_web.test_pages import text_of

ROSTER = [
    RosterRow(1, "C001", "宋昕", "城管一队", "S01", "东湖站"),
    RosterRow(2, "C002", "李娜", "城管一队", "S01", "东湖站"),
    RosterRow(3, "C003", "𠮷祥", "街道办", "S02", "西山站"),
    RosterRow(4, "C004", "Maximilian Alexander Schwarzenegger-Whitfield", "Unit", "S02", "西山站"),
]


@pytest.fixture
def centre(app, engine):
    keys.create_issuing_key(
        app.extensions["central"].settings.issuing_key_path(app.extensions["central"].instance)
    )
    roster.import_roster(engine, ROSTER)
    return app


def _jobs(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(schema.jobs)).scalar_one()


def _pdf_text(data: bytes) -> str:
    document = pdfium.PdfDocument(data)
    try:
        return "".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


def test_an_empty_post_prints_nothing(centre, admin, engine):
    """Defect 16: the form without a choice used to print every badge in the request."""
    response = admin.post("/staff/badges/print", data={"csrf_token": csrf_of(admin)})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "请选择为谁打印胸卡" in text_of(response)
    assert _jobs(engine) == 0
    with engine.connect() as conn:
        issued = conn.execute(
            select(func.count()).where(schema.cadres.c.badge_serial.is_not(None))
        ).scalar_one()
    assert issued == 0, "nothing was issued either"


def test_printing_everyone_needs_the_number_of_cadres_confirmed(centre, admin, engine):
    refused = admin.post("/staff/badges/print", data={"scope": "all", "csrf_token": csrf_of(admin)})
    assert refused.status_code == 400 and "打印全部 4 名干部" in text_of(refused)
    stale = admin.post(
        "/staff/badges/print",
        data={"scope": "all", "confirm_all": "3", "csrf_token": csrf_of(admin)},
    )
    assert stale.status_code == 400, "a count confirmed before the roster grew is not enough"
    assert _jobs(engine) == 0

    pdf = print_badges(admin, scope="all", confirm_all="4", layout="54x90-2x5")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = re.sub(r"\s+", "", _pdf_text(pdf.data))
    for row in ROSTER:
        assert row.cadre_id in text and re.sub(r"\s+", "", row.name) in text


def test_printing_is_a_background_job_the_page_follows(centre, admin, engine):
    """Defect 9: the request that starts a print answers at once with the job's page."""
    started = admin.post(
        "/staff/badges/print",
        data={"scope": "site", "site_id": "S01", "csrf_token": csrf_of(admin)},
    )
    assert started.status_code == 303
    job_url = started.headers["Location"]
    assert re.fullmatch(r"/staff/jobs/[0-9a-f]{32}", job_url)
    page = admin.get(job_url)
    assert page.status_code == 200
    assert "等待开始" in text_of(page) and "jobs.js" in page.get_data(as_text=True)
    queued = admin.get(job_url + ".json").get_json()
    assert (queued["state"], queued["download_url"], queued["finished"]) == (
        "queued",
        None,
        False,
    )

    assert run_jobs(admin) == 1
    done = admin.get(job_url + ".json").get_json()
    assert done["state"] == "done" and done["stage_label"] == "完成"
    assert (done["done"], done["total"], done["percent"]) == (2, 2, 100)
    assert done["result_name"].startswith("badges-S01-") and done["result_name"].endswith(".pdf")
    download = admin.get(done["download_url"])
    assert download.status_code == 200 and download.data.startswith(b"%PDF")
    assert "attachment" in download.headers["Content-Disposition"]
    assert "宋昕" in _pdf_text(download.data) and "𠮷祥" not in _pdf_text(download.data)
    finished_page = text_of(admin.get(job_url))
    assert "共 2 张胸卡，1 页" in finished_page
    # The roster page lists the print with its download.
    assert done["result_name"] in text_of(admin.get("/staff/roster"))


def test_the_same_form_sent_twice_starts_one_job(centre, admin, engine):
    form = {
        "scope": "ids",
        "cadre_ids": "C001, C002",
        "form_token": "form-1",
        "csrf_token": csrf_of(admin),
    }
    first = admin.post("/staff/badges/print", data=form)
    second = admin.post("/staff/badges/print", data=form)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert _jobs(engine) == 1


def test_unknown_ids_and_sites_are_named_before_anything_starts(centre, admin, engine):
    response = admin.post(
        "/staff/badges/print",
        data={"scope": "ids", "cadre_ids": "C001 NOBODY", "csrf_token": csrf_of(admin)},
    )
    assert response.status_code == 400 and "名单中没有干部 NOBODY" in text_of(response)
    # What was typed is still in the form.
    assert "C001 NOBODY" in response.get_data(as_text=True)
    response = admin.post(
        "/staff/badges/print",
        data={"scope": "site", "site_id": "S99", "csrf_token": csrf_of(admin)},
    )
    assert response.status_code == 400
    assert _jobs(engine) == 0


def test_a_viewer_cannot_see_or_download_badge_sheets(centre, admin, app, engine):
    started = admin.post(
        "/staff/badges/print",
        data={"scope": "site", "site_id": "S01", "csrf_token": csrf_of(admin)},
    )
    run_jobs(admin)
    job_url = started.headers["Location"]
    download_url = admin.get(job_url + ".json").get_json()["download_url"]
    viewer = app.test_client()
    log_in(viewer, "viewer")
    for url in (job_url, job_url + ".json", download_url):
        assert viewer.get(url).status_code == 404, url
    assert job_url not in viewer.get("/staff/jobs").get_data(as_text=True)
    cancel = viewer.post(job_url + "/cancel", data={"csrf_token": csrf_of(viewer)})
    assert cancel.status_code == 404


def test_a_cancelled_print_leaves_no_file(centre, admin, engine):
    started = admin.post(
        "/staff/badges/print",
        data={"scope": "site", "site_id": "S02", "csrf_token": csrf_of(admin)},
    )
    job_url = started.headers["Location"]
    cancelled = admin.post(job_url + "/cancel", data={"csrf_token": csrf_of(admin)})
    assert cancelled.status_code == 303
    assert run_jobs(admin) == 0  # nothing left to run
    info = admin.get(job_url + ".json").get_json()
    assert (info["state"], info["download_url"]) == ("cancelled", None)
    assert "已取消" in text_of(admin.get(job_url))


def test_names_no_font_can_draw_are_listed_on_the_print_and_at_import(centre, admin, engine):
    """Defect 3: a character no badge font has is named with its cadre, not dropped silently."""
    ext_g = "\U0003134a"  # CJK Extension G: neither Zen Hei nor HanaMin has it
    upload = f"编号,姓名,单位,站点\nC009,王{ext_g}明,街道办,S02\nC010,赵敏,街道办,S02\n".encode()
    imported = admin.post(
        "/staff/roster/import",
        data={"file": (io.BytesIO(upload), "r.csv"), "csrf_token": csrf_of(admin)},
        follow_redirects=True,
    )
    text = text_of(imported)
    assert "1 个姓名无法完整印在胸卡上" in text and "C009: U+3134A" in text
    assert "赵敏 (C010" not in text

    pdf = print_badges(admin, scope="ids", cadre_ids="C009 C003")
    printed = re.sub(r"\s+", "", _pdf_text(pdf.data))
    assert "王〓明" in printed, "marked where the character is missing"
    assert "𠮷祥" in printed, "Extension B comes from the fallback font"
    [job] = job_store.recent(engine, kinds=["badges"])
    assert job.summary["unprintable_count"] == 1
    assert job.summary["unprintable"][0]["cadre_id"] == "C009"
    page = text_of(admin.get(f"/staff/jobs/{job.job_id}"))
    assert "1 个姓名中有胸卡字体都没有的字" in page and "C009" in page and "U+3134A" in page


def test_a_roster_with_a_title_row_is_imported_and_says_where_its_header_was(admin, engine):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["2026年冬季值守干部名单"])
    workbook.active.append(["编号", "姓名", "单位", "站点"])
    workbook.active.append(["T1", "宋昕", "东城区", "S1"])
    upload = io.BytesIO()
    workbook.save(upload)
    response = admin.post(
        "/staff/roster/import",
        data={"file": (io.BytesIO(upload.getvalue()), "名单.xlsx"), "csrf_token": csrf_of(admin)},
        follow_redirects=True,
    )
    text = text_of(response)
    assert "已导入 名单.xlsx：新增 1 人" in text, text[:400]
    assert "表头在第 2 行；其上方的 1 行（标题）未读取。" in text
    with engine.connect() as conn:
        assert roster.get_cadre(conn, "T1")["name"] == "宋昕"
