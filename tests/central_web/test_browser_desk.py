"""The desk at 1280x800 in Debian's chromium: an anomaly fixed from its own page with no new
anomaly. Screenshots go to tests/artifacts/ for a person to look at."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from tests.browser import chromium, shot
from tests.central_web.helpers import PASSWORDS
from tests.central_web.seed import seed
from tests.central_web.test_fixes import anomalies_of, double_tapped_departure

pytestmark = pytest.mark.browser
DESK = {"width": 1280, "height": 800}


@pytest.fixture
def live(app) -> Iterator[tuple[str, object]]:
    seeded = seed(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seeded
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def browser():
    yield from chromium()


def log_in(page, url: str, role: str = "admin") -> None:
    page.goto(f"{url}/staff/login")
    page.fill("input[name=username]", role)
    page.fill("input[name=password]", PASSWORDS[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/staff/")


def test_an_anomaly_fixed_from_its_own_page_leaves_no_new_anomaly(app, engine, browser, live):
    url, seeded = live
    double_tapped_departure(app, seeded)
    before = anomalies_of(engine, "C003")
    context = browser.new_context(viewport=DESK, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, url)
    page.goto(f"{url}/staff/anomalies?kind=no_arrival")
    page.click("text=修正…")
    page.wait_for_selector("form.fix")
    assert "作废记录" in page.locator("form.fix").first.inner_text()
    shot(page, "desk-anomaly-page-1280x800", full_page=True)
    page.locator("form.fix button[type=submit]").first.click()
    page.wait_for_selector("text=已修正")
    shot(page, "desk-anomaly-fixed-1280x800", full_page=True)
    after = anomalies_of(engine, "C003")
    assert "no_arrival" not in {kind for kind, _, _ in after}
    assert set(after) <= set(before)
    page.goto(f"{url}/staff/anomalies?kind=no_arrival&kind=kiosk_disagrees&kind=no_departure")
    assert "王强" not in page.locator("table").inner_text()
    assert not errors, errors
    context.close()


def test_staff_accounts_page(browser, live, engine):
    url, _ = live
    context = browser.new_context(viewport=DESK, locale="zh-CN")
    page = context.new_page()
    log_in(page, url)
    page.click("nav >> text=账号")
    page.fill("#add input[name=username]", "wang")
    page.fill("#add input[name=password]", "wang password 1")
    page.fill("#add input[name=password_again]", "wang password 1")
    page.click("#add button[type=submit]")
    page.wait_for_selector("text=已添加账号 wang")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#account-viewer button.danger").click()
    page.wait_for_selector("text=账号 viewer 已停用")
    shot(page, "desk-accounts-1280x800", full_page=True)
    from central import users

    assert {u.username: u.active for u in users.list_users(engine)} == {
        "admin": True,
        "viewer": False,
        "wang": True,
    }
    context.close()


def test_search_by_initials_and_the_site_picker(app, browser, live):
    from central import roster
    from tests.central_web.test_lists import MORE

    url, _ = live
    roster.import_roster(app.extensions["central"].engine, MORE)
    context = browser.new_context(viewport=DESK, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, url, "viewer")
    page.click("nav >> text=干部")
    page.fill("input[name=q]", "sx")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_selector("table.found")
    assert "宋昕" in page.locator("table.found").inner_text()
    assert page.locator("table.found tbody tr").count() == 1
    shot(page, "desk-cadre-search-sx-1280x800", full_page=True)

    page.goto(f"{url}/staff/?district=BJ-DC")
    assert page.locator("table.sites tbody tr").count() == 2
    page.goto(f"{url}/staff/exports")
    page.fill("[data-picker-filter]", "xc")
    visible = page.locator("details.district:visible")
    assert visible.count() == 1 and visible.get_attribute("data-district") == "BJ-XC"
    assert page.locator("details.district[data-district=BJ-XC]").get_attribute("open") is not None
    shot(page, "desk-site-picker-1280x800", full_page=True)
    page.fill("[data-picker-filter]", "")
    page.locator("details.district[data-district=BJ-DC] summary input").check()
    with page.expect_download() as download:
        page.click("form.card button[type=submit]")
    assert download.value.suggested_filename.endswith(".xlsx")
    assert not errors, errors
    context.close()


def test_the_all_sites_page_updates_itself(app, browser, live):
    from tests.central_web.seed import local, push

    url, seeded = live
    context = browser.new_context(viewport=DESK, locale="zh-CN")
    page = context.new_page()
    log_in(page, url, "viewer")
    page.fill("form[role=search] input[name=q]", "东湖")
    page.click("form[role=search] button[type=submit]")
    cell = page.locator('tr[data-site="S01"] td:nth-child(3)')  # the Arrived column
    assert cell.inner_text() == "3"
    east = seeded.kiosks["S01"]
    central = app.extensions["central"]
    push(central.engine, east, [east.event("C003", "arrival", local(11, 50))], central.now(), app)
    from playwright.sync_api import expect

    expect(cell).to_have_text("4", timeout=40_000)
    # The page shows one site: its totals are that site's, before and after the update.
    assert page.locator('[data-total="arrived"]').inner_text() == "4"
    assert page.locator('[data-total="expected"]').inner_text() == "3"
    assert page.locator("input[name=q]").input_value() == "东湖", "the search stays as it was"
    assert page.locator("#live-note").is_visible()
    shot(page, "desk-all-sites-live-1280x800", full_page=True)
    context.close()


def test_a_site_page_updates_a_cadres_status_by_itself(app, browser, live):
    from playwright.sync_api import expect

    from tests.central_web.seed import local, push

    url, seeded = live
    context = browser.new_context(viewport=DESK, locale="zh-CN")
    page = context.new_page()
    log_in(page, url, "viewer")
    page.goto(f"{url}/staff/sites/S01")
    row = page.locator('tr[data-cadre="C003"]')
    assert "缺勤" in row.inner_text()
    east = seeded.kiosks["S01"]
    central = app.extensions["central"]
    push(central.engine, east, [east.event("C003", "arrival", local(11, 50))], central.now(), app)
    expect(row.locator(".pill")).to_have_text("在岗", timeout=40_000)
    expect(row.locator("td:nth-child(4)")).to_have_text("11:50")
    expect(page.locator('[data-total="present"]')).to_have_text("3")
    shot(page, "desk-site-live-1280x800", full_page=True)
    context.close()
