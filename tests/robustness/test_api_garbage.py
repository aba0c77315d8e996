"""Garbage at every route of both apps: never a server error, always an answer a client can read.

The routes are taken from each app's URL map, so a route added later is walked too. Each gets
bodies that are not JSON, not UTF-8, JSON of the wrong shape and type, deeply nested, with huge
numbers and dates at the ends of the calendar; forms with hostile values in every field; hostile
query strings and path arguments. The kiosk API is walked with a valid kiosk token and without,
the staff pages as an admin, the site lead's pages logged in. A status below 500 and a JSON or
HTML error body are the pass mark; what each route should say is the other suites' business.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from central.jobs import store as job_store
from central.services import central_of
from sync.events import GENESIS_HASH, seal
from sync.protocol import API_PREFIX
from tests.central_web.helpers import csrf_of
from tests.kiosk_web.helpers import LOCAL, csrf, form_key, login
from tests.robustness.conftest import Centre

EXAMPLES = settings(
    # bench/fuzz.py runs these properties far longer through this variable.
    max_examples=int(os.environ.get("ROBUSTNESS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Served files and endless streams are not request handlers to fuzz (the streams are checked
# below with hostile headers only).
SKIPPED_ENDPOINTS = {"static", "staff.static", "screen.stream", "screen.preview"}
# Logging out would end the walk's session; logging in is walked anonymously.
SESSION_ENDPOINTS = {"staff.logout", "staff.login", "lead.logout", "lead.login"}
# A badge sheet takes a third of a second to draw: walked with a fixed list of values instead.
SLOW_ENDPOINTS = {"staff.badges_print"}

INT64_MAX = 2**63 - 1
HUGE_NUMBERS: list[Any] = [
    INT64_MAX,
    INT64_MAX + 1,
    2**64,
    10**30,
    -(2**63) - 1,
    -1,
    1e308,
    -1e308,
    1.5,
    float("nan"),
    float("inf"),
]
HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "=cmd|' /C calc'!A0",
    "\u202e",
    "宋昕" * 40,
    "x" * 10_000,
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01",
    "9999-12-31",
    "2026-13-45T25:61",
    "99999999999999999999999",
    "-1",
    "1e999",
    "NaN",
    "S01",
    "C001",
    "arrival",
    "departure",
    "void",
    "add",
    "replace",
    "csv",
    "xlsx",
    "//evil.example/",
    "/\\evil.example",
]
# A lone surrogate travels in JSON only (as \\ud800); a form or URL cannot carry one.
HOSTILE_VALUES: list[Any] = [
    *HUGE_NUMBERS,
    *HOSTILE_TEXT,
    "\ud800",
    None,
    True,
    [],
    {},
    [1, "a"],
    {"a": 1},
]

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(HOSTILE_VALUES),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def raw_bodies() -> Iterator[tuple[str, bytes | str]]:
    """(content type, body) pairs no handler can take at face value."""
    json_type = "application/json"
    yield json_type, b""
    yield json_type, b"{"
    yield json_type, b"\xff\xfe\x00{\x00}"  # not UTF-8
    yield json_type, b'{"a": "\xc3\x28"}'  # invalid UTF-8 inside a string
    yield json_type, b"null"
    yield json_type, b"[]"
    yield json_type, b'"text"'
    yield json_type, b"12345678901234567890123456789012345678901234567890"
    yield json_type, b"1e999"
    yield json_type, b"NaN"
    yield json_type, b'{"a": NaN, "b": Infinity}'
    yield json_type, deep(20_000)
    yield json_type, b'{"a":' * 5_000 + b"1" + b"}" * 5_000
    yield json_type, b'{"payload": {"payload": [1, 2]}, "kind": ["arrival"], "events": "x"}'
    yield json_type, json.dumps({"code": None, "events": None, "kiosk_id": 5}).encode()
    yield "text/plain", b"hello"
    yield "application/x-www-form-urlencoded", b"a=%ZZ&b=%00&%E4=\xff"
    yield "multipart/form-data; boundary=x", b"--x\r\nbroken"
    yield "multipart/form-data", b"no boundary given"
    yield "application/xml", b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>"


def assert_answered(response: TestResponse, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.data[:300]!r}"
    if response.status_code >= 400:
        kind = response.mimetype
        assert kind in ("application/json", "text/html"), f"{what}: {kind}"
        body = response.get_data()
        assert body.strip(), f"{what}: empty error body"
        if kind == "application/json":
            assert isinstance(json.loads(body), dict), what


def routes(app: Flask, prefix: str = "") -> list[tuple[str, str, str]]:
    """(endpoint, rule, method) of every handler under `prefix`."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED_ENDPOINTS or not rule.rule.startswith(prefix):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, rule.rule, method))
    return found


