"""Row 4: whoever sits between a kiosk and its centre.

Before: the centre URL could be plain http, and a pull answer replaced the kiosk's badge keys
wholesale and could set `screen_remote_allowed` and the camera: a proxy on the path made the kiosk
accept badges signed by its own key and show names and faces to anyone. Now the kiosk pinned the
centre's key at enrolment and takes no answer that key did not sign: a proxy that swaps the keys
and opens the screen is refused, the kiosk goes on scanning with what it had, and the lead's
readiness says why. (Plain http and settings that are never pushed: tests/sync/test_enrolment.py.)
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central import keys, kiosks, roster
from central.app import create_app as create_centre
from central.roster_file import RosterRow
from central.services import central_of
from kiosk import enrolment
from kiosk import settings as kiosk_settings
from kiosk.centre_trust import load_pinned
from kiosk.roster import RosterStore
from sync.badge_token import issue_token, key_id_of
from sync.centre_key import SIGNATURE_HEADER, sign_answer
from sync.client import CentralClient
from tests.fakes.faulty_proxy import FaultPlan, FaultyProxy
from tests.fakes.network import LoopbackServer
from tests.kiosk_web.helpers import LOCAL, login, make_kit

ATTACKER = Ed25519PrivateKey.generate()


def swap_keys_and_open_the_screen(sign: bool):
    """The man in the middle's edit of every pull answer: its own badge key in place of the
    centre's, and the kiosk screen opened to the network; signed with its own key, or not."""

    def tamper(path, sent, status, headers, body):
        if not path.endswith("/pull") or status != 200:
            return status, headers, body
        answer = json.loads(body)
        raw = ATTACKER.public_key().public_bytes_raw()
        answer["public_keys"] = {
            "version": "evil",
            "keys": [
                {
                    "key_id": key_id_of(ATTACKER.public_key()),
                    "public_key": base64.b64encode(raw).decode(),
                }
            ],
        }
        answer["settings"] = {
            "version": 99,
            "values": {"screen_remote_allowed": True, "camera_source": "url"},
        }
        changed = json.dumps(answer).encode()
        headers = dict(headers)
        if sign:
            headers[SIGNATURE_HEADER] = sign_answer(ATTACKER, "/pull", "", sent, 200, changed)
        return status, headers, changed

    return tamper


@pytest.fixture
def centre(tmp_path):
    instance = tmp_path / "central"
    app = create_centre(instance)
    keys.create_issuing_key(central_of(app).settings.issuing_key_path(instance))
    roster.import_roster(
        central_of(app).engine,
        [
            RosterRow(2, "C001", "宋昕", "一组", "S01", "东门"),
            RosterRow(3, "C002", "李明", "一组", "S01", "东门"),
        ],
    )
    server = LoopbackServer(app)
    yield app, server.url
    server.close()
    central_of(app).engine.dispose()


def wait_until(check, what: str, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what}")


@pytest.mark.parametrize("sign", [False, True], ids=["re-sent-as-is", "signed-by-attacker"])
def test_a_proxy_that_swaps_the_keys_and_opens_the_screen_is_refused(centre, tmp_path: Path, sign):
    app, url = centre
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "kiosk.toml").write_text("sync_plain_http_allowed = true  # loopback\n")
    new = kiosks.add_kiosk(central_of(app).engine, "S01", datetime.now(UTC), timedelta(hours=1))
    enrolment.enroll(
        instance, url, new.code, central_of(app).signer.fingerprint(), client=CentralClient(url)
    )
    keys_before = RosterStore(instance).current.public_keys
    toml_before = (instance / "kiosk.toml").read_text()

    host, port = url.removeprefix("http://").rstrip("/").split(":")
    proxy = FaultyProxy(host, int(port), FaultPlan(), tamper=swap_keys_and_open_the_screen(sign))
    proxy.start()
    issuing = keys.load_issuing_key(
        central_of(app).settings.issuing_key_path(central_of(app).instance)
    )
    kit = make_kit(
        tmp_path,
        issuing,
        kiosk_id=new.kiosk_id,
        site_id="S01",
        central_url=proxy.url,
        sync_plain_http_allowed=True,
        sync_interval_s=1.0,
        sync_backoff_base_s=0.1,
        sync_backoff_cap_s=0.5,
    )
    services = kit.services
    try:
        services.start()
        state = wait_until(
            lambda: (s := services.sync_state()).get("untrusted") and s,
            "the kiosk to refuse the tampered pull",
        )
        assert "answer refused" in state["last_error"]
        assert ("signed by key" in state["last_error"]) is sign
        # Nothing of the answer was taken: the badge keys, the settings, the files.
        assert RosterStore(instance).current.public_keys == keys_before
        assert (instance / "kiosk.toml").read_text() == toml_before
        assert kiosk_settings.load(instance, env={}).screen_remote_allowed is False
        assert load_pinned(instance).fingerprint == central_of(app).signer.fingerprint()
        # The attacker's badges are still refused; the real ones still check in.
        forged = issue_token(ATTACKER, "C002", 1, date(2026, 11, 1))
        assert services.handle_payload(forged, "camera")["outcome"] == "refused"
        outcome = services.handle_payload(kit.badge("C001"), "camera")
        assert outcome["outcome"] == "arrival"
        assert services.log.last_event("C001") is not None
        # The screen stays the Pi's own.
        remote = kit.app.test_client().get("/", environ_base={"REMOTE_ADDR": "192.0.2.9"})
        assert remote.status_code == 403
        # And the lead is told, on the readiness panel.
        lead = kit.app.test_client()
        login(lead)
        items = lead.get("/lead/api/readiness", environ_base=LOCAL).get_json()["items"]
        by_key = {item["key"]: item for item in items}
        assert (by_key["centre_key"]["state"], by_key["centre_key"]["code"]) == ("bad", "refused")
        assert "answer refused" in by_key["centre_key"]["values"]["detail"]
        page = lead.get("/lead/", environ_base=LOCAL).get_data(as_text=True)
        assert "中心密钥" in page and "已拒绝中心的回复" in page
        assert proxy.counts["pass"] > 0
    finally:
        services.stop()
        proxy.stop()
