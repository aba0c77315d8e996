"""The staff pages in Debian's chromium: log in, look at all sites and a site, on a laptop and a
phone. Screenshots go to tests/artifacts/ for a person to look at."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from tests.browser import ARTIFACTS, chromium
from tests.central_web.helpers import PASSWORDS
from tests.central_web.seed import seed

pytestmark = pytest.mark.browser


@pytest.fixture
def live_url(app) -> Iterator[str]:
    seed(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def browser():
    yield from chromium()


@pytest.mark.parametrize(
    "device, viewport",
    [("laptop", {"width": 1280, "height": 800}), ("phone", {"width": 390, "height": 844})],
)
def test_login_then_all_sites_and_a_site(browser, live_url, device, viewport):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport=viewport, locale="zh-CN")
    page = context.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("pageerror", lambda error: failed.append(str(error)))

    page.goto(f"{live_url}/staff/")
    assert "/staff/login" in page.url
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", PASSWORDS["viewer"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/staff/")
    assert page.locator("h1").first.inner_text().startswith("全部站点")
    assert page.locator("tr.dead").count() == 1, "the site with a silent kiosk stands out"
    page.screenshot(path=str(ARTIFACTS / f"central-all-sites-{device}.png"), full_page=True)

    page.click("text=东湖站")
    page.wait_for_selector("#arrivals-chart svg rect.bar")
    assert page.locator("#arrivals-chart svg rect.bar").count() >= 2
    assert "06:00" in page.locator("#arrivals-chart svg").inner_html()
    page.screenshot(path=str(ARTIFACTS / f"central-site-{device}.png"), full_page=True)

    widest = page.evaluate("document.documentElement.scrollWidth")
    assert widest <= viewport["width"] + 1, "the page itself never scrolls sideways"
    assert not failed, failed
    context.close()