def fill(rule: str, value: str) -> str:
    """The rule's path with every <argument> replaced by `value` (URL-quoted)."""
    from urllib.parse import quote

    out, rest = "", rule
    while "<" in rest:
        head, _, tail = rest.partition("<")
        _, _, rest = tail.partition(">")
        out += head + quote(value, safe="")
    return out + rest


# ---------------------------------------------------------------------------- the kiosk API


def api_call(client: FlaskClient, method: str, path: str, token: str | None, **kwargs: Any):
    headers = dict(kwargs.pop("headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.open(path, method=method, headers=headers, **kwargs)


def test_every_kiosk_api_route_answers_garbage_with_a_json_error(any_store_centre: Centre):
    centre = any_store_centre
    client = centre.app.test_client()
    walked = routes(centre.app, API_PREFIX)
    assert {rule for _e, rule, _m in walked} >= {f"{API_PREFIX}/events", f"{API_PREFIX}/pull"}
    for endpoint, rule, method in walked:
        for token in (centre.kiosk_token, None):
            for content_type, body in raw_bodies():
                response = api_call(
                    client, method, rule, token, data=body, content_type=content_type
                )
                assert_answered(response, f"{method} {rule} {content_type} {body[:40]!r}")
                assert response.mimetype == "application/json", endpoint
        for header in ("Bearer", "Bearer ", "Basic abc", "Bearer " + "x" * 5000, "Bearer \x7f"):
            response = client.open(rule, method=method, headers={"Authorization": header})
            assert_answered(response, f"{method} {rule} Authorization {header[:20]!r}")


def hostile_event(centre: Centre, field: str, value: Any) -> dict[str, Any]:
    """A sealed event (valid hash) with one field hostile; unsealed when it cannot be sealed."""
    fields: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "kiosk_id": centre.kiosk_id,
        "site_id": centre.site_id,
        "seq": 1,
        "cadre_id": "C001",
        "badge_serial": 1,
        "kind": "arrival",
        "source": "camera",
        "device_time": "2026-11-29T05:20:00+08:00",
        "boot_id": "boot-1",
        "monotonic_ns": 1_000,
        "clock_trusted": True,
        "prev_hash": GENESIS_HASH,
    }
    fields[field] = value
    try:
        return seal(fields).wire()
    except ValueError:
        return dict(fields, hash="0" * 64)


EVENT_FIELDS = [
    "event_id",
    "seq",
    "cadre_id",
    "badge_serial",
    "kind",
    "source",
    "device_time",
    "boot_id",
    "monotonic_ns",
    "clock_trusted",
    "operator",
    "reason",
    "corrects",
    "flags",
    "prev_hash",
]

HEARTBEAT = {
    "app_version": "1.0",
    "queue_length": 0,
    "last_scan_at": "2026-11-29T05:20:00+08:00",
    "camera": {"ok": True, "detail": ""},
    "clock": {
        "trusted": True,
        "offset_s": 0.5,
        "boot_id": "boot-1",
        "samples": [
            {
                "boot_id": "boot-1",
                "monotonic_ns": 1_000,
                "device_time": "2026-11-29T05:20:00+08:00",
                "offset_s": 0.5,
                "rtt_s": 0.1,
                "source": "centre",
            }
        ],
    },
    "disk_free_bytes": 1_000_000,
    "ready": True,
    "ready_detail": "",
    "sent_at": "2026-11-29T05:20:00+08:00",
}
PULL = {"roster_version": 0, "keys_version": "", "settings_version": 0}
ENROL = {"code": "ABCD-EFGH-IJKL-MNOP", "hostname": "pi", "app_version": "1.0"}


def leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaf_paths(v, (*prefix, k))] or [prefix]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in leaf_paths(v, (*prefix, i))] or [prefix]
    return [prefix]


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copy


