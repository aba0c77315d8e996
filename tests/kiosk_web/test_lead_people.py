"""The lead finds people by name, id or pinyin, an id not on the roster needs a confirmation,
lists are in pinyin order, the log is paged newest first and searched, voids can be undone."""

from __future__ import annotations

import io
from datetime import date, datetime, time

from openpyxl import load_workbook

from kiosk.roster import CadreEntry
from tests.kiosk_web.helpers import flashes, login, post_form


def add_cadres(kit, names: dict[str, str]) -> None:
    snapshot = kit.services.roster.current
    cadres = dict(snapshot.cadres)
    for cadre_id, name in names.items():
        cadres[cadre_id] = CadreEntry(name=name, unit="街道办", site_id="site-1")
    kit.services.roster.save(snapshot.model_copy(update={"cadres": cadres}))


def section(page: str, section_id: str) -> str:
    start = page.index(f'id="{section_id}"')
    return page[start : page.index("</section>", start)]


def test_the_lead_finds_a_cadre_by_pinyin_initials_and_checks_them_in(kit):
    client = kit.app.test_client()
    login(client)
    page = client.get("/lead/?q=wf").get_data(as_text=True)
    assert "王芳" in section(page, "find")  # without script: the search is a GET
    found = client.get("/lead/?q=wf&part=find").get_data(as_text=True)  # as the script asks
    assert "<html" not in found
    assert "王芳" in found and "宋昕" not in found and "李明" not in found
    assert 'name="cadre_id" value="C003"' in found
    for query, expected in (("王", "王芳"), ("c00", "宋昕"), ("songx", "宋昕"), ("LM", "李明")):
        assert expected in client.get(f"/lead/?q={query}&part=find").get_data(as_text=True)
    post_form(client, kit.app, "/lead/manual", cadre_id="C003", kind="arrival", reason="忘带")
    assert kit.services.log.last_event("C003").kind == "arrival"


def test_an_id_not_on_the_roster_is_only_recorded_once_confirmed(kit):
    client = kit.app.test_client()
    login(client)
    search = client.get("/lead/?q=NOBODY99&part=find").get_data(as_text=True)
    assert "本站名单中找不到" in search and 'value="NOBODY99"' in search
    form = {"cadre_id": "NOBODY99", "kind": "arrival", "reason": "访客"}
    asked = post_form(client, kit.app, "/lead/manual", **form)
    assert asked.status_code == 200
    text = asked.get_data(as_text=True)
    assert "编号 NOBODY99 不在本站名单" in text and 'name="confirm_unknown" value="1"' in text
    assert kit.services.log.last_seq == 0
    post_form(client, kit.app, "/lead/manual", confirm_unknown="1", **form)
    event = kit.services.log.last_event("NOBODY99")
    assert event is not None and "not_on_roster" in event.flags
    bad = post_form(client, kit.app, "/lead/manual", cadre_id="李 明", kind="arrival", reason="x")
    assert bad.status_code == 302 and flashes(client)[-1][0] == "error"
    assert kit.services.log.last_seq == 1


def test_lists_are_in_pinyin_order_not_code_point_order(kit):
    add_cadres(kit, {"P1": "何平", "P2": "冯军", "P3": "刘洋", "P4": "吴磊"})
    client = kit.app.test_client()
    login(client)
    absent = client.get("/lead/api/summary").get_json()["absent"]
    names = [p["name"] for p in absent]
    # feng he li liu song wang wu (冯 何 李 刘 宋 王 吴), not 何 冯 刘 吴 ...
    assert names == ["冯军", "何平", "李明", "刘洋", "宋昕", "王芳", "吴磊"]
    page = client.get("/lead/").get_data(as_text=True)
    listed = section(page, "absent")
    positions = [listed.index(name) for name in names]
    assert positions == sorted(positions)
    printable = client.get("/lead/absent").get_data(as_text=True)
    positions = [printable.index(name) for name in names]
    assert positions == sorted(positions)
    assert "应到 7 人，缺勤 7 人" in printable


def test_the_page_names_the_site_time_zone_once(kit):
    kit.services.handle_payload(kit.badge("C001"), "camera")
    client = kit.app.test_client()
    login(client)
    page = client.get("/lead/").get_data(as_text=True)
    assert page.count("UTC+08:00") == 1
    assert "UTC+00:00" not in page and "+00:00" not in page


def test_the_log_is_paged_newest_first_and_searched(kit):
    add_cadres(kit, {f"Q{n:03d}": f"测试{n:03d}" for n in range(60)})
    for n in range(60):
        kit.services.handle_payload(kit.badge(f"Q{n:03d}"), "camera")
    kit.services.handle_payload(kit.badge("C002"), "camera")
    client = kit.app.test_client()
    login(client)
    page = client.get("/lead/").get_data(as_text=True)
    log = section(page, "log")
    assert log.count('class="ev') == 50
    assert log.index('data-seq="61"') < log.index('data-seq="60"')  # newest first
    assert 'data-seq="11"' not in log and "before=12" in log
    older = section(client.get("/lead/?before=12").get_data(as_text=True), "log")
    assert older.count('class="ev') == 11 and 'data-seq="1"' in older
    found = section(client.get("/lead/?log_q=lm").get_data(as_text=True), "log")
    assert found.count('class="ev') == 1 and "李明" in found
    assert "共 61 条记录，符合 1 条。" in found


