"""Hostile values in every header, cookie and token both apps read: never a server error.

The walks of test_api_garbage.py send hostile forms, queries, paths and bodies with valid tokens;
these send the tokens themselves (CSRF, screen, one-time form tokens, the kiosk's bearer token and
nonce), every request header the apps look at, and the cookies, with non-ASCII text (as a browser
sends it and as raw UTF-8 bytes read as latin-1, which is what WSGI hands over), overlong and
binary values. A CSRF token of "é" was an HTTP 500 on both apps (issue 11, row 13).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.protocol import API_PREFIX
from tests.central_web.helpers import csrf_of
from tests.kiosk_web.helpers import LOCAL, csrf, login
from tests.robustness.conftest import Centre
from tests.robustness.test_api_garbage import (
    EXAMPLES,
    SESSION_ENDPOINTS,
    SLOW_ENDPOINTS,
    assert_answered,
    fill,
    routes,
)


def wire(text: str) -> str:
    """`text` as its UTF-8 bytes arrive in a WSGI header: each byte one latin-1 character."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def as_header(text: str) -> str:
    """A token drawn for a form, sent as a header instead: no line breaks (HTTP has none in a
    value), at most 8,000 bytes."""
    return wire(text).replace("\r", "").replace("\n", "")[:8000]


HOSTILE_WIRE = [
    "",
    " ",
    "é",
    "ÿþ",
    wire("宋昕"),
    wire("\u202e"),
    wire("\udcff"),
    "\x00",
    "\x7f\x80\xff",
    "x" * 8000,
    "%00",
    "%ff%fe",
    "=cmd|' /C calc'!A0",
    "../../etc/passwd",
    "Bearer ",
    "Bearer " + wire("宋昕"),
    "1e999",
    "-1",
    "99999999999999999999999",
    "a" * 64,
    "a" * 65,
]
# Overlong cookies are the point; werkzeug's warning that browsers would drop them is not news.
pytestmark = pytest.mark.filterwarnings("ignore:The '.*' cookie is too large")
latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
hostile_wire = st.one_of(st.sampled_from(HOSTILE_WIRE), st.text(alphabet=latin1, max_size=40))
# Tokens as form fields: any text at all (a form carries UTF-8, decoded by the app).
hostile_token = st.one_of(
    st.sampled_from([*HOSTILE_WIRE, "宋昕", "\u202e", "x" * 100_000]), st.text(max_size=40)
)

KIOSK_HEADERS = [
    "X-CSRF-Token",
    "X-Screen-Token",
    "Last-Event-ID",
    "Accept-Language",
    "Accept",
    "Referer",
    "Origin",
    "User-Agent",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "If-Modified-Since",
    "Range",
]
STAFF_HEADERS = [
    "X-CSRF-Token",
    "X-Form-Token",
    "Accept-Language",
    "Accept",
    "Referer",
    "Origin",
    "User-Agent",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "If-Modified-Since",
    "Range",
]
API_HEADERS = [
    "Authorization",
    "X-Cadre-Nonce",
    "X-Kiosk-Clock",
    "Accept",
    "User-Agent",
    "X-Forwarded-For",
]


def headers_from(names: list[str]) -> Any:
    return st.dictionaries(st.sampled_from(names), hostile_wire, max_size=len(names))


# ---------------------------------------------------------------------------- the kiosk


