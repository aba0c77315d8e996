"""The lead's JSON is for programs: codes and ISO times to the second, seq, ranges of days,
following the log by seq, pages; the page does the wording."""

from __future__ import annotations

from tests.kiosk_web.helpers import login, post_form


def test_events_carry_codes_seq_and_iso_times_to_the_second(kit):
    kit.clock.advance(seconds=7)
    kit.services.handle_payload(kit.badge("C001"), "camera")
    client = kit.app.test_client()
    login(client)
    post_form(
        client,
        kit.app,
        "/lead/manual",
        cadre_id="X900",
        kind="departure",
        reason="r",
        confirm_unknown="1",
    )
    answer = client.get("/lead/api/events", headers={"Accept-Language": "zh-CN"}).get_json()
    assert answer["timezone"] == "Asia/Shanghai"
    first, second = answer["events"]
    assert first["seq"] == 1 and second["seq"] == 2
    assert first["time"] == "2026-11-29T05:20:07+08:00"
    assert first["service_day"] == "2026-11-29"
    assert (first["kind"], first["source"], first["flags"]) == ("arrival", "camera", [])
    assert first["name"] == "宋昕" and first["on_roster"] is True
    assert second["source"] == "manual"
    assert set(second["flags"]) == {"not_on_roster", "departure_without_arrival"}
    assert second["name"] is None and second["on_roster"] is False
    assert second["operator"] == "张组长"


def test_events_over_a_range_of_days_a_page_at_a_time(kit):
    for _ in range(3):
        for cadre in ("C001", "C002"):
            kit.services.handle_payload(kit.badge(cadre), "camera")
        kit.clock.advance(days=1)
    client = kit.app.test_client()
    login(client)
    one_day = client.get("/lead/api/events?day=2026-11-30").get_json()
    assert [e["seq"] for e in one_day["events"]] == [3, 4]
    page = client.get("/lead/api/events?from=2026-11-29&to=2026-12-01&limit=4").get_json()
    assert [e["seq"] for e in page["events"]] == [1, 2, 3, 4]
    assert page["next_after_seq"] == 4
    rest = client.get(
        "/lead/api/events?from=2026-11-29&to=2026-12-01&limit=4&after_seq=4"
    ).get_json()
    assert [e["seq"] for e in rest["events"]] == [5, 6] and rest["next_after_seq"] is None
    assert client.get("/lead/api/events?from=2026-01-01&to=2026-12-31").status_code == 400
    assert client.get("/lead/api/events?limit=x").status_code == 400


def test_events_since_a_seq_follow_the_log_whatever_the_day(kit):
    for hours in (0, 20, 30):
        kit.services.handle_payload(kit.badge("C003"), "camera")
        kit.clock.advance(hours=hours or 1)
    client = kit.app.test_client()
    login(client)
    answer = client.get("/lead/api/events?since_seq=1&limit=1").get_json()
    assert [e["seq"] for e in answer["events"]] == [2]
    assert answer["more"] is True and answer["next_since_seq"] == 2
    answer = client.get("/lead/api/events?since_seq=2").get_json()
    assert [e["seq"] for e in answer["events"]] == [3] and answer["more"] is False
    assert client.get("/lead/api/events?since_seq=3").get_json()["events"] == []


def test_summary_carries_iso_times_and_the_state_poll_is_small(kit):
    kit.services.handle_payload(kit.badge("C001"), "camera")
    client = kit.app.test_client()
    login(client)
    person = client.get("/lead/api/summary").get_json()["present"][0]
    assert person["arrived_at"] == "2026-11-29T05:20:00+08:00"
    state = client.get("/lead/api/state")
    assert state.get_json()["last_seq"] == 1
    assert len(state.data) < 200
    kit.services.handle_payload(kit.badge("C002"), "camera")
    assert client.get("/lead/api/state").get_json()["last_seq"] == 2


def test_readiness_is_codes_and_the_page_words_them(kit):
    client = kit.app.test_client()
    login(client)
    items = {i["key"]: i for i in client.get("/lead/api/readiness").get_json()["items"]}
    assert items["sync"]["code"] == "not_configured"
    assert items["clock"]["code"] == "ntp" and items["clock"]["values"]["trusted"] is True
    assert items["pending"]["values"] == {"count": 0}
    assert items["disk"]["values"]["free_bytes"] > 0
    page = client.get("/lead/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "版本 3，3 人" in page and "Version" not in page


def test_people_search_answers_codes(kit):
    kit.services.handle_payload(kit.badge("C002"), "camera")
    client = kit.app.test_client()
    login(client)
    found = client.get("/lead/api/people?q=lm").get_json()
    assert found["people"] == [
        {
            "cadre_id": "C002",
            "name": "李明",
            "unit": "城建局",
            "on_roster": True,
            "state": "present",
            "arrived_at": "2026-11-29T05:20:00+08:00",
            "departed_at": None,
            "worked_s": None,
            "arrived_gate": kit.services.settings.kiosk_id,
            "departed_gate": None,
        }
    ]
    assert client.get("/lead/api/people?q=wf").get_json()["people"][0]["state"] == "absent"