def test_a_void_is_undone_by_a_void_of_the_void(kit):
    kit.services.handle_payload(kit.badge("C001"), "camera")
    arrival = kit.services.log.last_event("C001")
    client = kit.app.test_client()
    login(client)
    post_form(client, kit.app, "/lead/void", event_id=str(arrival.event_id), reason="看错了")
    void = list(kit.services.log.iter_events())[-1]
    assert client.get("/lead/api/summary").get_json()["counts"]["present"] == 0
    page = section(client.get("/lead/").get_data(as_text=True), "log")
    assert "撤销此作废" in page and "作废 到达 05:20 · 宋昕" in page
    post_form(client, kit.app, "/lead/void", event_id=str(void.event_id), reason="其实没错")
    assert flashes(client)[-1] == ("ok", "已撤销作废：宋昕 的记录重新生效。")
    assert client.get("/lead/api/summary").get_json()["counts"]["present"] == 1
    statuses = [
        (e["kind"], e["status"]) for e in client.get("/lead/api/events").get_json()["events"]
    ]
    assert statuses == [("arrival", None), ("void", "undone"), ("void", None)]
    page = section(client.get("/lead/").get_data(as_text=True), "log")
    assert "撤销对“作废 到达 05:20 · 宋昕”的作废" not in page  # named, never by a hex id
    assert "撤销对“到达 05:20 · 宋昕”的作废" in page
    # An undo is not undone; the record can be voided again instead.
    undo = list(kit.services.log.iter_events())[-1]
    post_form(client, kit.app, "/lead/void", event_id=str(undo.event_id), reason="再撤")
    assert flashes(client)[-1] == ("error", "撤销不能再撤销：请重新作废该记录。")
    post_form(client, kit.app, "/lead/void", event_id=str(arrival.event_id), reason="还是错")
    assert client.get("/lead/api/summary").get_json()["counts"]["present"] == 0


def test_the_undo_survives_a_restart(tmp_path, issuing_key):
    from tests.kiosk_web.helpers import make_kit

    kit = make_kit(tmp_path, issuing_key)
    kit.services.handle_payload(kit.badge("C001"), "camera")
    arrival = kit.services.log.last_event("C001")
    void = kit.services.rules.void(arrival.event_id, operator="张", reason="x")
    kit.services.log.checkpoint()  # the index, the voided row aside included, in the manifest
    kit.services.stop()
    again = make_kit(tmp_path, issuing_key, clock=kit.clock)
    try:
        assert again.services.log.can_undo("C001", str(void.event_id))
        again.services.rules.void(void.event_id, operator="张", reason="y")
        assert again.services.rules.presence()["C001"].state == "present"
    finally:
        again.services.stop()


def test_a_void_of_another_day_is_named_not_shown_as_a_hex_id(kit):
    kit.services.handle_payload(kit.badge("C002"), "camera")
    arrival = kit.services.log.last_event("C002")
    kit.clock.advance(days=1)
    kit.services.rules.void(arrival.event_id, operator="张", reason="昨天的")
    client = kit.app.test_client()
    login(client)
    log = section(client.get("/lead/").get_data(as_text=True), "log")
    assert "作废 到达 05:20 · 李明" in log
    assert str(arrival.event_id)[:8] not in log.replace(str(arrival.event_id), "")
    yesterday = client.get("/lead/api/events?day=2026-11-29").get_json()["events"]
    assert yesterday[0]["status"] is None  # the void is on the 30th; the page marks it below
    log = section(client.get("/lead/?day=2026-11-29").get_data(as_text=True), "log")
    assert "已作废" in log


def test_the_xlsx_export_is_made_for_excel(kit):
    kit.services.handle_payload(kit.badge("C001"), "camera")
    kit.services.handle_payload(kit.badge("X900"), "camera")  # a visitor
    client = kit.app.test_client()
    login(client)
    data = client.get("/lead/export.xlsx", headers={"Accept-Language": "zh-CN"}).data
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:R3"
    header = [c.value for c in sheet[1]]
    assert header[:6] == ["日期", "时间（UTC+08:00）", "编号", "姓名", "单位", "在本站名单"]
    first, visitor = list(sheet.iter_rows(min_row=2, values_only=True))
    assert first[0] == datetime(2026, 11, 29) and first[1] == time(5, 20)
    assert sheet["A2"].number_format == "yyyy-mm-dd" and sheet["B2"].number_format == "hh:mm:ss"
    assert isinstance(first[14], datetime)  # the kiosk's clock, a date too
    assert first[4] == "东湖街道办" and first[5] == "是"
    assert visitor[4] is None and visitor[5] == "否"  # not "not on this site's roster" as unit
    assert (first[6], first[7], first[8]) == ("到达", "摄像头", "是")
    widths = {k: v.width for k, v in sheet.column_dimensions.items()}
    assert widths["A"] >= 10 and widths["Q"] > widths["C"]  # the event id column is wide
    assert date.fromisoformat("2026-11-29") == first[0].date()
