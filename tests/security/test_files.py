"""Rows 8, 9 and 11: what lies on the disks, and what an enrolment code carries.

- Row 8: the lead's PIN was kept in clear in kiosk.toml, and every rewrite of kiosk.toml (enrol,
  pull) made it 0644. Now the PIN is a scrypt hash (`kiosk set-pin`; a PIN in clear is moved
  out at start) and kiosk.toml keeps its mode.
- Row 9: `central kiosk add` left enrol-*.png with a live code at 0644 forever; central.db and
  central.toml were 0644. Now the instance folders are 0700, secrets and personal data 0600, and
  the QR image goes once its code is used or expired.
- Row 11: without public_url the staff page took the QR's address from the request's Host
  header. Now no code is made without public_url, and the Host never enters it.
"""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from PIL import Image

from central import cli as central_cli
from central import kiosks
from central.app import create_app
from central.services import central_of
from kiosk import cli as kiosk_cli
from kiosk.app import create_app as create_kiosk_app
from kiosk.lead_auth import AUTH_FILE
from tests.central_web.helpers import csrf_of
from tests.kiosk_web.helpers import login, write_roster


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_pin_in_clear_becomes_a_scrypt_hash_and_kiosk_toml_keeps_its_mode(tmp_path, issuing_key):
    instance = tmp_path / "kiosk"
    instance.mkdir(mode=0o755)
    write_roster(instance, issuing_key)
    settings_file = instance / "kiosk.toml"
    settings_file.write_text('# by the installer\nlead_pin = "246810"\nsite_id = "site-1"\n')
    settings_file.chmod(0o600)
    # The copy a rewrite before this version kept (for a start after a power cut tore the file).
    previous = instance / "kiosk.toml.prev"
    previous.write_text('lead_pin = "135790"\nsite_id = "site-1"\n')
    previous.chmod(0o600)
    app = create_kiosk_app(instance, scan_loop_factory=lambda _s: None)
    try:
        text = settings_file.read_text()
        assert "246810" not in text and "lead_pin" not in text
        copy = previous.read_text()
        assert "lead_pin" not in copy and "135790" not in copy and "246810" not in copy
        assert 'site_id = "site-1"' in copy and mode(previous) == 0o600
        assert text.startswith("# by the installer\n") and 'site_id = "site-1"' in text
        assert mode(settings_file) == 0o600
        assert mode(instance) == 0o700
        stored = (instance / AUTH_FILE).read_text()
        assert "246810" not in stored and re.search(r'"pin_hash": "scrypt:\d+:8:1\$', stored)
        assert mode(instance / AUTH_FILE) == 0o600
        client = app.test_client()
        assert login(client, "246810").status_code == 302
    finally:
        app.extensions["kiosk"].stop()


def test_kiosk_set_pin_keeps_a_hash_and_logs_every_phone_out(tmp_path, issuing_key):
    instance = tmp_path / "kiosk"
    instance.mkdir()
    write_roster(instance, issuing_key)
    runner = CliRunner()
    short = runner.invoke(
        kiosk_cli.main, ["--instance", str(instance), "set-pin", "--pin-stdin"], input="12\n"
    )
    assert short.exit_code != 0 and "4 to 12 digits" in short.output
    done = runner.invoke(
        kiosk_cli.main, ["--instance", str(instance), "set-pin", "--pin-stdin"], input="97531\n"
    )
    assert done.exit_code == 0, done.output
    app = create_kiosk_app(instance, scan_loop_factory=lambda _s: None)
    try:
        phone = app.test_client()
        assert login(phone, "97531").status_code == 302
        assert phone.get("/lead/").status_code == 200
        # A new PIN while the kiosk runs: the phone is out at once, the new PIN works.
        runner.invoke(
            kiosk_cli.main, ["--instance", str(instance), "set-pin", "--pin-stdin"], input="8642\n"
        )
        assert phone.get("/lead/").status_code == 302
        assert login(phone, "97531").status_code == 401
        assert login(phone, "8642").status_code == 302
        assert "97531" not in (instance / AUTH_FILE).read_text()
    finally:
        app.extensions["kiosk"].stop()


