"""A kiosk set up by showing its enrolment code: the set-up screen, what it answers to a badge
and to a damaged or used code, and the enrolment itself, after which the same running kiosk
records badges and syncs them, without a restart."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from central import kiosks
from central.app import create_app as create_centre
from central.db.schema import events
from central.services import central_of
from kiosk import enrolment
from kiosk.app import _default_sync_agent, create_app
from kiosk.settings import KioskSettings
from kiosk.setup import CameraEnrolment
from sync.centre_key import fingerprint as fingerprint_of
from sync.client import CentralClient
from sync.protocol import enrolment_qr_text
from tests.badges import badge, write_issuing_key
from tests.fakes.clock import FakeClock
from tests.fakes.network import WSGIAdapter, session_with
from tests.sync.helpers import load_roster

NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
URL = "http://centre.test/"


@pytest.fixture
def centre(tmp_path):
    write_issuing_key(tmp_path / "central" / "issuing_key.pem")
    app = create_centre(tmp_path / "central", now=lambda: NOW, config={"TESTING": True})
    load_roster(central_of(app).engine, {"S01": ["C1", "C2"]})
    return app


def said_in_the_end(heard, timeout: float = 30.0) -> str:
    """The reason of the first set-up message after "enrolling": how the attempt ended (the
    enrolment runs on a thread of its own; a loaded machine may take a while)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = heard.get(timeout=0.5)
        if message is not None and message.data.get("reason") not in (None, "enrolling"):
            return str(message.data["reason"])
    raise AssertionError("the set-up screen said nothing after 'enrolling'")


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def trusted_loopback(instance):
    instance.mkdir()
    (instance / "kiosk.toml").write_text("sync_plain_http_allowed = true  # in process\n")


def trusted_loopback_of(instance):
    trusted_loopback(instance)
    return instance


def test_a_fresh_kiosk_enrols_through_what_its_camera_reads(tmp_path, centre):
    session = session_with(WSGIAdapter(centre))
    engine = central_of(centre).engine
    fingerprint = central_of(centre).signer.fingerprint()
    trusted_loopback(tmp_path / "kiosk")
    kiosk = create_app(
        tmp_path / "kiosk",
        KioskSettings(),  # a fresh card: no id, no centre, no token
        clock=FakeClock(NOW),
        scan_loop_factory=lambda services: None,
        sync_agent_factory=lambda services: _default_sync_agent(services, session=session),
    )
    services = kiosk.extensions["kiosk"]
    setup = services.setup
    assert isinstance(setup, CameraEnrolment) and setup.waiting()
    setup.enrol = lambda url, code, fp: enrolment.enroll(
        services.instance,
        url,
        code,
        fp,
        client=CentralClient(url, session=session),
        event_log=services.log,
    )
    page = kiosk.test_client().get("/", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert "请出示签到机登记码" in page.get_data(as_text=True)
    services.start()
    try:
        # A badge is no enrolment code: said so, nothing recorded.
        said = services.handle_payload(badge("C1"), "camera")
        assert (said["outcome"], said["reason"]) == ("refused", "not_a_code")
        assert services.log.last_seq == 0
        said = services.handle_payload("CKE1|SHORT|" + URL, "camera")
        assert said["reason"] == "damaged"

        new = kiosks.add_kiosk(engine, "S01", NOW, timedelta(hours=1))
        # An old code names no centre key: not taken.
        said = services.handle_payload(f"CKE1|{new.code}|{URL}", "camera")
        assert said["reason"] == "old_code" and setup.waiting()
        # A code naming another centre's key (a forged QR, or an impostor at the address): the
        # kiosk asks the centre who it is, and sends no code to one that is not the code's.
        impostor = fingerprint_of(Ed25519PrivateKey.generate().public_key())
        heard = services.bus.subscribe()
        services.handle_payload(enrolment_qr_text(new.code, impostor, URL), "camera")
        assert said_in_the_end(heard) == "untrusted" and setup.waiting()
        assert not enrolment.load_token(services.instance)
        # The code was never sent, so it still works: shown again with the right key, it enrols.
        said = services.handle_payload(enrolment_qr_text(new.code, fingerprint, URL), "camera")
        assert said["reason"] == "enrolling"
        wait_for(lambda: not setup.waiting())
        assert (services.settings.kiosk_id, services.settings.site_id) == (new.kiosk_id, "S01")
        assert services.rules.kiosk_id == new.kiosk_id
        assert services.roster.current.public_keys and services.sync_agent is not None

        # The same kiosk, not restarted, now records badges and sends them.
        said = services.handle_payload(badge("C1"), "camera")
        assert said["outcome"] == "arrival", said
        services.sync_agent.wake()

        def stored() -> int:
            with engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(events)).scalar_one()

        wait_for(lambda: stored() == 1)
        # The code works once: showing it again to another fresh kiosk is refused, in words.
        other = create_app(
            trusted_loopback_of(tmp_path / "other"),
            KioskSettings(),
            clock=FakeClock(NOW),
            scan_loop_factory=lambda services: None,
        )
        second = other.extensions["kiosk"]
        second.setup.enrol = lambda url, code, fp: enrolment.enroll(
            second.instance,
            url,
            code,
            fp,
            client=CentralClient(url, session=session),
            event_log=second.log,
        )
        heard = second.bus.subscribe()
        second.handle_payload(enrolment_qr_text(new.code, fingerprint, URL), "camera")
        assert said_in_the_end(heard) == "used" and second.setup.waiting()
        second.stop()
    finally:
        services.stop()
