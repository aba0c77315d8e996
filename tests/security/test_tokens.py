"""Row 13: a CSRF or screen token holding a non-ASCII character was an HTTP 500 on both apps
(`hmac.compare_digest` on two str raises TypeError). Now it is refused like any wrong token."""

from __future__ import annotations

import pytest

from sync.web_security import tokens_equal
from tests.central_web.helpers import csrf_of
from tests.kiosk_web.helpers import LOCAL, login

ODD_TOKENS = ["é", "宋昕", "\x00", "x" * 5000, "\udcff", "a\u202eb"]
# What fits an HTTP header (latin-1) from that list.
HEADER_TOKENS = ["é", "\xff\xfe", "x" * 5000, "\x7f"]


@pytest.mark.parametrize("sent", ODD_TOKENS)
def test_tokens_are_compared_as_bytes_whatever_they_hold(sent):
    assert tokens_equal("abc", sent) is False
    assert tokens_equal(sent, sent) is (sent != "")
    assert tokens_equal("", "") is False and tokens_equal(None, "x") is False


@pytest.mark.parametrize("token", [*HEADER_TOKENS, "宋昕"])
def test_the_kiosk_refuses_odd_tokens_without_a_server_error(kit, token):
    lead = kit.app.test_client()
    login(lead)
    form = lead.post("/lead/manual", data={"csrf_token": token, "cadre_id": "C001"}, **_local())
    assert form.status_code == 400, form.data[:200]
    if token in HEADER_TOKENS:
        api = lead.post("/lead/api/clock", json={}, headers={"X-CSRF-Token": token}, **_local())
        assert api.status_code == 400 and api.is_json
        screen = kit.app.test_client().post(
            "/screen/wedge", json={"payload": "x"}, headers={"X-Screen-Token": token}, **_local()
        )
        assert screen.status_code == 403 and screen.is_json
    # The login form too, with nothing but the cookie a GET gave.
    anonymous = kit.app.test_client()
    anonymous.get("/lead/login", **_local())
    response = anonymous.post("/lead/login", data={"csrf_token": token, "pin": "1"}, **_local())
    assert response.status_code == 400
    assert kit.services.log.last_seq == 0


@pytest.mark.parametrize("token", [*HEADER_TOKENS, "宋昕"])
def test_the_centre_refuses_odd_tokens_without_a_server_error(any_store_centre, token):
    centre = any_store_centre
    admin = centre.admin
    csrf_of(admin)
    form = admin.post("/staff/badges/revoke", data={"csrf_token": token, "cadre_id": "C001"})
    assert form.status_code == 400, form.data[:200]
    if token in HEADER_TOKENS:
        header = admin.post("/staff/badges/revoke", headers={"X-CSRF-Token": token})
        assert header.status_code == 400
    anonymous = centre.app.test_client()
    anonymous.get("/staff/login")
    response = anonymous.post(
        "/staff/login", data={"csrf_token": token, "username": "admin", "password": "x"}
    )
    assert response.status_code == 400


def _local() -> dict:
    return {"environ_base": dict(LOCAL)}


@pytest.mark.parametrize("token", ["\x00", "a\x00b", "\xff\xfe", "a b", "x" * 65])
def test_an_odd_one_time_form_token_is_refused_not_a_server_error(any_store_centre, token):
    """With a valid CSRF token, a one-time form token (X-Form-Token) that is not one of ours is
    refused before the database sees it: a NUL in it was an HTTP 500 on PostgreSQL (text cannot
    hold NUL), found by bench/fuzz.py."""
    centre = any_store_centre
    admin = centre.admin
    data = {"csrf_token": csrf_of(admin), "cadre_id": "NOBODY"}
    answer = admin.post("/staff/badges/revoke", data=data, headers={"X-Form-Token": token})
    assert answer.status_code == 400 and b"<title>400" in answer.data, answer.data[:200]