@pytest.fixture
def centre_instance(tmp_path):
    instance = tmp_path / "central"
    result = CliRunner().invoke(central_cli.main, ["--instance", str(instance), "init"])
    assert result.exit_code == 0, result.output
    return instance


def test_the_centre_keeps_its_instance_to_itself(centre_instance):
    instance = centre_instance
    assert mode(instance) == 0o700
    for name in ("central.db", "central.toml", "issuing_key.pem", "centre_key.pem"):
        assert mode(instance / name) == 0o600, name
    # An instance made by an older version is tightened when the centre next starts.
    (instance / "central.toml").chmod(0o644)
    (instance / "central.db").chmod(0o644)
    instance.chmod(0o755)
    app = create_app(instance)
    central_of(app).engine.dispose()
    assert mode(instance) == 0o700
    assert mode(instance / "central.toml") == 0o600 and mode(instance / "central.db") == 0o600


def test_an_enrolment_image_is_private_and_goes_with_its_code(centre_instance):
    instance = centre_instance
    runner = CliRunner()
    no_url = runner.invoke(
        central_cli.main, ["--instance", str(instance), "kiosk", "add", "--site", "X"]
    )
    assert no_url.exit_code != 0 and "public_url" in no_url.output
    (instance / "central.toml").write_text('public_url = "https://centre.example/"\n')
    app = create_app(instance)
    engine = central_of(app).engine
    from central import roster
    from central.roster_file import RosterRow

    roster.import_roster(
        engine, [RosterRow(2, "C1", "宋昕", "一组", "S01", "东门")], now=datetime.now(UTC)
    )
    added = []
    for _ in range(2):
        result = runner.invoke(
            central_cli.main, ["--instance", str(instance), "kiosk", "add", "--site", "S01"]
        )
        assert result.exit_code == 0, result.output
        added.append(re.search(r"one-time code: (\S+)", result.output).group(1))
    used, expiring = instance / "enrol-S01-1.png", instance / "enrol-S01-2.png"
    assert mode(used) == 0o600 and mode(expiring) == 0o600
    Image.open(used).verify()

    # Used: the centre removes its image as the kiosk enrols.
    response = app.test_client().post("/api/v1/enrol", json={"code": added[0]})
    assert response.status_code == 200
    assert not used.exists() and expiring.exists()
    # Expired: the next `central kiosk` command (or the centre's next start) removes it.
    with engine.begin() as conn:
        from sqlalchemy import update

        from central.db.schema import enrolment_codes

        conn.execute(update(enrolment_codes).values(expires_at=datetime(2020, 1, 1)))
    listed = runner.invoke(central_cli.main, ["--instance", str(instance), "kiosk", "list"])
    assert listed.exit_code == 0 and "removed" in listed.output
    assert not expiring.exists()
    engine.dispose()


def test_the_enrolment_qr_never_takes_its_address_from_the_request(tmp_path):
    from tests.robustness.conftest import seeded_centre

    centre = seeded_centre(tmp_path / "central")
    admin = centre.admin
    csrf_of(admin)
    # The staff member's own session, sent to the centre under another name (a Host header).
    session = admin.get_cookie("central_session")
    admin.set_cookie("central_session", session.value, domain="evil.example")
    refused = admin.post(
        "/staff/kiosks/enrol",
        data={"site_id": "S01", "csrf_token": csrf_of(admin)},
        headers={"Host": "evil.example"},
    )
    assert refused.status_code == 409 and "public_url" in refused.get_data(as_text=True)
    with centre.app.extensions["central"].engine.connect() as conn:
        assert [k["kiosk_id"] for k in kiosks.list_kiosks(conn)] == ["S01-1"]  # none added

    centre.app.extensions["central"].settings.public_url = "https://centre.example/"
    made = admin.post(
        "/staff/kiosks/enrol",
        data={"site_id": "S01", "csrf_token": csrf_of(admin)},
        headers={"Host": "evil.example"},
        follow_redirects=True,
    )
    page = made.get_data(as_text=True)
    assert made.status_code == 200 and "evil.example" not in page
    assert "kiosk enroll https://centre.example/" in page and "--centre-key" in page
