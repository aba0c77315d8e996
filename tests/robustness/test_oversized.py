"""Bodies over the limits are refused with 413 before anyone reads them, on both apps.

The kiosk takes at most 64 KB anywhere (a phone's form, a wedge scan). The centre's kiosk API
takes `api_max_body_bytes`; its staff pages take small forms, and a roster file up to
`roster_max_upload_bytes`. The kiosk's server (waitress) refuses a big body while it arrives,
chunked or not, instead of spooling it to the SD card first.
"""

from __future__ import annotations

import io
import json
import select
import socket
from pathlib import Path

import pytest
import requests

from sync.protocol import API_PREFIX
from tests.central_web.helpers import csrf_of, log_in
from tests.kiosk_web.helpers import LOCAL, csrf, login
from tests.kiosk_web.live import live_kiosk
from tests.robustness.conftest import enrol_kiosk, make_centre

KIOSK_LIMIT = 64 * 1024


def assert_too_large(response, kind: str) -> None:
    assert response.status_code == 413, (response.status_code, response.data[:200])
    assert response.mimetype == kind
    assert response.get_data().strip()


# ---------------------------------------------------------------------------- the kiosk


@pytest.mark.parametrize("route", ["/screen/wedge", "/screen/mode", "/lead/api/clock"])
def test_kiosk_json_routes_refuse_bodies_over_64_kb(kit, route):
    client = kit.app.test_client()
    login(client)
    client.get("/lead/", environ_base=LOCAL)
    body = json.dumps({"payload": "A" * KIOSK_LIMIT, "phone_time_ms": 1}).encode()
    response = client.post(
        route,
        data=body,
        content_type="application/json",
        headers={"X-Screen-Token": kit.services.screen_token, "X-CSRF-Token": csrf(client)},
        environ_base=LOCAL,
    )
    assert_too_large(response, "application/json")
    assert kit.services.log.last_seq == 0


@pytest.mark.parametrize("route", ["/lead/manual", "/lead/login", "/lead/clock"])
def test_kiosk_forms_refuse_bodies_over_64_kb(kit, route):
    client = kit.app.test_client()
    login(client)
    client.get("/lead/", environ_base=LOCAL)
    form = {
        "cadre_id": "C001",
        "kind": "arrival",
        "reason": "x" * KIOSK_LIMIT,
        "csrf_token": csrf(client),
    }
    response = client.post(route, data=form, environ_base=LOCAL)
    assert_too_large(response, "text/html")
    assert kit.services.log.last_seq == 0


def send_until_answered(url: str, head: bytes, chunk: bytes, most: int) -> tuple[bytes, int]:
    """Send `head`, then `chunk` again and again (up to `most` bytes) until the server answers.
    (The answer's first bytes, bytes of body sent.)"""
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        while sent < most:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(10)
        try:
            answer = sock.recv(200)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    return answer, sent


@pytest.mark.parametrize("chunks", [False, True], ids=["length", "chunked"])
def test_the_kiosk_server_refuses_a_huge_body_as_it_arrives(tmp_path, issuing_key, chunks):
    """50 MB announced or streamed: refused after about the app's limit, not after 50 MB."""
    total = 50 * 1024 * 1024
    piece = b"A" * 8192
    if chunks:
        framing = b"Transfer-Encoding: chunked\r\n"
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    else:
        framing = f"Content-Length: {total}\r\n".encode()
        chunk = piece
    head = (
        b"POST /screen/wedge HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n" + framing + b"\r\n"
    )
    with live_kiosk(tmp_path, issuing_key) as live:
        answer, sent = send_until_answered(live.url, head, chunk, total)
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert sent < 4 * 1024 * 1024, sent
        # Still serving.
        assert requests.get(live.url + "/healthz", timeout=10).status_code == 200


# ---------------------------------------------------------------------------- the centre


