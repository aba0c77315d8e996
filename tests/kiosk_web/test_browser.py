"""The kiosk screen and the lead page in Debian's chromium, against a real server on 127.0.0.1.

A badge shown to the (fake) camera goes through the real scan loop, decoder, rules and store and
must appear on the page; screenshots land in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import io
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from tests.browser import chromium, shot
from tests.kiosk_web.badge_camera import BadgeCamera
from tests.kiosk_web.helpers import PIN
from tests.kiosk_web.live import live_kiosk

pytestmark = pytest.mark.browser

SCREEN_SIZES = [(800, 480), (1920, 1080)]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


def show_and_wait(live, page, payload: str, outcome: str):
    """Hold a badge up until the page shows `outcome`, then take it away."""
    live.camera.show(payload)
    try:
        page.wait_for_selector(f"#result[data-outcome='{outcome}']", timeout=10_000)
    finally:
        live.camera.hide()
    # Out of view longer than the scanner's repeat window, so the next showing is read again.
    time.sleep(live.services.settings.camera_repeat_s + 0.3)


def forged(token: str) -> str:
    # One character of the signature changed: still well-formed base32, signature wrong.
    position = len(token) - 20
    replacement = "A" if token[position] != "A" else "B"
    return token[:position] + replacement + token[position + 1 :]


@pytest.mark.parametrize(("width", "height"), SCREEN_SIZES)
def test_badges_shown_to_the_camera_appear_on_the_kiosk_screen(
    browser, tmp_path, issuing_key, width, height
):
    with live_kiosk(tmp_path, issuing_key) as live:
        page = browser.new_page(viewport={"width": width, "height": height})
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(live.url + "/")
        page.wait_for_selector("#camera-badge[data-state='ok']", timeout=10_000)
        assert page.inner_text("#site-name") == "东湖街道集合点"
        assert page.inner_text("#clock-trust") == "已校时"
        shot(page, f"screen-{width}x{height}-idle")

        show_and_wait(live, page, live.kit.badge("C001"), "arrival")
        assert page.inner_text("#result-name") == "宋昕"
        assert page.inner_text("#result-headline") == "欢迎"
        assert page.inner_text("#result-detail") == "到达 05:20"
        shot(page, f"screen-{width}x{height}-arrival")

        # The repeat window of the rules (2 min) passes on the kiosk's clock.
        live.kit.clock.advance(hours=9, minutes=12)
        show_and_wait(live, page, live.kit.badge("C001"), "departure")
        assert page.inner_text("#result-name") == "宋昕"
        assert page.inner_text("#result-detail") == "离开 14:32"
        assert "工作 9 小时 12 分" in page.inner_text("#result-extra")
        shot(page, f"screen-{width}x{height}-departure")

        show_and_wait(live, page, live.kit.badge("C001"), "repeat")
        assert page.inner_text("#result-headline") == "已经签退"
        shot(page, f"screen-{width}x{height}-repeat")

        show_and_wait(live, page, forged(live.kit.badge("C002")), "refused")
        assert page.inner_text("#result-headline") == "无法签到"
        assert page.inner_text("#result-detail") == "工牌签名不符（伪造或被篡改）"
        assert page.inner_text("#result-name") == ""
        # A line breaks between words or at punctuation, never inside a word (篡/改).
        assert lines_of(page, "#result-detail") in (
            ["工牌签名不符（伪造或被篡改）"],
            ["工牌签名不符（", "伪造或被篡改）"],
            ["工牌签名不符", "（伪造或被篡改）"],
        )
        assert all(not line.startswith(("改", "）")) for line in lines_of(page, "#result-extra"))
        shot(page, f"screen-{width}x{height}-refused")

        # Everything the page loaded came from the kiosk itself: no CDN, no font service.
        assert requested and all(url.startswith(live.url + "/") for url in requested), requested
        played = page.evaluate("window.KioskSounds.played")
        assert played == ["arrival", "departure", "repeat", "refused"]
        kinds = [e.kind for e in live.services.log.iter_events()]
        assert kinds == ["arrival", "departure"]
        page.close()


def lines_of(page, selector: str) -> list[str]:
    """The text of an element as the browser broke it into lines."""
    return page.evaluate(
        """(selector) => {
            const element = document.querySelector(selector);
            const text = element.firstChild;
            if (!text) return [];
            const range = document.createRange();
            const lines = [];
            let top = null;
            for (let i = 0; i < text.length; i++) {
                range.setStart(text, i);
                range.setEnd(text, i + 1);
                const rect = range.getClientRects()[0];
                if (!rect) continue;
                if (top === null || Math.abs(rect.top - top) > rect.height / 2) {
                    lines.push("");
                    top = rect.top;
                }
                lines[lines.length - 1] += text.data[i];
            }
            return lines.map((line) => line.trim()).filter((line) => line);
        }""",
        selector,
    )


def font_px(page, selector: str) -> float:
    return page.evaluate(
        "(s) => parseFloat(getComputedStyle(document.querySelector(s)).fontSize)", selector
    )


class ShutOutAgent:
    """A sync agent whose last exchange the centre refused: this kiosk was revoked."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wake(self) -> None: ...

    def snapshot(self):
        from sync.agent import SyncState

        return SyncState(
            enabled=True,
            online=True,
            waiting=3,
            last_success_at=None,
            last_attempt_at=None,
            last_error="the centre refused this kiosk's token: revoked",
            last_error_at=None,
            consecutive_failures=4,
            next_attempt_in_s=None,
            sent_total=0,
            last_refusal=None,
            clock_offset_s=None,
            last_error_code="unauthorized",
        )


