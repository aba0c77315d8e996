"""The lead's page on a phone (390x844) in Debian's chromium, against a real kiosk server:
finding a cadre by pinyin and checking them in, the log with an action open, answers in view,
the page keeping up by itself, and what was typed surviving a language switch. Screenshots land
in tests/artifacts/ for a person to look at."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kiosk.roster import CadreEntry
from tests.browser import chromium, shot
from tests.kiosk_web.helpers import PIN
from tests.kiosk_web.live import live_kiosk

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LONG_REASON = "工牌落在家里了，早上由组长核对身份后手工签到，下午补办临时工牌并重新核对"


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


def phone_page(browser, live, locale: str = "zh-CN"):
    context = browser.new_context(viewport=PHONE, locale=locale, device_scale_factor=2)
    page = context.new_page()
    page.goto(live.url + "/lead")
    page.fill("input[name=pin]", PIN)
    page.fill("input[name=name]", "张组长")
    page.click("button[type=submit]")
    page.wait_for_selector("#present")
    return context, page


def in_view(page, selector: str) -> bool:
    return page.evaluate(
        """(selector) => {
            const box = document.querySelector(selector).getBoundingClientRect();
            return box.top >= 0 && box.bottom <= window.innerHeight && box.height > 0;
        }""",
        selector,
    )


def add_cadres(live, names: dict[str, str]) -> None:
    roster = live.services.roster
    cadres = dict(roster.current.cadres)
    for cadre_id, name in names.items():
        cadres[cadre_id] = CadreEntry(name=name, unit="东湖街道办", site_id="site-1")
    roster.save(roster.current.model_copy(update={"cadres": cadres}))


def test_the_lead_finds_a_cadre_by_pinyin_and_checks_them_in(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key) as live:
        add_cadres(live, {"C004": "王方", "C005": "汪帆", "C006": "吴飞"})
        context, page = phone_page(browser, live)
        page.fill("#find-q", "wf")
        page.wait_for_selector("#find-results li[data-cadre='C003']")
        found = page.locator("#find-results li").evaluate_all(
            "items => items.map(i => i.dataset.cadre)"
        )
        # w f: 汪帆 (wang1), 王芳 and 王方 (wang2 fang1, then by id), 吴飞 (wu); nobody else.
        assert found == ["C005", "C003", "C004", "C006"]
        shot(page, "lead-phone-find-wf")
        row = page.locator("#find-results li[data-cadre='C003']")
        row.locator("summary").click()
        row.locator("input[name=reason]").fill("忘带工牌")
        shot(page, "lead-phone-find-check-in-open")
        # A double tap: the second tap changes nothing (the button goes grey, and the server
        # would answer a copy of the form once anyway).
        row.locator("button[type=submit]").dblclick()
        page.wait_for_selector(".toasts .flash.ok")
        assert "王芳" in page.inner_text(".toasts .flash.ok")
        assert in_view(page, ".toasts .flash.ok")
        assert [e.cadre_id for e in live.services.log.iter_events()] == ["C003"]
        assert page.inner_text("#count-present") == "1"
        assert in_view(page, "#p-C003")  # back at the person, now in "present now"
        assert "王芳" in page.inner_text("#present")
        shot(page, "lead-phone-find-checked-in")
        context.close()


def test_an_unknown_id_asks_for_confirmation_on_the_phone(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key) as live:
        context, page = phone_page(browser, live)
        page.fill("#find-q", "NOBODY99")
        page.wait_for_selector("#find-results details")
        page.click("#find-results summary")
        page.fill("#find-results input[name=reason]", "外站干部")
        page.click("#find-results button[type=submit]")
        page.wait_for_selector("#confirm-unknown")
        assert "NOBODY99" in page.inner_text("#confirm-unknown h2")
        shot(page, "lead-phone-unknown-id")
        assert live.services.log.last_seq == 0
        page.click("#confirm-yes")
        page.wait_for_selector(".toasts .flash.ok")
        assert "not_on_roster" in live.services.log.last_event("NOBODY99").flags
        context.close()


def test_the_log_stays_readable_on_a_phone_with_an_action_open(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key) as live:
        add_cadres(live, {f"D{n:03d}": f"欧阳{'明华'[n % 2]}{n:02d}" for n in range(60)})
        for n in range(60):
            live.services.rules.manual(
                f"D{n:03d}", "arrival", operator="张组长", reason=LONG_REASON if n % 7 else "迟到"
            )
        context, page = phone_page(browser, live)
        page.evaluate("document.getElementById('log').scrollIntoView()")
        first = page.locator("#log li.ev").first
        first.locator("details:has(form.void-form) summary").click()
        first.locator("form.void-form input[name=reason]").fill(LONG_REASON)
        widths = page.evaluate(
            """() => [...document.querySelectorAll('#log li.ev .name')]
                .map(e => e.getBoundingClientRect().width)"""
        )
        assert min(widths) > 60, widths  # a name, not a one-character column
        # Every button and summary sits on one line (no "作/废").
        heights = page.evaluate(
            """() => [...document.querySelectorAll('#log summary, #log button')]
                .filter(e => e.offsetParent)
                .map(e => [e.textContent.trim(), e.getBoundingClientRect().height,
                           parseFloat(getComputedStyle(e).lineHeight) ||
                           parseFloat(getComputedStyle(e).fontSize) * 1.45])"""
        )
        for text, height, line in heights:
            assert height < 2 * line + 20, (text, height, line)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        shot(page, "lead-phone-log-void-open")

        # Void the newest row: the answer and the row stay in view, not the top of the page.
        target_seq = first.get_attribute("data-seq")
        first.locator("form.void-form button").click()
        page.wait_for_selector(".toasts .flash.ok")
        assert in_view(page, ".toasts .flash.ok")
        void_seq = live.services.log.last_seq
        assert in_view(page, f"#ev-{void_seq}")
        assert page.evaluate("window.scrollY") > 500
        assert page.locator(f"#ev-{target_seq}.struck").count() == 1
        shot(page, "lead-phone-log-after-void")

        # Undo the void from the same log.
        undo = page.locator(f"#ev-{void_seq}")
        undo.locator("summary").click()
        undo.locator("input[name=reason]").fill("作废错了")
        undo.locator("form.undo-form button").click()
        page.wait_for_selector(".toasts .flash.ok")
        assert "重新生效" in page.inner_text(".toasts .flash.ok")
        assert page.locator(f"#ev-{target_seq}.struck").count() == 0
        shot(page, "lead-phone-log-after-undo")
        context.close()


def test_setting_the_clock_answers_in_view_and_in_one_voice(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key) as live:
        clock = live.kit.clock
        clock.reboot("boot-2", wall=clock.now() - timedelta(hours=3), synchronized=False)
        context, page = phone_page(browser, live)
        page.evaluate("document.getElementById('readiness').scrollIntoView()")
        page.click("#clock-form button")
        page.wait_for_selector(".toasts .flash.ok")
        assert in_view(page, ".toasts .flash.ok") and in_view(page, "#readiness h2")
        text = page.inner_text(".toasts .flash.ok")
        # (The browser's clock is this machine's, the kiosk's a fake one: the amount varies.)
        assert text.startswith("已用本手机校准签到机时间：系统时钟") and "显示时间已校正" in text
        assert "中心" not in text  # it was the phone's time, and it says only that
        shot(page, "lead-phone-clock-set")

        # Now the centre's time is known (more precise): the phone's is not taken, and the
        # answer says so instead of "set from this phone: set from the centre's time".
        live.services.keeper.learn(clock.now() + timedelta(hours=3), "centre", uncertainty_s=0.05)
        page.click("#clock-form button")
        page.wait_for_selector(".toasts .flash.ok >> text=中心")
        text = page.inner_text(".toasts .flash.ok")
        assert "已按中心时间校准（更精确），因此未作改动" in text and "已用本手机" not in text
        context.close()


def test_switching_language_keeps_what_was_typed(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key) as live:
        context, page = phone_page(browser, live)
        row = page.locator("#absent li[data-cadre='C002']")
        row.locator("summary").click()
        row.locator("input[name=reason]").fill("忘带工牌，组长核对")
        row.locator("input[name=time]").fill("05:10")
        page.click("#lang-link")
        page.wait_for_selector("text=Present now")
        row = page.locator("#absent li[data-cadre='C002']")
        assert row.locator("details").get_attribute("open") is not None
        assert row.locator("input[name=reason]").input_value() == "忘带工牌，组长核对"
        assert row.locator("input[name=time]").input_value() == "05:10"
        shot(page, "lead-phone-english-kept-form")
        row.locator("button[type=submit]").click()
        page.wait_for_selector(".toasts .flash.ok")
        assert "checked in by hand at 05:10" in page.inner_text(".toasts .flash.ok")
        context.close()


def test_the_page_keeps_up_without_reloading(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key) as live:
        context, page = phone_page(browser, live)
        page.evaluate("window.notReloaded = true")
        assert page.inner_text("#count-present") == "0"
        live.services.handle_payload(live.kit.badge("C001"), "camera")
        page.wait_for_function(  # a function, not an expression: the CSP allows no eval
            "() => document.getElementById('count-present').textContent === '1'",
            timeout=15_000,
        )
        assert page.evaluate("window.notReloaded") is True
        assert "宋昕" in page.inner_text("#present")
        # An open form is left alone while the lead types in it.
        row = page.locator("#absent li[data-cadre='C002']")
        row.locator("summary").click()
        row.locator("input[name=reason]").fill("正在输入")
        live.services.handle_payload(live.kit.badge("C003"), "camera")
        page.wait_for_function(  # a function, not an expression: the CSP allows no eval
            "() => document.getElementById('count-present').textContent === '2'",
            timeout=15_000,
        )
        assert row.locator("input[name=reason]").input_value() == "正在输入"
        shot(page, "lead-phone-live")
        context.close()


def test_the_printable_absent_list(browser, tmp_path, issuing_key):
    with live_kiosk(tmp_path, issuing_key) as live:
        add_cadres(live, {"P1": "何平", "P2": "冯军", "P3": "吴磊"})
        live.services.handle_payload(live.kit.badge("C001"), "camera")
        context, page = phone_page(browser, live)
        page.click("#print-absent")
        page.wait_for_selector("table.print-list")
        names = page.locator("table.print-list tbody td:nth-child(2)").all_inner_texts()
        assert names == ["冯军", "何平", "李明", "王芳", "吴磊"]
        shot(page, "lead-phone-absent-print")
        page.emulate_media(media="print")
        assert not page.is_visible("#print-now")
        context.close()
