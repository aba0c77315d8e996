"""The kiosk screen's server side: wedge input, the event stream, Arrive/Leave, who may see it."""

from __future__ import annotations

import json

import pytest

from kiosk.bus import EventBus
from tests.kiosk_web.helpers import LOCAL, make_kit

REMOTE = {"REMOTE_ADDR": "192.168.1.50"}


def wedge(kit, payload: str, token: str | None = None, environ=LOCAL):
    client = kit.app.test_client()
    headers = {"X-Screen-Token": kit.services.screen_token if token is None else token}
    return client.post(
        "/screen/wedge", json={"payload": payload}, headers=headers, environ_base=environ
    )


def test_wedge_scan_goes_through_the_rules_as_source_wedge(kit):
    response = wedge(kit, kit.badge("C001").lower() + "\r")  # Caps Lock and a trailing CR
    assert response.status_code == 200
    body = response.get_json()
    assert body["outcome"] == "arrival"
    assert body["name"] == "宋昕"
    assert body["headline"] == "欢迎"
    event = kit.services.log.last_event("C001")
    assert event.source == "wedge"


def test_departure_after_the_repeat_window_shows_hours(kit):
    wedge(kit, kit.badge("C001"))
    kit.clock.advance(seconds=30)
    repeat = wedge(kit, kit.badge("C001")).get_json()
    assert repeat["outcome"] == "repeat"
    assert repeat["headline"] == "已经签到"
    kit.clock.advance(hours=9, minutes=12)
    departure = wedge(kit, kit.badge("C001")).get_json()
    assert departure["outcome"] == "departure"
    assert "9 小时 12 分" in departure["extra"]


def test_forged_code_is_refused_with_a_readable_reason(kit):
    token = kit.badge("C002")
    forged = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    body = wedge(kit, forged).get_json()
    assert body["outcome"] == "refused"
    assert body["name"] == ""
    assert body["detail"] in ("工牌签名不符（伪造或被篡改）", "工牌二维码损坏或不完整")
    assert kit.services.log.last_seq == 0


def test_wedge_needs_the_screen_token_and_a_local_client(kit):
    assert wedge(kit, kit.badge("C001"), token="stale").status_code == 403
    assert wedge(kit, kit.badge("C001"), environ=REMOTE).status_code == 403
    assert kit.services.log.last_seq == 0
    client = kit.app.test_client()
    assert client.get("/", environ_base=REMOTE).status_code == 403
    assert client.get("/stream", environ_base=REMOTE).status_code == 403


def test_remote_screen_can_be_allowed(tmp_path, issuing_key):
    kit = make_kit(tmp_path, issuing_key, screen_remote_allowed=True)
    try:
        assert kit.app.test_client().get("/", environ_base=REMOTE).status_code == 200
    finally:
        kit.services.stop()


@pytest.mark.parametrize(
    "body", [None, [], {"payload": 7}, {"payload": ""}, {"payload": "x" * 600}]
)
def test_wedge_refuses_bad_bodies_cleanly(kit, body):
    client = kit.app.test_client()
    response = client.post(
        "/screen/wedge",
        data=json.dumps(body),
        content_type="application/json",
        headers={"X-Screen-Token": kit.services.screen_token},
        environ_base=LOCAL,
    )
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_scan_result_is_published_only_once_the_event_is_stored(kit):
    services = kit.services
    seen: list[tuple[str, bool]] = []
    original = services.bus.publish

    def checking_publish(event, data):
        if event == "scan" and data.get("event_id"):
            seen.append((event, services.log.find(data["event_id"]) is not None))
        return original(event, data)

    services.bus.publish = checking_publish
    with services.bus.subscribe() as subscription:
        services.handle_payload(kit.badge("C001"), "camera")
        message = subscription.get(timeout=1)
    assert seen == [("scan", True)]
    assert message.event == "scan"
    assert message.data["name"] == "宋昕"