@pytest.fixture
def small_centre(tmp_path: Path):
    from central import roster
    from central.roster_file import RosterRow

    app = make_centre(
        tmp_path / "central",
        api_max_body_bytes=64 * 1024,
        roster_max_upload_bytes=1024 * 1024,
    )
    roster.import_roster(
        app.extensions["central"].engine, [RosterRow(2, "C001", "宋昕", "u", "S01", "东湖站")]
    )
    yield app
    app.extensions["central"].engine.dispose()


@pytest.mark.parametrize("route", ["events", "pull", "heartbeat", "enrol"])
def test_the_kiosk_api_refuses_bodies_over_its_limit(small_centre, route):
    _kiosk_id, token = enrol_kiosk(small_centre, "S01")
    body = json.dumps({"kiosk_id": "x", "events": [{"pad": "x" * 70_000}]}).encode()
    response = small_centre.test_client().post(
        f"{API_PREFIX}/{route}",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_too_large(response, "application/json")
    assert response.get_json()["error"] == "too_large"


def test_a_roster_file_over_the_upload_limit_is_refused_and_nothing_imported(small_centre):
    client = small_centre.test_client()
    log_in(client, "admin")
    rows = "".join(f"C{n:06d},name {n},unit,S01,东湖站\n" for n in range(60_000))
    data = ("编号,姓名,单位,站点,站点名称\n" + rows).encode()
    assert len(data) > 1024 * 1024
    response = client.post(
        "/staff/roster/import",
        data={"file": (io.BytesIO(data), "big.csv"), "csrf_token": csrf_of(client)},
    )
    assert_too_large(response, "text/html")
    from central.roster import count_rows

    with small_centre.extensions["central"].engine.connect() as conn:
        assert count_rows(conn)["cadres"] == 1


def test_a_roster_file_under_the_upload_limit_is_still_taken(small_centre):
    """The roster's larger limit is not the other forms' small one."""
    client = small_centre.test_client()
    log_in(client, "admin")
    rows = "".join(f"C{n:06d},name {n},unit,S01,东湖站\n" for n in range(15_000))
    data = ("编号,姓名,单位,站点,站点名称\n" + rows).encode()
    assert 512 * 1024 < len(data) < 1024 * 1024
    response = client.post(
        "/staff/roster/import",
        data={"file": (io.BytesIO(data), "roster.csv"), "csrf_token": csrf_of(client)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


@pytest.mark.parametrize("route", ["/staff/login", "/staff/corrections", "/staff/kiosks/enrol"])
def test_staff_forms_refuse_big_bodies_before_reading_them(small_centre, route):
    """Not even a login form may park megabytes in the server's temp folder."""
    client = small_centre.test_client()
    if route != "/staff/login":
        log_in(client, "admin")
    else:
        client.get("/staff/login")
    upload = io.BytesIO(b"x" * (3 * 1024 * 1024))
    response = client.post(
        route,
        data={"file": (upload, "x.bin"), "csrf_token": csrf_of(client), "username": "admin"},
    )
    assert_too_large(response, "text/html")


def test_central_serve_caps_what_waitress_buffers(tmp_path, monkeypatch):
    """waitress reads a whole body before the app can refuse it; `central serve` bounds that."""
    import waitress
    from click.testing import CliRunner

    from central.cli import main as central_main

    instance = tmp_path / "centre"
    runner = CliRunner()
    assert runner.invoke(central_main, ["--instance", str(instance), "init"]).exit_code == 0
    (instance / "central.toml").write_text(
        "roster_max_upload_bytes = 2000000\napi_max_body_bytes = 500000\n", encoding="utf-8"
    )
    seen: dict[str, object] = {}
    monkeypatch.setattr(waitress, "serve", lambda app, **options: seen.update(options))
    result = runner.invoke(central_main, ["--instance", str(instance), "serve", "--port", "9"])
    assert result.exit_code == 0, result.output
    assert seen["max_request_body_size"] == 2_000_000
