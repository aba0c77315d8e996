"""Background jobs in Debian's chromium at 1280 x 800, as an administrator uses them: badge
sheets for 2,000 cadres with the progress on their page, and the attendance export that lists
the absent. Screenshots go to tests/artifacts/ for a person to look at."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from openpyxl import load_workbook
from werkzeug.serving import make_server

from central import keys, roster
from central.jobs.worker import JobWorker
from central.roster_file import RosterRow
from central.services import central_of
from tests.browser import ARTIFACTS, chromium
from tests.central_web.helpers import PASSWORDS
from tests.central_web.seed import seed

pytestmark = pytest.mark.browser
DESK = {"width": 1280, "height": 800}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞"


@pytest.fixture
def live(app) -> Iterator[tuple[str, object]]:
    """The seeded centre served on a free port, with a job worker running jobs in child
    processes as `central serve` does."""
    seed(app)
    central = central_of(app)
    worker = JobWorker(
        central.engine, central.settings, central.instance, now=central.now, isolation="process"
    )
    worker.start()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        thread.join(timeout=5)
        worker.stop(timeout=60)


@pytest.fixture
def browser():
    yield from chromium()


def _log_in(page, url: str, role: str) -> None:
    page.goto(f"{url}/staff/login")
    page.fill("input[name=username]", role)
    page.fill("input[name=password]", PASSWORDS[role])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/$"))


def test_badge_sheets_for_2000_cadres_show_their_progress_and_download(browser, live, tmp_path):
    url, app = live
    central = central_of(app)
    keys.create_issuing_key(central.settings.issuing_key_path(central.instance))
    rows = [
        RosterRow(
            n,
            f"B{n:05d}",
            SURNAMES[n % 20] + GIVEN[n % 21] + GIVEN[n // 21 % 21],
            "东城区",
            "S01",
            None,
        )
        for n in range(1, 2000 - 4)  # with the seed's five cadres: 2,000
    ]
    roster.import_roster(central.engine, rows)

    context = browser.new_context(viewport=DESK, locale="zh-CN", accept_downloads=True)
    page = context.new_page()
    failed: list[str] = []
    page.on("pageerror", lambda error: failed.append(str(error)))
    _log_in(page, url, "admin")
    page.goto(f"{url}/staff/roster")
    page.check("input[name=scope][value=all]")
    page.check("input[name=confirm_all]")
    assert page.locator("input[name=confirm_all]").get_attribute("value") == "2000"
    page.select_option("select[name=layout]", "54x90-2x5")
    page.click("form.badge-print button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/jobs/[0-9a-f]{32}$"))
    job_url = page.url

    # The page follows the job: wait until it is part-way through drawing.
    page.wait_for_function(
        "() => { const p = document.querySelector('progress');"
        " return p && p.value >= 10 && p.value <= 90; }",
        timeout=300_000,
    )
    counts = page.locator('[data-field="counts"]').inner_text()
    assert re.fullmatch(r"\d+ / 2000", counts), counts
    assert page.locator('[data-field="stage_label"]').inner_text() == "正在绘制胸卡"
    page.screenshot(path=str(ARTIFACTS / "central-badge-job-progress.png"))

    # Leaving the page does not stop the job: it is there in the list of jobs.
    page.goto(f"{url}/staff/jobs")
    assert page.locator(f"a[href='{job_url.removeprefix(url)}']").count() == 1
    page.goto(job_url)
    page.wait_for_selector('[data-field="download"]:not([hidden])', timeout=300_000)
    assert page.locator(".pill").first.inner_text() == "完成"
    assert "共 2000 张胸卡，200 页。" in page.locator("main").inner_text()
    page.screenshot(path=str(ARTIFACTS / "central-badge-job-done.png"))

    with page.expect_download() as waiting:
        page.click('[data-field="download_url"]')
    download = waiting.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert re.fullmatch(r"badges-all-\d{4}-\d{2}-\d{2}\.pdf", saved.name)
    document = pdfium.PdfDocument(str(saved))
    try:
        assert len(document) == 200
        last = document[199].get_textpage().get_text_range()
    finally:
        document.close()
    assert "B01995" in last or "C005" in last
    assert not failed, failed
    context.close()


def test_the_attendance_export_lists_the_absent(browser, live, tmp_path):
    url, _app = live
    context = browser.new_context(viewport=DESK, locale="zh-CN", accept_downloads=True)
    page = context.new_page()
    _log_in(page, url, "viewer")
    page.goto(f"{url}/staff/exports")
    page.fill("input[name=from]", "2026-11-29")
    page.fill("input[name=to]", "2026-11-29")
    page.select_option("select[name=what]", "attendance")
    page.check("input[name=background]")
    page.screenshot(path=str(ARTIFACTS / "central-export-attendance-form.png"))
    # The job's page follows it and, once the file is ready, downloads it by itself.
    with page.expect_download(timeout=120_000) as waiting:
        page.click("form.export button[type=submit]")
        page.wait_for_url(re.compile(r".*/staff/jobs/[0-9a-f]{32}$"))
    page.wait_for_selector('[data-field="download"]:not([hidden])')
    assert page.locator(".pill").first.inner_text() == "完成"
    page.screenshot(path=str(ARTIFACTS / "central-export-attendance-done.png"))
    saved = tmp_path / waiting.value.suggested_filename
    waiting.value.save_as(saved)
    assert saved.name == "attendance-2026-11-29-2026-11-29-all-sites.xlsx"
    workbook = load_workbook(io.BytesIO(Path(saved).read_bytes()))
    assert workbook.sheetnames == ["出勤名单", "按站点", "按单位", "按区", "到达曲线"]
    people = list(workbook["出勤名单"].iter_rows(values_only=True))
    assert people[0][:8] == ("日期", "区", "站点", "站点名称", "编号", "姓名", "单位", "出勤")
    assert people[0][8] == "首次到达 (UTC+08:00)"
    absent = {(row[2], row[4]) for row in people[1:] if row[7] == "缺勤"}
    # C003 did not come to S01; C004 came to S01 instead of S02; C005 did not come.
    assert absent == {("S01", "C003"), ("S02", "C004"), ("S02", "C005")}
    curve = list(workbook["到达曲线"].iter_rows())
    _render_sheets(
        page,
        [
            (workbook[name], list(workbook[name].iter_rows()))
            for name in ("出勤名单", "按站点", "按单位", "按区")
        ]
        + [(workbook["到达曲线"], curve[:1] + curve[12:22])],  # 05:45 to 08:00
        ARTIFACTS / "central-export-attendance-sheet.png",
    )
    context.close()


def _render_sheets(page, sheets, path: Path) -> None:
    """The sheets' cells as HTML tables in the browser: what the file holds, for the eye."""
    from html import escape

    def shown(cell) -> str:
        if cell.value is None:
            return ""
        if cell.is_date and "h" not in cell.number_format:
            return cell.value.date().isoformat()  # a day, as Excel shows it
        return str(cell.value)

    parts = []
    for sheet, rows in sheets:
        cells = "".join(
            "<tr>" + "".join(f"<td>{escape(shown(cell))}</td>" for cell in row) + "</tr>"
            for row in rows
        )
        parts.append(f"<h3>{escape(sheet.title)}</h3><table>{cells}</table>")
    page.set_content(
        "<meta charset='utf-8'><style>body{font:13px 'WenQuanYi Zen Hei',sans-serif;margin:8px}"
        "h3{margin:8px 0 2px}td{border:1px solid #ccc;padding:1px 6px;white-space:nowrap}"
        "tr:first-child td{font-weight:bold;background:#eef}</style>" + "".join(parts)
    )
    page.screenshot(path=str(path), full_page=True)
