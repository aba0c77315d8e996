"""Row 10: security headers on every page of both apps (CSP without inline script, no framing,
nosniff, a referrer policy), `Cache-Control: no-store` on the lead's pages and JSON and the
staff pages; the centre's session cookie Secure when its public URL is https."""

from __future__ import annotations

import pytest

from tests.browser import chromium
from tests.central_web.helpers import PASSWORDS, log_in
from tests.kiosk_web.helpers import LOCAL, PIN, login
from tests.robustness.conftest import make_centre, seeded_centre


def assert_guarded(response, what: str) -> None:
    headers = response.headers
    policy = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy, what
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy, what
    assert "default-src 'self'" in policy, what
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("Referrer-Policy") == "same-origin", what


def test_every_kiosk_page_carries_the_headers_and_the_lead_pages_are_not_stored(kit):
    client = kit.app.test_client()
    login(client)
    seen = 0
    for rule in kit.app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or "<" in rule.rule or rule.endpoint == "static":
            continue
        if rule.endpoint == "screen.preview":
            continue  # with no camera it sends nothing at all; its headers are the stream's
        if rule.endpoint == "screen.stream":
            response = client.get(rule.rule, environ_base=LOCAL, buffered=False)
            response.close()
        else:
            response = client.get(rule.rule, environ_base=LOCAL)
        assert_guarded(response, rule.rule)
        assert response.headers.get("Cache-Control") == "no-store", rule.rule
        seen += 1
    assert seen >= 8
    # Errors and the login page too, for anyone.
    for path in ("/lead/nowhere", "/lead/login", "/lead/api/summary"):
        response = kit.app.test_client().get(path, environ_base=LOCAL)
        assert_guarded(response, path)
        assert response.headers["Cache-Control"] == "no-store", path
    # Files served as they are may be cached, but are still not sniffed or framed.
    asset = client.get("/static/lead.js", environ_base=LOCAL)
    assert_guarded(asset, "/static/lead.js")
    assert asset.headers.get("Cache-Control") != "no-store"


def test_every_centre_answer_carries_the_headers(centre):
    paths = ["/", "/api/v1/time", "/api/v1/centre", "/staff/login", "/staff/", "/staff/kiosks"]
    for path in paths:
        response = centre.admin.get(path)
        assert_guarded(response, path)
        assert response.headers.get("Cache-Control") == "no-store", path
    refused = centre.app.test_client().post("/api/v1/pull", json={})
    assert refused.status_code == 401
    assert_guarded(refused, "an API error")


def test_the_staff_cookie_is_secure_when_the_centre_is_reached_over_https(tmp_path):
    plain = make_centre(tmp_path / "plain")
    client = plain.test_client()
    log_in(client, "admin")
    cookie = client.get_cookie("central_session")
    assert cookie is not None and not cookie.secure

    app = make_centre(tmp_path / "tls", public_url="https://centre.example/")
    client = app.test_client()
    page = client.get("/staff/login", base_url="https://centre.example")
    assert "Secure" in page.headers["Set-Cookie"]


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.mark.browser
def test_the_pages_work_under_their_policy(browser, tmp_path, issuing_key):
    """The policy forbids inline script and style: the kiosk screen, the lead's pages and the
    staff pages must not need any (Chromium reports each blocked one on the console)."""
    from tests.kiosk_web.live import live_kiosk

    blocked: list[str] = []

    def watch(page) -> None:
        page.on(
            "console",
            lambda message: (
                "Content Security Policy" in message.text and blocked.append(message.text)
            ),
        )

    with live_kiosk(tmp_path, issuing_key) as live:
        screen = browser.new_page(viewport={"width": 800, "height": 480})
        watch(screen)
        screen.goto(live.url + "/")
        screen.wait_for_selector("#camera-badge[data-state='ok']", timeout=20_000)
        live.services.handle_payload(live.kit.badge("C001"), "camera")
        screen.wait_for_selector("#result[data-outcome='arrival']", timeout=10_000)
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        watch(phone)
        phone.goto(live.url + "/lead")
        phone.fill("input[name=pin]", PIN)
        phone.click("button[type=submit]")
        phone.wait_for_selector("#present")
        phone.goto(live.url + "/lead/#readiness")
        phone.wait_for_selector("#readiness")
        screen.close()
        phone.close()
    centre = seeded_centre(tmp_path / "central")
    from tests.fakes.network import LoopbackServer

    server = LoopbackServer(centre.app)
    try:
        page = browser.new_page()
        watch(page)
        page.goto(server.url + "staff/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORDS["admin"])
        page.click("button[type=submit]")
        page.wait_for_selector("nav")
        for path in ("staff/", "staff/sites/S01", "staff/kiosks", "staff/anomalies"):
            page.goto(server.url + path)
            page.wait_for_load_state("load")
        page.close()
    finally:
        server.close()
    assert blocked == []