def test_screen_speaks_the_kiosk_language_whatever_the_browser_asks(kit):
    page = kit.app.test_client().get(
        "/", headers={"Accept-Language": "en-GB,en"}, environ_base=LOCAL
    )
    text = page.get_data(as_text=True)
    assert "请向摄像头出示工牌" in text
    assert 'lang="zh-CN"' in text


def test_screen_in_english_when_the_setting_says_so(tmp_path, issuing_key):
    kit = make_kit(tmp_path, issuing_key, language="en")
    try:
        text = kit.app.test_client().get("/", environ_base=LOCAL).get_data(as_text=True)
        assert "Show your badge to the camera" in text
        assert wedge(kit, kit.badge("C001")).get_json()["headline"] == "Welcome"
    finally:
        kit.services.stop()


def test_stream_starts_with_retry_hello_and_status(kit):
    client = kit.app.test_client()
    response = client.get("/stream", environ_base=LOCAL, buffered=False)
    assert response.mimetype == "text/event-stream"
    chunks = response.response
    assert next(chunks) == b"retry: 2000\n\n"
    hello = next(chunks).decode()
    assert hello.startswith("event: hello\n")
    assert kit.services.screen_token in hello
    status = next(chunks).decode()
    assert status.startswith("event: status\n")
    data = json.loads(status.split("data: ", 1)[1])
    assert data["site_name"] == "东湖街道集合点"
    assert data["clock"]["trusted"] is True
    kit.services.handle_payload(kit.badge("C003"), "camera")
    scan = next(chunks).decode()
    assert scan.startswith("id: ") and "event: scan" in scan and "王芳" in scan
    response.close()


def test_bus_replays_missed_scans_after_a_reconnect_within_one_run():
    bus = EventBus()
    first = bus.publish("scan", {"n": 1})
    bus.publish("status", {"s": 1})
    bus.publish("scan", {"n": 2})
    with bus.subscribe(first.id) as again:
        assert again.get(timeout=0).data == {"n": 2}
        assert again.get(timeout=0) is None
    with bus.subscribe("another-run-5") as fresh:
        assert fresh.get(timeout=0) is None


def test_slow_subscriber_loses_old_messages_not_the_publisher_time():
    bus = EventBus(max_queue=3)
    with bus.subscribe() as slow:
        for n in range(10):
            bus.publish("scan", {"n": n})
        assert [slow.get(timeout=0).data["n"] for _ in range(3)] == [7, 8, 9]
        assert slow.dropped == 7


def test_closing_the_bus_ends_streams():
    bus = EventBus()
    subscription = bus.subscribe()
    bus.close()
    assert subscription.get(timeout=5) is None
    assert subscription.closed
    assert bus.subscribe().closed


def arrive_leave_kit(tmp_path, issuing_key):
    return make_kit(tmp_path, issuing_key, show_arrive_leave_buttons=True)


def press(kit, kind):
    return kit.app.test_client().post(
        "/screen/mode",
        json={"kind": kind},
        headers={"X-Screen-Token": kit.services.screen_token},
        environ_base=LOCAL,
    )


def test_leave_button_makes_the_next_scan_a_departure(tmp_path, issuing_key):
    kit = arrive_leave_kit(tmp_path, issuing_key)
    try:
        assert press(kit, "departure").get_json()["mode"]["kind"] == "departure"
        body = wedge(kit, kit.badge("C002")).get_json()
        assert body["outcome"] == "departure"
        assert kit.services.mode_view() is None  # one scan only
        summary = kit.services.rules.presence()
        assert summary["C002"].state == "departed"
        # The next scan toggles as usual again.
        kit.clock.advance(minutes=5)
        assert wedge(kit, kit.badge("C002")).get_json()["outcome"] == "arrival"
    finally:
        kit.services.stop()