@pytest.mark.parametrize(("width", "height"), SCREEN_SIZES)
def test_secondary_lines_are_large_and_a_shut_out_kiosk_says_so(
    browser, tmp_path, issuing_key, width, height
):
    with live_kiosk(tmp_path, issuing_key) as live:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(live.url + "/")
        page.wait_for_selector("#camera-badge[data-state='ok']", timeout=10_000)
        live.services.handle_payload(live.kit.badge("X900"), "camera")  # a visitor: an extra line
        page.wait_for_selector("#result[data-outcome='arrival']", timeout=10_000)
        assert page.inner_text("#result-extra") == "不在本站名单"
        # 36 px at least (6.9 mm on the 7" panel), read from 1.5 m; 24 px before.
        assert font_px(page, "#result-extra") >= 36
        assert font_px(page, "#net-badge") >= 24
        shot(page, f"screen-{width}x{height}-visitor-extra")

        live.services.sync_agent = ShutOutAgent()
        page.wait_for_selector("#net-badge[data-state='bad']", timeout=5_000)
        assert page.inner_text("#net-badge") == "已被中心停用"
        page.wait_for_selector("#banner:not([hidden])", timeout=5_000)
        assert page.inner_text("#banner").startswith("中心已停用本签到机")
        assert font_px(page, "#banner") >= 28
        page.wait_for_selector("#result[data-outcome='idle']", timeout=15_000)
        shot(page, f"screen-{width}x{height}-shut-out")
        page.close()


def test_keyboard_wedge_scanner_types_into_the_page(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key) as live:
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(live.url + "/")
        page.wait_for_selector("#camera-badge[data-state='ok']", timeout=10_000)
        # A stray key long before the scan must not end up in the payload.
        page.keyboard.press("x")
        page.wait_for_timeout(400)
        page.keyboard.type(live.kit.badge("C002"))
        page.keyboard.press("Enter")
        page.wait_for_selector("#result[data-outcome='arrival']", timeout=10_000)
        assert page.inner_text("#result-name") == "李明"
        assert live.services.log.last_event("C002").source == "wedge"
        page.close()


def test_arrive_leave_buttons_fix_the_next_scan(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key, show_arrive_leave_buttons=True) as live:
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(live.url + "/")
        page.wait_for_selector("#camera-badge[data-state='ok']", timeout=10_000)
        page.click("button.mode.departure")
        page.wait_for_selector("button.mode.departure.selected", timeout=5_000)
        assert page.inner_text("#mode-note") == "下一张工牌：离开"
        shot(page, "screen-800x480-leave-selected")
        show_and_wait(live, page, live.kit.badge("C003"), "departure")
        assert page.inner_text("#result-name") == "王芳"
        shot(page, "screen-800x480-buttons-departure")
        page.wait_for_selector("button.mode.departure:not(.selected)", timeout=5_000)
        page.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_screen_reconnects_by_itself_after_the_server_restarts(browser, tmp_path, issuing_key):
    port = free_port()
    camera = BadgeCamera()
    with live_kiosk(tmp_path, issuing_key, port=port, camera=camera) as live:
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(live.url + "/")
        page.wait_for_selector("#camera-badge[data-state='ok']", timeout=10_000)
        clock = live.kit.clock
    # The server is gone: the page says so.
    page.wait_for_selector("#banner:not([hidden])", timeout=10_000)
    assert "重连" in page.inner_text("#banner")
    with live_kiosk(tmp_path, issuing_key, port=port, camera=BadgeCamera(), clock=clock) as live:
        page.wait_for_selector("#banner[hidden]", state="attached", timeout=15_000)
        show_and_wait(live, page, live.kit.badge("C001"), "arrival")
        assert page.inner_text("#result-name") == "宋昕"
        # The new server's screen token reached the page: wedge input still works.
        live.kit.clock.advance(minutes=10)
        page.keyboard.type(live.kit.badge("C001"))
        page.keyboard.press("Enter")
        page.wait_for_selector("#result[data-outcome='departure']", timeout=10_000)
    page.close()


