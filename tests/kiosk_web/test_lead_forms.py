"""Every state-changing form of the lead page answers once: a double tap, a retried POST, a
replay after a restart gets the first answer and records nothing more."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from tests.kiosk_web.helpers import (
    PIN,
    csrf,
    flashes,
    form_key,
    login,
    make_kit,
    post_form,
)


def events(kit) -> list:
    return list(kit.services.log.iter_events())


def test_a_double_tap_on_manual_check_in_records_one_event(kit):
    client = kit.app.test_client()
    login(client)
    key = form_key(kit.app)
    form = {"cadre_id": "C003", "kind": "arrival", "reason": "忘带工牌"}
    first = post_form(client, kit.app, "/lead/manual", key=key, **form)
    answer = flashes(client)
    second = post_form(client, kit.app, "/lead/manual", key=key, **form)
    assert [e.kind for e in events(kit)] == ["arrival"]
    assert second.status_code == first.status_code == 302
    assert second.headers["Location"] == first.headers["Location"]
    # The same answer again ("王芳 checked in by hand at 05:20"), not "no arrival before".
    assert flashes(client)[-1] == answer[-1]
    assert answer[-1][0] == "ok" and "王芳" in answer[-1][1]
    assert not any("departure_without_arrival" in e.flags for e in events(kit))


def test_two_copies_arriving_together_record_one_event(kit):
    key = form_key(kit.app)
    clients = [kit.app.test_client() for _ in range(2)]
    for client in clients:
        login(client)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send(client) -> None:
        barrier.wait()
        response = post_form(
            client, kit.app, "/lead/manual", key=key, cadre_id="C002", kind="arrival", reason="x"
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [302, 302]
    assert [e.cadre_id for e in events(kit)] == ["C002"]


def test_a_replay_after_a_restart_gets_the_first_answer(tmp_path, issuing_key):
    kit = make_kit(tmp_path, issuing_key)
    client = kit.app.test_client()
    login(client)
    key = form_key(kit.app)
    form = {"cadre_id": "C001", "kind": "arrival", "reason": "badge at home"}
    post_form(client, kit.app, "/lead/manual", key=key, **form)
    answer = flashes(client)[-1]
    kit.services.stop()

    again = make_kit(tmp_path, issuing_key, clock=kit.clock)
    try:
        client = again.app.test_client()
        login(client)
        response = post_form(client, again.app, "/lead/manual", key=key, **form)
        assert response.status_code == 302
        assert flashes(client)[-1] == answer
        assert [e.cadre_id for e in events(again)] == ["C001"]
    finally:
        again.services.stop()


def test_void_and_correct_answer_once(kit):
    kit.services.handle_payload(kit.badge("C001"), "camera")
    kit.services.handle_payload(kit.badge("C002"), "camera")
    first, second = events(kit)
    client = kit.app.test_client()
    login(client)
    void_key, correct_key = form_key(kit.app), form_key(kit.app)
    for _ in range(3):
        post_form(
            client, kit.app, "/lead/void", key=void_key, event_id=str(first.event_id), reason="错人"
        )
        post_form(
            client,
            kit.app,
            "/lead/correct",
            key=correct_key,
            event_id=str(second.event_id),
            kind="departure",
            time="2026-11-29T05:20",
            reason="按错",
        )
    kinds = [(e.kind, str(e.corrects) if e.corrects else None) for e in events(kit)]
    assert kinds[2:] == [("void", str(first.event_id)), ("departure", str(second.event_id))]


def test_a_second_void_of_the_same_record_from_another_form_is_refused(kit):
    kit.services.handle_payload(kit.badge("C001"), "camera")
    (scan,) = events(kit)
    client = kit.app.test_client()
    login(client)
    post_form(client, kit.app, "/lead/void", event_id=str(scan.event_id), reason="一")
    post_form(client, kit.app, "/lead/void", event_id=str(scan.event_id), reason="二")
    assert [e.kind for e in events(kit)] == ["arrival", "void"]
    assert flashes(client)[-1] == ("error", "此记录已作废。")


def test_a_key_sent_again_with_other_values_changes_nothing(kit):
    client = kit.app.test_client()
    login(client)
    key = form_key(kit.app)
    post_form(client, kit.app, "/lead/manual", key=key, cadre_id="C001", kind="arrival", reason="a")
    post_form(client, kit.app, "/lead/manual", key=key, cadre_id="C002", kind="arrival", reason="a")
    assert [e.cadre_id for e in events(kit)] == ["C001"]
    assert flashes(client)[-1][0] == "error"


def test_a_refused_form_may_be_sent_again_once_corrected(kit):
    client = kit.app.test_client()
    login(client)
    key = form_key(kit.app)
    post_form(client, kit.app, "/lead/manual", key=key, cadre_id="C001", kind="arrival", reason=" ")
    assert events(kit) == []
    # Same key, same fields: the same refusal, still nothing recorded.
    post_form(client, kit.app, "/lead/manual", key=key, cadre_id="C001", kind="arrival", reason=" ")
    assert events(kit) == [] and flashes(client)[-1] == ("error", "请填写原因。")


def test_a_form_without_a_key_or_with_an_old_one_is_refused(kit):
    client = kit.app.test_client()
    login(client)
    data = {"csrf_token": csrf(client), "cadre_id": "C001", "kind": "arrival", "reason": "x"}
    client.post("/lead/manual", data=data)
    client.post("/lead/manual", data={**data, "form_key": "1.2.3"})
    old = form_key(kit.app)
    receipts = kit.app.extensions["lead_forms"]
    receipts._wall = lambda: __import__("time").time() + 25 * 3600  # a day and an hour later
    client.post("/lead/manual", data={**data, "form_key": old})
    assert events(kit) == []
    assert {f for _, f in flashes(client)} == {"此表单已过期，未提交：请重新填写。"}


def test_a_replayed_clock_post_does_not_set_the_clock_back(kit):
    kit.clock.set_synchronized(False)
    client = kit.app.test_client()
    login(client)
    key = form_key(kit.app)
    phone_ms = str(int((kit.clock.now() + timedelta(hours=2)).timestamp() * 1000))
    post_form(client, kit.app, "/lead/clock", key=key, phone_time_ms=phone_ms)
    offset = kit.services.keeper.read().offset
    assert abs(offset - timedelta(hours=2)) < timedelta(seconds=1)
    answer = flashes(client)[-1]
    # Ten minutes later the same POST comes again (a reloaded tab): its phone time is now
    # ten minutes old and must not be taken as the time.
    kit.clock.advance(minutes=10)
    kit.monotonic[0] += 600
    post_form(client, kit.app, "/lead/clock", key=key, phone_time_ms=phone_ms)
    assert abs(kit.services.keeper.read().offset - offset) < timedelta(seconds=1)
    assert flashes(client)[-1] == answer


def test_the_clock_api_answers_once_per_idempotency_key(kit):
    kit.clock.set_synchronized(False)
    client = kit.app.test_client()
    login(client)
    phone_ms = int((kit.clock.now() + timedelta(hours=1)).timestamp() * 1000)
    headers = {"X-CSRF-Token": csrf(client), "Idempotency-Key": "phone-1"}
    first = client.post("/lead/api/clock", json={"phone_time_ms": phone_ms}, headers=headers)
    kit.clock.advance(minutes=10)
    again = client.post("/lead/api/clock", json={"phone_time_ms": phone_ms}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    other = client.post("/lead/api/clock", json={"phone_time_ms": phone_ms + 1}, headers=headers)
    assert other.status_code == 409
    missing = client.post(
        "/lead/api/clock", json={"phone_time_ms": phone_ms}, headers={"X-CSRF-Token": csrf(client)}
    )
    assert missing.status_code == 400


def login_error(response) -> str:
    page = response.get_data(as_text=True)
    start = page.index('id="login-error"')
    return page[page.index(">", start) + 1 : page.index("</div>", start)]


def test_a_double_tapped_wrong_pin_counts_once(kit):
    client = kit.app.test_client()
    client.get("/lead/login")
    key = form_key(kit.app)
    data = {"pin": "0000", "csrf_token": csrf(client), "form_key": key}
    first = client.post("/lead/login", data=data)
    second = client.post("/lead/login", data=data)
    assert first.status_code == second.status_code == 401
    assert login_error(first) == login_error(second)
    assert "9" in login_error(second)  # nine tries left, not eight
    # One failure counted against this address (the guard on disk), not two.
    assert kit.services.pin_guard._entries["127.0.0.1"]["failures"] == 1
    # The right PIN on a fresh form logs in.
    ok = client.post(
        "/lead/login", data={"pin": PIN, "csrf_token": csrf(client), "form_key": form_key(kit.app)}
    )
    assert ok.status_code == 302


def test_the_language_link_is_idempotent(kit):
    client = kit.app.test_client()
    login(client)
    first = client.get("/lang/en?next=/lead/%3Fq%3Dsx")
    second = client.get("/lang/en?next=/lead/%3Fq%3Dsx")
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"] == "/lead/?q=sx"

    def lang_cookie(response) -> list[str]:
        return [c for c in response.headers.getlist("Set-Cookie") if c.startswith("lang=")]

    assert lang_cookie(first) == lang_cookie(second) and len(lang_cookie(first)) == 1


def test_a_crash_between_recording_and_answering_is_answered_from_the_log(kit):
    """The receipt said "pending" and the event is in the log: the replay finds it by its id."""
    client = kit.app.test_client()
    login(client)
    key = form_key(kit.app)
    receipts = kit.app.extensions["lead_forms"]
    form = {"cadre_id": "C001", "kind": "arrival", "reason": "x"}
    fields = receipts.fields_digest(form)
    from kiosk.web.forms import Receipt

    receipts.put(Receipt(receipts.digest(key), "manual", fields, "pending", 1e10))
    kit.services.rules.manual(
        "C001", "arrival", operator="张组长", reason="x", event_id=receipts.event_id(key)
    )
    post_form(client, kit.app, "/lead/manual", key=key, **form)
    assert [e.cadre_id for e in events(kit)] == ["C001"]
    assert flashes(client)[-1] == ("ok", "此项已记录。")


def test_receipts_file_survives_a_torn_last_line(tmp_path, issuing_key):
    kit = make_kit(tmp_path, issuing_key)
    client = kit.app.test_client()
    login(client)
    key = form_key(kit.app)
    post_form(client, kit.app, "/lead/manual", key=key, cadre_id="C001", kind="arrival", reason="x")
    kit.services.stop()
    path = kit.instance / "lead-forms.jsonl"
    lines = path.read_bytes().splitlines()
    assert all(json.loads(line)["key"] != key for line in lines)  # the key itself is not kept
    path.write_bytes(path.read_bytes() + b'{"key": "torn')
    again = make_kit(tmp_path, issuing_key, clock=kit.clock)
    try:
        client = again.app.test_client()
        login(client)
        post_form(
            client, again.app, "/lead/manual", key=key, cadre_id="C001", kind="arrival", reason="x"
        )
        assert len(events(again)) == 1
    finally:
        again.services.stop()


def test_old_receipts_are_dropped_while_the_kiosk_runs(tmp_path, monkeypatch):
    from kiosk.web import forms

    monkeypatch.setattr(forms, "COMPACT_EVERY", 10)
    now = [1_000_000.0]
    receipts = forms.FormReceipts(tmp_path / "lead-forms.jsonl", b"k" * 32, wall=lambda: now[0])
    first = receipts.issue()
    receipts.put(forms.Receipt(receipts.digest(first), "manual", "f", "done", now[0]))
    now[0] += forms.RECEIPT_KEEP_S + 1
    for n in range(9):
        key = receipts.issue()
        receipts.put(forms.Receipt(receipts.digest(key), "manual", str(n), "done", now[0]))
    assert receipts.get(first) is None
    lines = (tmp_path / "lead-forms.jsonl").read_text().splitlines()
    assert len(lines) == 9  # the old one gone from the file too
    assert (tmp_path / "lead-forms.jsonl").stat().st_mode & 0o777 == 0o600
