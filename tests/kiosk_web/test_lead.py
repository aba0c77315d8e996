"""The site lead's page: login, lockout, CSRF, the lists, manual entries, void, exports, clock."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from werkzeug.routing import Rule

from tests.kiosk_web.helpers import (
    LOCAL,
    PIN,
    TEST_PIN_METHOD,
    csrf,
    flashes,
    login,
    make_kit,
    post_form,
)

# Routes anyone may reach: the login itself, the kiosk screen (loopback-only, see test_screen),
# static files, the language link and the health probe; and the peers' endpoint, which answers
# only a request signed by a peer the centre named (403 otherwise: tests/peers/).
PUBLIC = {
    "peers.peer_events",
    "lead.login",
    "static",
    "set_language",
    "screen.index",
    "screen.stream",
    "screen.preview",
    "screen.wedge",
    "screen.mode",
    "screen.healthz",
}


def sample_url(rule: Rule) -> str:
    values = {arg: {"fmt": "csv"}.get(arg, "x") for arg in rule.arguments}
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: values[m.group(1)], rule.rule)


def test_every_lead_and_api_route_needs_a_session(kit):
    client = kit.app.test_client()
    checked = 0
    for rule in kit.app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        assert rule.rule.startswith("/lead"), f"{rule.rule} is neither public nor under /lead"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(sample_url(rule), method=method, environ_base=LOCAL)
            if rule.rule.startswith("/lead/api/"):
                assert response.status_code == 401, (method, rule.rule)
                assert response.is_json
            else:
                assert response.status_code == 302, (method, rule.rule, response.status_code)
                assert response.headers["Location"].startswith("/lead/login")
            checked += 1
    assert checked >= 10


def test_right_pin_logs_in_and_wrong_pin_does_not(kit):
    client = kit.app.test_client()
    assert login(client, "0000").status_code == 401
    assert client.get("/lead/").status_code == 302
    response = login(client)
    assert response.status_code == 302
    assert client.get("/lead/").status_code == 200


def test_ten_wrong_pins_lock_the_login_for_a_while(kit):
    client = kit.app.test_client()
    for attempt in range(9):
        response = login(client, "1111")
        assert response.status_code == 401, attempt
    assert login(client, "1111").status_code == 429
    # Locked: even the right PIN is refused now.
    response = login(client)
    assert response.status_code == 429
    assert client.get("/lead/").status_code == 302

    kit.clock.advance(seconds=kit.services.settings.lead_lockout_s + 1)
    assert login(client).status_code == 302
    assert client.get("/lead/").status_code == 200


def test_lockouts_in_a_row_grow_longer(kit):
    client = kit.app.test_client()
    lockout = kit.services.settings.lead_lockout_s
    for _ in range(10):
        login(client, "1111")
    kit.clock.advance(seconds=lockout + 1)
    for _ in range(10):
        login(client, "1111")
    kit.clock.advance(seconds=lockout + 1)
    assert login(client).status_code == 429  # the second lockout lasts twice as long
    kit.clock.advance(seconds=lockout)
    assert login(client).status_code == 302


def test_empty_pin_keeps_the_page_locked_and_says_how_to_set_it(tmp_path, issuing_key):
    kit = make_kit(tmp_path, issuing_key, lead_pin="")
    try:
        client = kit.app.test_client()
        page = client.get("/lead/login", headers={"Accept-Language": "en"})
        text = page.get_data(as_text=True)
        assert "kiosk set-pin" in text
        with client.session_transaction() as session:
            session["csrf_token"] = "t"
        response = client.post("/lead/login", data={"pin": "", "csrf_token": "t"})
        assert response.status_code == 403
        assert client.get("/lead/").status_code == 302
    finally:
        kit.services.stop()


def test_changing_the_pin_logs_every_phone_out(kit):
    client = kit.app.test_client()
    login(client)
    assert client.get("/lead/").status_code == 200
    kit.services.lead_auth.set_pin("97531", method=TEST_PIN_METHOD)
    assert client.get("/lead/").status_code == 302


def test_a_form_without_the_csrf_token_is_refused(kit):
    client = kit.app.test_client()
    login(client)
    response = client.post(
        "/lead/manual", data={"cadre_id": "C001", "kind": "arrival", "reason": "forgot badge"}
    )
    assert response.status_code == 400
    assert kit.services.log.last_seq == 0
    response = client.post(
        "/lead/api/clock", json={"phone_time_ms": 1}, headers={"X-CSRF-Token": "wrong"}
    )
    assert response.status_code == 400


def test_login_form_itself_needs_the_csrf_token(kit):
    client = kit.app.test_client()
    client.get("/lead/login")
    assert client.post("/lead/login", data={"pin": PIN}).status_code == 400


def test_login_never_redirects_off_the_site(kit):
    client = kit.app.test_client()
    client.get("/lead/login")
    response = client.post(
        "/lead/login",
        data={"pin": PIN, "csrf_token": csrf(client), "next": "https://evil.example/lead"},
    )
    assert response.headers["Location"] == "/lead/"


def test_lists_show_present_departed_absent(kit):
    services = kit.services
    services.handle_payload(kit.badge("C001"), "camera")
    services.handle_payload(kit.badge("C002"), "camera")
    kit.clock.advance(hours=9)
    services.handle_payload(kit.badge("C002"), "camera")

    client = kit.app.test_client()
    login(client)
    summary = client.get("/lead/api/summary").get_json()
    assert [p["name"] for p in summary["present"]] == ["宋昕"]
    assert [p["name"] for p in summary["departed"]] == ["李明"]
    assert summary["departed"][0]["worked_s"] == 9 * 3600
    assert summary["departed"][0]["arrived_at"] == "2026-11-29T05:20:00+08:00"
    assert summary["departed"][0]["departed_at"] == "2026-11-29T14:20:00+08:00"
    assert [p["cadre_id"] for p in summary["absent"]] == ["C003"]
    assert summary["counts"] == {
        "present": 1,
        "arrived": 2,
        "departed": 1,
        "absent": 1,
        "no_departure": 0,
    }
    page = client.get("/lead/").get_data(as_text=True)
    assert "宋昕" in page and "王芳" in page


def test_a_visitor_from_another_site_is_marked_on_the_lead_page(kit):
    kit.services.handle_payload(kit.badge("X900"), "camera")  # valid badge, not on the roster
    kit.services.handle_payload(kit.badge("C001"), "camera")
    client = kit.app.test_client()
    login(client)
    present = {p["cadre_id"]: p for p in client.get("/lead/api/summary").get_json()["present"]}
    assert present["X900"]["on_roster"] is False and present["X900"]["unit"] is None
    assert present["C001"]["on_roster"] is True and present["C001"]["unit"] == "东湖街道办"
    page = client.get("/lead/").get_data(as_text=True)
    visitor = page[page.index('id="p-X900"') :]
    assert "不在本站名单" in visitor[: visitor.index("</li>")]


def test_yesterdays_arrival_without_departure_is_flagged(kit):
    kit.services.handle_payload(kit.badge("C001"), "camera")
    kit.clock.advance(hours=24)
    client = kit.app.test_client()
    login(client)
    summary = client.get("/lead/api/summary").get_json()
    assert [p["cadre_id"] for p in summary["no_departure"]] == ["C001"]
    assert summary["counts"]["present"] == 0


def test_manual_check_in_then_void_with_reasons(kit):
    client = kit.app.test_client()
    login(client, name="张组长")
    response = post_form(
        client,
        kit.app,
        "/lead/manual",
        cadre_id="C003",
        kind="arrival",
        reason="badge left at home",
    )
    assert response.status_code == 302
    event = kit.services.log.last_event("C003")
    assert event.source == "manual"
    assert event.operator == "张组长"
    assert event.reason == "badge left at home"
    assert client.get("/lead/api/summary").get_json()["counts"]["present"] == 1

    response = post_form(
        client, kit.app, "/lead/void", event_id=str(event.event_id), reason="wrong person"
    )
    assert response.status_code == 302
    assert client.get("/lead/api/summary").get_json()["counts"]["present"] == 0
    events = client.get("/lead/api/events").get_json()["events"]
    assert [(e["kind"], e["status"]) for e in events] == [("arrival", "voided"), ("void", None)]


def test_manual_entry_without_a_reason_changes_nothing(kit):
    client = kit.app.test_client()
    login(client)
    post_form(client, kit.app, "/lead/manual", cadre_id="C003", kind="arrival", reason="  ")
    assert kit.services.log.last_seq == 0
    assert flashes(client) == [("error", "请填写原因。")]  # in Chinese by default


def test_correction_replaces_the_kind(kit):
    kit.services.handle_payload(kit.badge("C001"), "camera")
    event = kit.services.log.last_event("C001")
    client = kit.app.test_client()
    login(client)
    response = post_form(
        client,
        kit.app,
        "/lead/correct",
        event_id=str(event.event_id),
        kind="departure",
        time="2026-11-29T05:20",
        reason="was leaving, pressed wrong",
    )
    assert response.status_code == 302
    events = client.get("/lead/api/events").get_json()["events"]
    assert [(e["kind"], e["status"]) for e in events] == [
        ("arrival", "replaced"),
        ("departure", None),
    ]


def test_exports_hold_the_rows_with_formulas_defused(kit):
    kit.services.handle_payload(kit.badge("C001"), "camera")
    client = kit.app.test_client()
    login(client)
    post_form(
        client, kit.app, "/lead/manual", cadre_id="C002", kind="arrival", reason='=HYPERLINK("x")'
    )

    xlsx = client.get("/lead/export.xlsx?from=2026-11-29&to=2026-11-29")
    assert xlsx.status_code == 200
    assert "attachment" in xlsx.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("日期", "时间（UTC+08:00）", "编号", "姓名")
    names = {row[3] for row in rows[1:]}
    assert names == {"宋昕", "李明"}
    reasons = [row[10] for row in rows[1:] if row[10]]
    assert reasons == ['\'=HYPERLINK("x")']

    raw = client.get("/lead/export.csv?from=2026-11-29").data
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(table) == 3
    assert {row[3] for row in table[1:]} == {"宋昕", "李明"}


def test_export_refuses_bad_dates_and_huge_ranges(kit):
    client = kit.app.test_client()
    login(client)
    assert client.get("/lead/export.csv?from=29.11.2026").status_code == 400
    assert client.get("/lead/export.csv?from=2026-01-01&to=2026-12-31").status_code == 400
    assert client.get("/lead/export.pdf").status_code == 404


def test_clock_button_records_the_phones_time_as_a_trusted_offset(kit):
    kit.clock.set_synchronized(False)
    kit.clock.jump(-timedelta(hours=2))  # the Pi came back from a power cut two hours behind
    services = kit.services
    assert services.keeper.read().source == "unverified"
    client = kit.app.test_client()
    login(client)
    true_ms = int((kit.clock.now() + timedelta(hours=2)).timestamp() * 1000)
    response = client.post(
        "/lead/api/clock",
        json={"phone_time_ms": true_ms},
        headers={"X-CSRF-Token": csrf(client), "Idempotency-Key": "set-1"},
    )
    assert response.status_code == 200
    reading = services.keeper.read()
    assert reading.source == "lead_phone"
    assert abs(reading.offset - timedelta(hours=2)) < timedelta(seconds=1)
    # The system clock itself was not touched: events keep the raw wall time.
    assert abs(reading.wall - kit.clock.now()) < timedelta(seconds=1)
    answer = response.get_json()
    assert answer["outcome"] == "set_from_phone"
    assert answer["clock"]["source"] == "lead_phone" and answer["clock"]["trusted"] is False


def test_clock_button_refuses_garbage(kit):
    client = kit.app.test_client()
    login(client)
    for value in (None, "soon", 10**30):
        response = client.post(
            "/lead/api/clock",
            json={"phone_time_ms": value},
            headers={"X-CSRF-Token": csrf(client), "Idempotency-Key": f"garbage-{value}"},
        )
        assert response.status_code == 400
    assert kit.services.keeper.anchor() is None or kit.services.keeper.anchor().source == "ntp"


def test_readiness_lists_what_the_lead_must_know(kit):
    client = kit.app.test_client()
    login(client)
    items = client.get("/lead/api/readiness").get_json()["items"]
    keys = {item["key"] for item in items}
    assert {"camera", "clock", "disk", "roster", "pending", "sync"} <= keys
    roster = next(i for i in items if i["key"] == "roster")
    assert roster["code"] == "ok" and roster["values"]["version"] == 3
    assert roster["values"]["count"] == 3
    # Codes and values, never sentences: the page words them in its own language.
    for item in items:
        assert set(item) == {"key", "state", "code", "values"}
        assert item["code"].isascii()


@pytest.mark.parametrize(
    ("accept", "expected"), [("en-GB,en;q=0.9", "Present now"), ("zh-CN,zh", "当前在场")]
)
def test_lead_page_follows_the_phones_language(kit, accept, expected):
    client = kit.app.test_client()
    login(client)
    page = client.get("/lead/", headers={"Accept-Language": accept}).get_data(as_text=True)
    assert expected in page


def test_language_link_overrides_the_browser(kit):
    client = kit.app.test_client()
    login(client)
    client.get("/lang/en?next=/lead/")
    page = client.get("/lead/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "Present now" in page


def test_names_from_the_roster_are_escaped(kit, tmp_path):
    from kiosk.roster import CadreEntry

    snapshot = kit.services.roster.current
    cadres = dict(snapshot.cadres)
    cadres["C003"] = CadreEntry(name="<script>alert(1)</script>", unit="<b>x</b>", site_id="site-1")
    kit.services.roster.save(snapshot.model_copy(update={"cadres": cadres}))
    client = kit.app.test_client()
    login(client)
    page = client.get("/lead/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


GARBAGE_FORMS = [
    {},
    {"cadre_id": "C001", "kind": "sideways", "reason": "x"},
    {"cadre_id": "C001", "kind": "arrival", "reason": "x", "time": "25:99"},
    {"cadre_id": "C001", "kind": "arrival", "reason": "x", "time": "2026-13-01T99:00"},
    {"cadre_id": "x" * 500, "kind": "departure", "reason": "y" * 5000},
    {"event_id": "not-a-uuid", "reason": "x", "kind": "arrival"},
    {"event_id": "00000000-0000-4000-8000-000000000000", "reason": "x"},
    {"phone_time_ms": "-99999999999999999999"},
    {"next": "//evil.example/", "reason": "\x00\x01"},
]


def test_lead_posts_never_fail_with_a_server_error_on_garbage(kit):
    client = kit.app.test_client()
    login(client)
    before = kit.services.log.last_seq
    posts = [
        rule.rule
        for rule in kit.app.url_map.iter_rules()
        if rule.rule.startswith("/lead") and "POST" in rule.methods and rule.rule != "/lead/logout"
    ]
    assert "/lead/manual" in posts and "/lead/void" in posts
    for path in posts:
        for form in GARBAGE_FORMS:
            key = kit.app.extensions["lead_forms"].issue()
            response = client.post(path, data={"csrf_token": csrf(client), "form_key": key, **form})
            assert response.status_code < 500, (path, form)
            if response.status_code == 302:
                assert not response.headers["Location"].startswith("//")
        response = client.post(
            path,
            data=b"\xff\xfe{",
            content_type="application/json",
            headers={"X-CSRF-Token": csrf(client)},
        )
        assert response.status_code < 500, path
    big = post_form(client, kit.app, "/lead/manual", reason="x" * 100_000)
    assert big.status_code == 413
    assert kit.services.log.last_seq == before  # nothing of the garbage was stored