def post_json(client: FlaskClient, path: str, token: str | None, body: Any) -> TestResponse:
    # json.dumps writes NaN and Infinity as bare words, as a broken client might.
    return api_call(
        client, "POST", path, token, data=json.dumps(body), content_type="application/json"
    )


def test_pushed_events_with_a_hostile_field_are_answered_not_crashed_on(
    any_store_centre: Centre,
):
    centre = any_store_centre
    client = centre.app.test_client()
    for field in EVENT_FIELDS:
        for value in HOSTILE_VALUES:
            event = hostile_event(centre, field, value)
            body = {"kiosk_id": centre.kiosk_id, "events": [event]}
            response = post_json(client, f"{API_PREFIX}/events", centre.kiosk_token, body)
            assert_answered(response, f"event {field}={value!r:.60}")
            if value == "\ud800":
                # Not even JSON a kiosk could write (a lone surrogate): the batch is malformed.
                assert response.status_code == 400
                continue
            # One bad event is answered for (rejected, kept for staff), so the kiosk moves on.
            assert response.status_code == 200, (field, value)
            (result,) = response.get_json()["results"]
            assert result["status"] in ("stored", "duplicate", "rejected")


def test_every_field_of_every_message_takes_hostile_values(any_store_centre: Centre):
    centre = any_store_centre
    client = centre.app.test_client()
    for route, template in (("heartbeat", HEARTBEAT), ("pull", PULL), ("enrol", ENROL)):
        token = None if route == "enrol" else centre.kiosk_token
        for path in leaf_paths(template):
            for value in HOSTILE_VALUES:
                body = replaced(template, path, value)
                response = post_json(client, f"{API_PREFIX}/{route}", token, body)
                assert_answered(response, f"{route} {'.'.join(map(str, path))}={value!r:.60}")


@EXAMPLES
@given(body=json_values)
def test_random_json_at_the_kiosk_api_is_refused_in_json(any_store_centre: Centre, body):
    centre = any_store_centre
    client = centre.app.test_client()
    for route in ("events", "pull", "heartbeat", "enrol"):
        response = post_json(client, f"{API_PREFIX}/{route}", centre.kiosk_token, body)
        assert_answered(response, f"{route} {body!r:.80}")
        assert response.mimetype == "application/json"


# ---------------------------------------------------------------------------- staff pages

FORM_FIELDS = [
    "username",
    "password",
    "next",
    "site_id",
    "name",
    "cadre_id",
    "cadre_ids",
    "layout",
    "action",
    "event_id",
    "reason",
    "kind",
    "time",
    "back",
    "pin",
    "phone_time_ms",
    "file",
]
QUERY_FIELDS = [
    "day",
    "from",
    "to",
    "site",
    "kind",
    "q",
    "next",
    "lang",
    "format",
    "what",
    "event",
]

hostile_text = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
forms = st.dictionaries(st.sampled_from(FORM_FIELDS), hostile_text, max_size=len(FORM_FIELDS))
queries = st.dictionaries(st.sampled_from(QUERY_FIELDS), hostile_text, max_size=6)
path_values = st.one_of(st.sampled_from([*HOSTILE_TEXT[:12], "S01", "C001"]), st.text(max_size=20))


def staff_request(
    client: FlaskClient, method: str, path: str, query: dict, form: dict
) -> TestResponse:
    if method == "GET":
        return client.get(path, query_string=query)
    data = dict(form, csrf_token=csrf_of(client))
    if "file" in form:
        data["file"] = (io.BytesIO(form["file"].encode("utf-8", "surrogatepass")), "r.csv")
    return client.open(
        path,
        method=method,
        query_string=query,
        data=data,
        headers={"X-CSRF-Token": csrf_of(client)},
    )


@EXAMPLES
@given(query=queries, form=forms, argument=path_values)
def test_every_staff_route_answers_hostile_forms_and_queries(
    any_store_centre: Centre, query, form, argument
):
    client = any_store_centre.admin
    centre = any_store_centre
    for endpoint, rule, method in routes(centre.app, "/staff"):
        if endpoint in SESSION_ENDPOINTS | SLOW_ENDPOINTS:
            continue
        path = fill(rule, argument)
        response = staff_request(client, method, path, query, form)
        assert_answered(response, f"{method} {path} query={query!r:.80} form={form!r:.80}")