@EXAMPLES
@given(headers=headers_from(KIOSK_HEADERS), token=hostile_token, cookie=hostile_wire)
def test_every_kiosk_route_takes_hostile_headers_tokens_and_cookies(kit, headers, token, cookie):
    lead = kit.app.test_client()
    login(lead)
    lead.get("/lead/", environ_base=LOCAL)
    valid = csrf(lead)
    stranger = kit.app.test_client()  # a browser whose cookies are garbage
    stranger.set_cookie("kiosk_session", cookie)
    stranger.set_cookie("lang", cookie)
    for endpoint, rule, method in routes(kit.app):
        if endpoint in SESSION_ENDPOINTS:
            continue
        path = fill(rule, "x")
        for client in (lead, stranger):
            if method == "GET":
                response = client.get(path, headers=headers, environ_base=LOCAL)
            else:
                response = client.post(
                    path,
                    data={"csrf_token": token, "cadre_id": "C001", "reason": "r"},
                    headers=headers,
                    environ_base=LOCAL,
                )
            assert_answered(
                response, f"{method} {path} headers={headers!r:.120} token={token!r:.40}"
            )
    # With a valid CSRF token, the screen's and the form's other fields still hostile.
    response = lead.post(
        "/screen/wedge",
        json={"payload": "CB1X"},
        headers={**headers, "X-CSRF-Token": valid, "X-Screen-Token": as_header(token)},
        environ_base=LOCAL,
    )
    assert_answered(response, "screen token")
    # Logging in with hostile everything.
    anonymous = kit.app.test_client()
    anonymous.set_cookie("lang", cookie)
    anonymous.get("/lead/login", headers=headers, environ_base=LOCAL)
    response = anonymous.post(
        "/lead/login",
        data={"csrf_token": token, "pin": token, "name": token, "next": token},
        headers=headers,
        environ_base=LOCAL,
    )
    assert_answered(response, f"lead login token={token!r:.40}")
    assert kit.services.log.last_seq == 0


# ---------------------------------------------------------------------------- the centre


@EXAMPLES
@given(
    headers=headers_from(STAFF_HEADERS),
    csrf_value=hostile_token,
    form_token=hostile_token,
    cookie=hostile_wire,
)
def test_every_staff_route_takes_hostile_headers_tokens_and_cookies(
    any_store_centre: Centre, headers, csrf_value, form_token, cookie
):
    centre = any_store_centre
    admin = centre.admin
    csrf_of(admin)
    stranger = centre.app.test_client()
    stranger.set_cookie("central_session", cookie)
    for endpoint, rule, method in routes(centre.app, "/staff"):
        if endpoint in SESSION_ENDPOINTS | SLOW_ENDPOINTS:
            continue
        path = fill(rule, "S01")
        for client in (admin, stranger):
            if method == "GET":
                response = client.get(path, headers=headers)
            else:
                response = client.open(
                    path,
                    method=method,
                    data={"csrf_token": csrf_value, "form_token": form_token, "site_id": "S01"},
                    headers=headers,
                )
            assert_answered(response, f"{method} {path} headers={headers!r:.120}")
    # A valid CSRF token, a hostile one-time form token (in the form and in its header).
    for data, extra in (
        ({"csrf_token": csrf_of(admin), "form_token": form_token}, {}),
        ({"csrf_token": csrf_of(admin)}, {"X-Form-Token": as_header(form_token)}),
    ):
        response = admin.post(
            "/staff/badges/revoke",
            data={**data, "cadre_id": "NOBODY"},
            headers={**headers, **extra},
        )
        assert_answered(response, f"form token {form_token!r:.40}")
    anonymous = centre.app.test_client()
    anonymous.get("/staff/login", headers=headers)
    response = anonymous.post(
        "/staff/login",
        data={"csrf_token": csrf_value, "username": csrf_value, "password": form_token},
        headers=headers,
    )
    assert_answered(response, f"staff login {csrf_value!r:.40}")


@EXAMPLES
@given(headers=headers_from(API_HEADERS))
def test_every_kiosk_api_route_takes_hostile_headers(any_store_centre: Centre, headers):
    centre = any_store_centre
    client = centre.app.test_client()
    for _endpoint, rule, method in routes(centre.app, API_PREFIX):
        for auth in (None, f"Bearer {centre.kiosk_token}"):
            sent = dict(headers)
            if auth and "Authorization" not in sent:
                sent["Authorization"] = auth
            response = client.open(rule, method=method, json={"roster_version": 0}, headers=sent)
            assert_answered(response, f"{method} {rule} headers={sent!r:.160}")
            assert response.mimetype == "application/json"