def test_button_choice_lapses_after_a_while(tmp_path, issuing_key):
    kit = arrive_leave_kit(tmp_path, issuing_key)
    try:
        press(kit, "departure")
        kit.monotonic[0] += kit.services.settings.forced_kind_s + 1
        assert wedge(kit, kit.badge("C002")).get_json()["outcome"] == "arrival"
    finally:
        kit.services.stop()


def test_buttons_refused_when_turned_off(kit):
    assert press(kit, "arrival").status_code == 409


def test_healthz_says_ok_without_details(kit):
    response = kit.app.test_client().get("/healthz", environ_base=REMOTE)
    assert response.status_code == 200
    assert response.get_json() == {"ok": True, "problem": ""}


def test_status_shows_an_untrusted_clock_and_missing_centre(kit):
    kit.clock.set_synchronized(False)
    status = kit.services.screen_status()
    assert status["clock"]["trusted"] is False
    assert status["clock"]["text"] == "时间未校准"
    assert status["network"]["state"] == "warn"
    kit.clock.advance(seconds=1)
    assert kit.services.screen_status()["now_ms"] - status["now_ms"] == 1000


def test_a_full_disk_refuses_the_scan_and_puts_up_a_banner_until_it_recovers(kit):
    import errno

    from kiosk.store import StoreWriteError

    services = kit.services
    real_append = services.log.append

    def full_disk(_fields):
        raise StoreWriteError("journal append", OSError(errno.ENOSPC, "No space left on device"))

    services.log.append = full_disk
    body = services.handle_payload(kit.badge("C001"), "camera")
    assert body["outcome"] == "refused"
    assert body["detail"] == "未记录：签到机存储已满，请告知现场负责人。"
    assert services.screen_status()["banner"] == body["detail"]
    assert services.health() == (True, "")  # a restart would not free the disk

    services.log.append = real_append
    kit.clock.advance(minutes=3)
    assert services.handle_payload(kit.badge("C001"), "camera")["outcome"] == "arrival"
    assert services.screen_status()["banner"] == ""


def test_an_enrolled_kiosk_runs_the_sync_agent_and_shows_when_the_centre_is_away(
    tmp_path, issuing_key
):
    import socket
    import time

    from kiosk.enrolment import save_token

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once the socket closes
    (tmp_path / "instance").mkdir()
    save_token(tmp_path / "instance", "kiosk-token")
    kit = make_kit(
        tmp_path,
        issuing_key,
        central_url=f"http://127.0.0.1:{port}",
    )
    services = kit.services
    try:
        services.handle_payload(kit.badge("C001"), "camera")
        services.start()
        assert services.sync_agent is not None
        deadline = time.monotonic() + 10
        while services.sync_state().get("online") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        state = services.sync_state()
        assert state["online"] is False and state["last_error"]
        assert state["waiting"] == 1  # nothing counts as sent before the centre said so
        network = services.screen_status()["network"]
        assert network == {"state": "bad", "code": "offline", "text": "离线"}
    finally:
        services.stop()


def test_streams_are_capped_so_threads_stay_free_for_the_lead_and_the_watchdog(
    tmp_path, issuing_key
):
    kit = make_kit(tmp_path, issuing_key, server_threads=6)  # room for two streams
    try:
        client = kit.app.test_client()
        first = client.get("/stream", environ_base=LOCAL, buffered=False)
        second = client.get("/stream", environ_base=LOCAL, buffered=False)
        assert first.status_code == second.status_code == 200
        other = {"REMOTE_ADDR": "127.0.0.2"}  # another client: no slot is left for it
        third = client.get("/stream", environ_base=other, buffered=False)
        assert third.status_code == 503
        first.close()
        again = client.get("/stream", environ_base=other, buffered=False)
        assert again.status_code == 200
        # The first client again: its own oldest stream makes way (a page that reloads).
        reloaded = client.get("/stream", environ_base=LOCAL, buffered=False)
        assert reloaded.status_code == 200
        assert kit.services.stream_slots.held == 2
        for response in (again, reloaded, second):
            response.close()
    finally:
        kit.services.stop()
