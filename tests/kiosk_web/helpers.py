"""Helpers for the kiosk web tests: an app over a temporary instance, fake clock, badges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.app import create_app
from kiosk.lead_auth import AUTH_FILE, LeadAuth
from kiosk.roster import CadreEntry, RosterSnapshot, RosterStore
from kiosk.settings import KioskSettings
from sync.badge_token import issue_token, key_id_of, public_key_to_text
from tests.fakes.clock import FakeClock

CST = ZoneInfo("Asia/Shanghai")
PIN = "2468"
# scrypt at a tiny cost: logging in is checked the same way, without the deliberate cost of the
# real one in every test (tests/security covers that one).
TEST_PIN_METHOD = "scrypt:512:8:1"
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
CADRES = {
    "C001": CadreEntry(name="宋昕", unit="东湖街道办", site_id="site-1"),
    "C002": CadreEntry(name="李明", unit="城建局", site_id="site-1"),
    "C003": CadreEntry(name="王芳", unit="卫健委", site_id="site-1"),
}


@dataclass
class Kit:
    """What a test needs: the app, its services, the clock, badges and the instance folder."""

    app: object
    clock: FakeClock
    instance: Path
    key: Ed25519PrivateKey
    monotonic: list[float]

    @property
    def services(self):
        return self.app.extensions["kiosk"]

    def badge(self, cadre_id: str, serial: int = 1) -> str:
        return issue_token(self.key, cadre_id, serial, date(2026, 11, 1))


def write_roster(instance: Path, key: Ed25519PrivateKey) -> None:
    public = key.public_key()
    RosterStore(instance).save(
        RosterSnapshot(
            version=3,
            site_id="site-1",
            cadres=CADRES,
            public_keys={key_id_of(public): public_key_to_text(public)},
        )
    )


def kiosk_settings(**overrides: object) -> KioskSettings:
    values: dict[str, object] = {
        "kiosk_id": "kiosk-t1",
        "site_id": "site-1",
        "site_name": "东湖街道集合点",
        "camera_source": "demo",
    }
    values.update(overrides)
    return KioskSettings(**values)


def make_kit(
    tmp_path: Path,
    key: Ed25519PrivateKey,
    *,
    scan_loop_factory: Callable[[Any], Any] | None = None,
    clock: FakeClock | None = None,
    **overrides: object,
) -> Kit:
    instance = tmp_path / "instance"
    instance.mkdir(exist_ok=True)
    if not (instance / "roster.json").exists():
        write_roster(instance, key)
    if "lead_pin" not in overrides and not (instance / AUTH_FILE).exists():
        LeadAuth(instance, 12).set_pin(PIN, method=TEST_PIN_METHOD)
    clock = clock or FakeClock(datetime(2026, 11, 29, 5, 20, tzinfo=CST))
    monotonic = [1000.0]
    app = create_app(
        instance,
        kiosk_settings(**overrides),
        clock=clock,
        scan_loop_factory=scan_loop_factory or (lambda services: None),
        monotonic=lambda: monotonic[0],
    )
    app.config["TESTING"] = True
    return Kit(app, clock, instance, key, monotonic)


def login(client, pin: str = PIN, name: str = "张组长") -> object:
    client.get("/lead/login")
    with client.session_transaction() as session:
        token = session.get("csrf_token", "")
    return client.post("/lead/login", data={"pin": pin, "name": name, "csrf_token": token})


def csrf(client) -> str:
    with client.session_transaction() as session:
        return session["csrf_token"]


def form_key(app) -> str:
    """A one-time form key, as the lead page puts one in each form it renders (a placeholder on
    a kiosk without them, so these tests show what such a kiosk does with a form sent twice)."""
    forms = app.extensions.get("lead_forms")
    return forms.issue() if forms is not None else "no-form-keys-on-this-kiosk"


def post_form(client, app, path: str, key: str | None = None, **form: str):
    """POST a lead form as the page would: the session's CSRF token and a one-time key."""
    data = {"csrf_token": csrf(client), "form_key": key or form_key(app), **form}
    return client.post(path, data=data)


def flashes(client) -> list[tuple[str, str]]:
    """The answers waiting in the session (shown on the next page), without consuming them."""
    with client.session_transaction() as session:
        return list(session.get("_flashes", []))
