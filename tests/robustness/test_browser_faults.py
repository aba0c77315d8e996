"""What people see in Debian's chromium: hostile names shown as text, and a full disk and an
unplugged camera on the kiosk screen and the lead's phone until both come back by themselves.

A real kiosk on 127.0.0.1 (tests/robustness/faulty_kiosk.py); screenshots of the fault screens
land in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import pytest

from kiosk.roster import CadreEntry, RosterSnapshot, RosterStore
from sync.badge_token import key_id_of, public_key_to_text
from tests.browser import chromium, shot
from tests.kiosk_web.helpers import PIN
from tests.kiosk_web.live import live_kiosk
from tests.robustness.faulty_kiosk import faulty_kiosk

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
WAIT_MS = 30_000  # against a hang only
DISK_FULL_TEXT = "未记录：签到机存储已满，请告知现场负责人。"
HOSTILE = {
    "H1": ("<img src=x onerror=alert(1)>", "<script>alert(2)</script>"),
    "H2": ('"><svg onload=alert(3)>宋昕', "=cmd|' /C calc'!A0"),
    "H3": ("龘" * 64, "单位"),  # the longest name the roster takes
    "H4": ("阿卜杜热合曼·阿卜杜拉", "街道办"),
}
HOSTILE_SITE_NAME = "<b onmouseover=alert(4)>东湖</b>"


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


def watch_dialogs(page) -> list[str]:
    """Every alert/confirm a page opens; an injected script would open one."""
    opened: list[str] = []

    def seen(dialog) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", seen)
    return opened


def lead_login(page, url: str) -> None:
    page.goto(url + "/lead/login")
    page.fill("input[name=pin]", PIN)
    page.fill("input[name=name]", "<i onclick=alert(5)>组长</i>")
    page.click("button[type=submit]")
    page.wait_for_selector("#readiness", timeout=WAIT_MS)


def show_until(live, page, cadre_id: str, outcome: str) -> None:
    """Hold the badge up until the page shows a new result of `outcome` for it."""
    before = page.evaluate("window.kioskLastScan ? window.kioskLastScan.shownAt : 0")
    live.camera.show(live.kit.badge(cadre_id))
    try:
        page.wait_for_function(
            """([before, outcome, cadre]) => {
                const last = window.kioskLastScan;
                return last && last.shownAt > before && last.outcome === outcome
                    && last.cadre_id === cadre;
            }""",
            arg=[before, outcome, cadre_id],
            timeout=WAIT_MS,
        )
    finally:
        live.camera.hide()


def test_hostile_names_show_literally_on_the_screen_and_the_lead_page(
    browser, tmp_path, issuing_key
):
    instance = tmp_path / "instance"
    instance.mkdir()
    public = issuing_key.public_key()
    RosterStore(instance).save(
        RosterSnapshot(
            version=1,
            site_id="site-1",
            cadres={
                c: CadreEntry(name=n, unit=u, site_id="site-1") for c, (n, u) in HOSTILE.items()
            },
            public_keys={key_id_of(public): public_key_to_text(public)},
        )
    )
    with live_kiosk(tmp_path, issuing_key, site_name=HOSTILE_SITE_NAME) as live:
        page = browser.new_page(viewport={"width": 800, "height": 480})
        dialogs = watch_dialogs(page)
        page.goto(live.url + "/")
        page.wait_for_selector("#camera-badge[data-state='ok']", timeout=WAIT_MS)
        assert page.inner_text("#site-name") == HOSTILE_SITE_NAME
        for cadre_id, (name, _unit) in HOSTILE.items():
            show_until(live, page, cadre_id, "arrival")
            assert page.inner_text("#result-name") == name
            # The name is text in its box: no element came with it.
            assert page.eval_on_selector("#result-name", "e => e.children.length") == 0
            # However long the name, the time under it stays on the screen.
            bottom = page.eval_on_selector(
                "#result-detail", "e => e.getBoundingClientRect().bottom"
            )
            assert page.inner_text("#result-detail") == "到达 05:20" and bottom <= 480, cadre_id
            if cadre_id == "H3":
                shot(page, "screen-800x480-long-name")
        assert page.locator("img[src='x'], svg[onload], b[onmouseover]").count() == 0
        shot(page, "screen-800x480-hostile-name")

        phone = browser.new_page(viewport=PHONE)
        dialogs += watch_dialogs(phone)
        lead_login(phone, live.url)
        text = phone.inner_text("body")
        for name, unit in HOSTILE.values():
            assert name in text and unit in text
        assert phone.locator("img[src='x'], svg[onload], i[onclick]").count() == 0
        # Hover and click where an injected handler would sit.
        phone.hover("body")
        phone.click("h1, h2", timeout=WAIT_MS)
        assert dialogs == []
        page.close()
        phone.close()


def test_a_full_disk_and_an_unplugged_camera_on_the_screen_and_the_lead_page(
    browser, tmp_path, issuing_key, monkeypatch
):
    fast = {"camera_restart_backoff_s": 0.2, "camera_restart_backoff_max_s": 1.0}
    with faulty_kiosk(
        tmp_path, issuing_key, monkeypatch.setattr, status_period_s=0.2, **fast
    ) as kiosk:
        live = kiosk.live
        screen = browser.new_page(viewport={"width": 800, "height": 480})
        screen.goto(live.url + "/")
        screen.wait_for_selector("#camera-badge[data-state='ok']", timeout=WAIT_MS)
        phone = browser.new_page(viewport=PHONE)
        lead_login(phone, live.url)
        assert phone.get_attribute("dd[data-key='disk']", "class") == "ok"

        # The disk fills up: the next badge is refused in words, and a banner stays up.
        kiosk.disk.fill_up()
        show_until(live, screen, "C001", "refused")
        assert screen.inner_text("#result-detail") == DISK_FULL_TEXT
        screen.wait_for_selector("#banner:not([hidden])", timeout=WAIT_MS)
        assert screen.inner_text("#banner") == DISK_FULL_TEXT
        shot(screen, "screen-800x480-disk-full")
        phone.reload()
        assert phone.get_attribute("dd[data-key='disk']", "class") == "bad"
        shot(phone, "lead-phone-disk-full")

        # Space comes back: the banner goes by itself, the next badge is recorded.
        kiosk.disk.free_up()
        screen.wait_for_selector("#banner[hidden]", state="attached", timeout=WAIT_MS)
        show_until(live, screen, "C002", "arrival")
        assert screen.inner_text("#result-name") == "李明"

        # The camera is unplugged: its badge turns bad and the preview says what to do.
        kiosk.camera.unplug()
        screen.wait_for_selector("#camera-badge[data-state='bad']", timeout=WAIT_MS)
        assert screen.inner_text("#camera-badge") == "摄像头断开，正在重连"
        assert "扫码枪" in screen.inner_text("#preview-note")
        shot(screen, "screen-800x480-camera-unplugged")
        phone.reload()
        assert phone.get_attribute("dd[data-key='camera']", "class") == "bad"
        shot(phone, "lead-phone-camera-unplugged")

        # Plugged back in: reopened by itself, badges are read again.
        kiosk.camera.plug()
        screen.wait_for_selector("#camera-badge[data-state='ok']", timeout=WAIT_MS)
        assert screen.is_hidden("#preview-note")
        show_until(live, screen, "C003", "arrival")
        phone.reload()
        assert phone.get_attribute("dd[data-key='camera']", "class") == "ok"
        assert phone.get_attribute("dd[data-key='disk']", "class") == "ok"
        kinds = [(e.cadre_id, e.kind) for e in kiosk.services.log.iter_events()]
        assert kinds == [("C002", "arrival"), ("C003", "arrival")]
        screen.close()
        phone.close()