def test_badge_printing_answers_hostile_fields(centre: Centre):
    client = centre.admin
    # Each field with the scope that reads it; the rest of the form is valid.
    for scope, field in (
        ("site", "site_id"),
        ("site", "layout"),
        ("site", "form_token"),
        ("ids", "cadre_ids"),
        ("all", "confirm_all"),
    ):
        for value in HOSTILE_TEXT:
            form = {"scope": scope, "site_id": "S01", "layout": "a6-on-a4", field: value}
            response = staff_request(client, "POST", "/staff/badges/print", {}, form)
            assert_answered(response, f"badges/print {scope} {field}={value!r:.60}")
    for value in HOSTILE_TEXT:
        response = staff_request(client, "POST", "/staff/badges/print", {}, {"scope": value})
        assert_answered(response, f"badges/print scope={value!r:.60}")
    # Whatever was queued runs to an end a person can read.
    central_of(centre.app).jobs.drain()
    for job in job_store.recent(centre.app.extensions["central"].engine, limit=500):
        assert job.state in ("done", "failed"), job


def test_every_staff_route_answers_raw_garbage_bodies(centre: Centre):
    client = centre.admin
    for endpoint, rule, method in routes(centre.app, "/staff"):
        if method == "GET" or endpoint in SESSION_ENDPOINTS | SLOW_ENDPOINTS:
            continue
        path = fill(rule, "S01")
        for content_type, body in raw_bodies():
            response = client.open(
                path,
                method=method,
                data=body,
                content_type=content_type,
                headers={"X-CSRF-Token": csrf_of(client)},
            )
            assert_answered(response, f"{method} {path} {content_type} {body[:40]!r}")


@EXAMPLES
@given(form=forms, query=queries)
def test_the_login_pages_answer_hostile_forms(centre: Centre, kit, form, query):
    staff = centre.app.test_client()
    staff.get("/staff/login")  # the login form gives the session its CSRF token
    response = staff_request(staff, "POST", "/staff/login", query, form)
    assert_answered(response, f"staff login {form!r:.80}")
    response = staff.get("/staff/login", query_string=query)
    assert_answered(response, f"staff login page {query!r:.80}")

    lead = kit.app.test_client()
    lead.get("/lead/login", environ_base=LOCAL)
    with lead.session_transaction() as session:
        token = session.get("csrf_token", "")
    response = lead.post(
        "/lead/login", query_string=query, data=dict(form, csrf_token=token), environ_base=LOCAL
    )
    assert_answered(response, f"lead login {form!r:.80}")


# ---------------------------------------------------------------------------- the kiosk


@EXAMPLES
@given(query=queries, form=forms, argument=path_values, body=json_values)
def test_every_kiosk_route_answers_hostile_forms_queries_and_json(kit, query, form, argument, body):
    client = kit.app.test_client()
    login(client)
    assert client.get("/lead/", environ_base=LOCAL).status_code == 200
    token = csrf(client)
    headers = {"X-CSRF-Token": token, "X-Screen-Token": kit.services.screen_token}
    for endpoint, rule, method in routes(kit.app):
        if endpoint in SESSION_ENDPOINTS:
            continue
        path = fill(rule, argument)
        if method == "GET":
            response = client.get(path, query_string=query, environ_base=LOCAL)
            assert_answered(response, f"GET {path} {query!r:.80}")
            continue
        response = client.post(
            path,
            query_string=query,
            data=dict(form, csrf_token=token),
            headers=headers,
            environ_base=LOCAL,
        )
        assert_answered(response, f"POST {path} form={form!r:.80}")
        response = client.post(
            path,
            data=json.dumps(body),
            content_type="application/json",
            headers=headers,
            environ_base=LOCAL,
        )
        assert_answered(response, f"POST {path} json={body!r:.80}")