def test_a_wedge_scan_made_while_the_server_restarts_is_sent_again(browser, tmp_path, issuing_key):
    # A kiosk restarts for an update in a few seconds; a badge scanned then must not be lost.
    port = free_port()
    with live_kiosk(tmp_path, issuing_key, port=port, peer_discovery=False) as live:
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(live.url + "/")
        page.wait_for_selector("#camera-badge[data-state='ok']", timeout=10_000)
        payload = live.kit.badge("C002")
        clock = live.kit.clock
    page.wait_for_selector("#banner:not([hidden])", timeout=10_000)  # the server is gone
    page.keyboard.type(payload)
    page.keyboard.press("Enter")
    page.wait_for_timeout(1500)  # sent, refused (no server), waiting to send it again
    with live_kiosk(tmp_path, issuing_key, port=port, clock=clock, peer_discovery=False) as live:
        page.wait_for_selector("#result[data-outcome='arrival']", timeout=20_000)
        assert page.inner_text("#result-name") == "李明"
        assert live.services.log.last_event("C002").source == "wedge"
    page.close()


def test_site_lead_logs_in_checks_in_by_hand_voids_and_exports(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key) as live:
        live.services.handle_payload(live.kit.badge("C001"), "camera")
        context = browser.new_context(viewport=PHONE, accept_downloads=True, locale="zh-CN")
        page = context.new_page()
        page.goto(live.url + "/lead")
        page.wait_for_selector("input[name=pin]")
        shot(page, "lead-phone-login")
        page.fill("input[name=pin]", PIN)
        page.fill("input[name=name]", "张组长")
        page.click("button[type=submit]")
        page.wait_for_selector("#present")
        assert "宋昕" in page.inner_text("#present")
        assert page.inner_text("#count-present") == "1"

        # Check 王芳 (C003) in by hand from the absent list.
        row = page.locator("#absent li[data-cadre='C003']")
        row.locator("summary").click()
        row.locator("input[name=reason]").fill("忘带工牌")
        row.locator("button[type=submit]").click()
        page.wait_for_selector(".toasts .flash.ok")
        assert "王芳" in page.inner_text(".toasts .flash.ok")
        assert "王芳" in page.inner_text("#present")
        assert page.inner_text("#count-present") == "2"
        shot(page, "lead-phone-overview")

        # Void that manual check-in from the day's log.
        manual = live.services.log.last_event("C003")
        log_row = page.locator(f"#log li[data-event='{manual.event_id}']")
        log_row.locator("details:has(form.void-form) summary").click()
        log_row.locator("form.void-form input[name=reason]").fill("录错了人")
        log_row.locator("form.void-form button").click()
        page.wait_for_selector(".toasts .flash.ok >> text=作废")
        assert page.inner_text("#count-present") == "1"
        assert "王芳" not in page.inner_text("#present")
        assert page.locator(f"#log li.struck[data-event='{manual.event_id}']").count() == 1

        with page.expect_download() as download_info:
            page.click("#export-xlsx")
        download = download_info.value
        assert download.suggested_filename.endswith(".xlsx")
        workbook = load_workbook(io.BytesIO(Path(download.path()).read_bytes()))
        rows = list(workbook.active.iter_rows(values_only=True))
        body = rows[1:]
        assert [(r[3], r[6], r[11]) for r in body] == [
            ("宋昕", "到达", None),
            ("王芳", "到达", "已作废"),
            ("王芳", "作废", None),
        ]
        assert body[1][10] == "忘带工牌" and body[1][9] == "张组长"

        # The readiness list and the clock button, after a power cut: the Pi came back with
        # its clock three hours behind and no network time.
        clock = live.kit.clock
        clock.reboot("boot-2", wall=clock.now() - timedelta(hours=3), synchronized=False)
        page.goto(live.url + "/lead/#readiness")
        page.click("#clock-form button")
        page.wait_for_selector(".toasts .flash.ok")
        assert live.services.keeper.read().source == "lead_phone"
        page.evaluate("document.getElementById('readiness').scrollIntoView()")
        shot(page, "lead-phone-readiness")
        context.close()


def test_lead_page_in_english_for_an_english_phone(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key) as live:
        context = browser.new_context(viewport=PHONE, locale="en-GB")
        page = context.new_page()
        page.goto(live.url + "/lead/login")
        assert page.inner_text("h2") == "Site lead login"
        page.fill("input[name=pin]", PIN)
        page.click("button[type=submit]")
        page.wait_for_selector("#present")
        assert "Present now" in page.inner_text("#present h2")
        shot(page, "lead-phone-english")
        context.close()