def test_every_kiosk_route_answers_raw_garbage_bodies(kit):
    client = kit.app.test_client()
    login(client)
    client.get("/lead/", environ_base=LOCAL)
    headers = {"X-CSRF-Token": csrf(client), "X-Screen-Token": kit.services.screen_token}
    for endpoint, rule, method in routes(kit.app):
        if method == "GET" or endpoint in SESSION_ENDPOINTS:
            continue
        for content_type, body in raw_bodies():
            response = client.post(
                fill(rule, "x"),
                data=body,
                content_type=content_type,
                headers=headers,
                environ_base=LOCAL,
            )
            assert_answered(response, f"POST {rule} {content_type} {body[:40]!r}")
            if rule.startswith(("/lead/api/", "/screen/")):
                assert response.mimetype == "application/json", rule
    # Without a session the lead's API says so in JSON, whatever the body.
    anonymous = kit.app.test_client()
    response = anonymous.post("/lead/api/clock", data=deep(20_000), environ_base=LOCAL)
    assert response.status_code == 401 and response.mimetype == "application/json"


@pytest.mark.parametrize(
    "last_event_id",
    ["", "x", "-", "boot-", "{boot}-²", "{boot}-99999999999999999999999", "{boot}-1"],
)
def test_the_event_stream_takes_any_last_event_id(kit, last_event_id):
    header = last_event_id.replace("{boot}", kit.services.bus.boot)
    client = kit.app.test_client()
    response = client.get(
        "/stream", headers={"Last-Event-ID": header}, environ_base=LOCAL, buffered=False
    )
    try:
        assert response.status_code == 200, (header, response.status_code)
        first = next(iter(response.response))
        assert first.startswith(b"retry:")
    finally:
        response.close()


CALENDAR_ENDS = [
    "0001-01-01",
    "0001-01-02",
    "1899-12-31",
    "9000-01-02",
    "9999-12-31",
    "2026-02-30",
    "-1",
    "2026-11-29T00:00",
]


def test_every_page_takes_days_at_the_ends_of_the_calendar(centre: Centre, kit):
    lead = kit.app.test_client()
    login(lead)
    walks = [
        (centre.admin, routes(centre.app, "/staff"), "S01", {}),
        (lead, routes(kit.app, "/lead"), "csv", {"environ_base": LOCAL}),
    ]
    for client, walked, argument, extra in walks:
        for _endpoint, rule, method in walked:
            if method != "GET":
                continue
            path = fill(rule, argument)
            for field in ("day", "from", "to"):
                for value in CALENDAR_ENDS:
                    response = client.get(path, query_string={field: value}, **extra)
                    assert_answered(response, f"GET {path}?{field}={value}")


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00", "9999-12-31T23:59", "0001-01-01T00:00+14:00"]
)
def test_times_at_the_ends_of_the_calendar_in_correction_forms(centre: Centre, kit, value):
    client = centre.admin
    form = {
        "cadre_id": "C001",
        "action": "add",
        "kind": "arrival",
        "site_id": "S01",
        "reason": "test",
        "time": value,
    }
    response = staff_request(client, "POST", "/staff/corrections", {}, form)
    assert_answered(response, f"staff correction time={value}")

    lead = kit.app.test_client()
    login(lead)
    lead.get("/lead/", environ_base=LOCAL)
    for route in ("/lead/manual", "/lead/correct"):
        data = {
            "cadre_id": "C001",
            "kind": "arrival",
            "reason": "test",
            "time": value,
            "event_id": "x",
            "csrf_token": csrf(lead),
            "form_key": form_key(kit.app),
        }
        response = lead.post(route, data=data, environ_base=LOCAL, follow_redirects=True)
        assert_answered(response, f"{route} time={value}")
        page = response.get_data(as_text=True)
        # The lead reads words about the time, not a schema's validation report.
        assert "时间格式为 HH:MM。" in page and "validation error" not in page
    assert kit.services.log.last_seq == 0


def test_a_nul_character_in_a_staff_request_is_refused_before_any_query(
    any_store_centre: Centre,
):
    """PostgreSQL text cannot hold NUL: refused (400) whatever the store, not a 500 on one."""
    client = any_store_centre.admin
    for path in ("/staff/cadres?q=%00", "/staff/cadres/C%00", "/staff/anomalies?site=a%00b"):
        response = client.get(path)
        assert response.status_code == 400, path
        assert_answered(response, path)
    response = staff_request(client, "POST", "/staff/badges/revoke", {}, {"cadre_id": "C\x00"})
    assert response.status_code == 400
