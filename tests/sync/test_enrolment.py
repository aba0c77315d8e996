"""Enrolment end to end: `central kiosk add`, the QR, `kiosk enroll` over real HTTP, revoke;
the centre key pinned at enrolment, and what the kiosk refuses to take from anyone else."""

from __future__ import annotations

import json
import logging
import re
import stat
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
import zxingcpp
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import insert

from central import cli as central_cli
from central import keys, kiosks, roster
from central.app import create_app
from central.db.schema import pushed_settings
from central.roster_file import RosterRow
from central.services import central_of
from kiosk import cli as kiosk_cli
from kiosk import enrolment
from kiosk import settings as kiosk_settings
from kiosk.centre_trust import PIN_FILE, load_pinned
from kiosk.roster import RosterStore
from sync.centre_key import fingerprint, shown
from sync.client import CentralClient, Unauthorized, UntrustedCentre
from sync.protocol import SettingsAnswer, parse_enrolment_qr
from tests.fakes.network import LoopbackServer, WSGIAdapter, session_with

TRUSTED_LOOPBACK = "# the test centre is on loopback\nsync_plain_http_allowed = true\n"


@pytest.fixture
def centre_dir(tmp_path):
    instance = tmp_path / "central"
    runner = CliRunner()
    assert runner.invoke(central_cli.main, ["--instance", str(instance), "init"]).exit_code == 0
    (instance / "central.toml").write_text('public_url = "http://127.0.0.1:9/"\n')
    return instance


@pytest.fixture
def served(centre_dir):
    """The centre on a real loopback port (waitress in a thread)."""
    app = create_app(centre_dir)
    engine = central_of(app).engine
    roster.import_roster(
        engine,
        [
            RosterRow(2, "C1", "宋昕", "一组", "S01", "东门"),
            RosterRow(3, "C2", "李华", "一组", "S01", "东门"),
            RosterRow(4, "C9", "王五", "二组", "S02", "西门"),
        ],
    )
    server = LoopbackServer(app)
    yield app, server.url
    server.close()
    central_of(app).duties.stop()  # a served app runs its duties, as `central serve` does


def kiosk_dir_for(tmp_path, name: str = "kiosk", extra: str = ""):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "kiosk.toml").write_text(TRUSTED_LOOPBACK + extra)
    return folder


def centre_fp(app) -> str:
    return central_of(app).signer.fingerprint()


def test_add_enrol_revoke_through_the_commands(centre_dir, served, tmp_path):
    app, url = served
    runner = CliRunner()
    added = runner.invoke(
        central_cli.main, ["--instance", str(centre_dir), "kiosk", "add", "--site", "S01"]
    )
    assert added.exit_code == 0, added.output
    code = re.search(r"one-time code: (\S+)", added.output).group(1)
    assert f"--centre-key {shown(centre_fp(app))}" in added.output
    png = centre_dir / "enrol-S01-1.png"
    # The image holds a live code: the owner's only.
    assert stat.S_IMODE(png.stat().st_mode) == 0o600
    [decoded] = zxingcpp.read_barcodes(Image.open(png))
    assert decoded.text.startswith("CKE2|")
    assert parse_enrolment_qr(decoded.text) == ("http://127.0.0.1:9/", code, centre_fp(app))

    kiosk_dir = kiosk_dir_for(tmp_path, extra="# set by the installer\ncamera_fps = 10.0\n")
    (kiosk_dir / "kiosk.toml").chmod(0o640)
    args = ["--instance", str(kiosk_dir), "enroll", url, code, "--centre-key", centre_fp(app)]
    enrolled = runner.invoke(kiosk_cli.main, args)
    assert enrolled.exit_code == 0, enrolled.output
    assert "enrolled as kiosk S01-1 of site S01 (东门): 2 cadres" in enrolled.output
    assert not png.exists()  # the code is used: its image is gone

    token_file = kiosk_dir / enrolment.TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((kiosk_dir / PIN_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(kiosk_dir.stat().st_mode) == 0o700
    # kiosk.toml keeps the mode it had, and every line the installer wrote.
    assert stat.S_IMODE((kiosk_dir / "kiosk.toml").stat().st_mode) == 0o640
    text = (kiosk_dir / "kiosk.toml").read_text()
    assert text.startswith(TRUSTED_LOOPBACK + "# set by the installer\ncamera_fps = 10.0\n")
    loaded = kiosk_settings.load(kiosk_dir, env={})
    assert (loaded.kiosk_id, loaded.site_id, loaded.site_name) == ("S01-1", "S01", "东门")
    assert loaded.central_url == url and loaded.camera_fps == 10.0
    snapshot = RosterStore(kiosk_dir).current
    assert set(snapshot.cadres) == {"C1", "C2"} and snapshot.cadres["C1"].name == "宋昕"
    assert len(snapshot.keyring) == 1
    assert load_pinned(kiosk_dir).fingerprint == centre_fp(app)

    again = runner.invoke(kiosk_cli.main, args)
    assert again.exit_code != 0 and "enrolled already" in again.output
    reused = runner.invoke(kiosk_cli.main, [*args, "--force"])
    assert reused.exit_code != 0 and "already used" in reused.output
    assert enrolment.load_token(kiosk_dir) == token_file.read_text().strip()  # kept

    client = CentralClient(url, enrolment.load_token(kiosk_dir), pinned=load_pinned(kiosk_dir))
    assert client.pull(enrolment.PullApplier(kiosk_dir, RosterStore(kiosk_dir)).versions())
    revoked = runner.invoke(
        central_cli.main, ["--instance", str(centre_dir), "kiosk", "revoke", "S01-1"]
    )
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(Unauthorized):
        client.pull(enrolment.PullApplier(kiosk_dir, RosterStore(kiosk_dir)).versions())


def test_enrolment_from_the_qr_text_and_unknown_site(centre_dir, served, tmp_path):
    app, url = served
    runner = CliRunner()
    missing = runner.invoke(
        central_cli.main, ["--instance", str(centre_dir), "kiosk", "add", "--site", "NOPE"]
    )
    assert missing.exit_code != 0 and "no site 'NOPE'" in missing.output
    new = kiosks.add_kiosk(
        central_of(app).engine, "S02", datetime.now(UTC), timedelta(hours=1), name="west"
    )
    kiosk_dir = kiosk_dir_for(tmp_path, "kiosk2")
    old_style = runner.invoke(
        kiosk_cli.main, ["--instance", str(kiosk_dir), "enroll", f"CKE1|{new.code}|{url}"]
    )
    assert old_style.exit_code != 0 and "--centre-key" in old_style.output
    qr_text = f"CKE2|{new.code}|{centre_fp(app)}|{url}"
    result = runner.invoke(kiosk_cli.main, ["--instance", str(kiosk_dir), "enroll", qr_text])
    assert result.exit_code == 0, result.output
    assert kiosk_settings.load(kiosk_dir, env={}).site_id == "S02"
    bad = runner.invoke(kiosk_cli.main, ["--instance", str(kiosk_dir), "enroll", "CB1XYZ"])
    assert bad.exit_code != 0 and "not a kiosk enrolment code" in bad.output


def test_a_centre_whose_key_is_not_the_codes_gets_no_code(centre_dir, served, tmp_path):
    """An impostor (or someone in between) with its own key: the kiosk stops before it sends
    the one-time code, which still works afterwards with the real centre."""
    app, url = served
    new = kiosks.add_kiosk(central_of(app).engine, "S01", datetime.now(UTC), timedelta(hours=1))
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = fingerprint(Ed25519PrivateKey.generate().public_key())
    kiosk_dir = kiosk_dir_for(tmp_path)
    runner = CliRunner()
    refused = runner.invoke(
        kiosk_cli.main, ["--instance", str(kiosk_dir), "enroll", f"CKE2|{new.code}|{other}|{url}"]
    )
    assert refused.exit_code != 0
    assert f"has key {shown(centre_fp(app))}, not {shown(other)}: refused" in refused.output
    assert enrolment.load_token(kiosk_dir) is None and not (kiosk_dir / PIN_FILE).exists()
    good = runner.invoke(
        kiosk_cli.main,
        ["--instance", str(kiosk_dir), "enroll", f"CKE2|{new.code}|{centre_fp(app)}|{url}"],
    )
    assert good.exit_code == 0, good.output


def test_a_plain_http_centre_is_refused_unless_the_network_is_trusted(centre_dir, served, tmp_path):
    app, url = served
    new = kiosks.add_kiosk(central_of(app).engine, "S01", datetime.now(UTC), timedelta(hours=1))
    kiosk_dir = tmp_path / "kiosk"
    kiosk_dir.mkdir()
    args = ["--instance", str(kiosk_dir), "enroll", url, new.code, "--centre-key"]
    refused = CliRunner().invoke(kiosk_cli.main, [*args, centre_fp(app)])
    assert refused.exit_code != 0
    assert "is plain http" in refused.output and "sync_plain_http_allowed" in refused.output
    (kiosk_dir / "kiosk.toml").write_text(TRUSTED_LOOPBACK)
    enrolled = CliRunner().invoke(kiosk_cli.main, [*args, centre_fp(app)])
    assert enrolled.exit_code == 0, enrolled.output

    # The running kiosk applies the same rule: trust withdrawn, it takes nothing.
    (kiosk_dir / "kiosk.toml").write_text(
        (kiosk_dir / "kiosk.toml")
        .read_text()
        .replace("sync_plain_http_allowed = true", "sync_plain_http_allowed = false")
    )
    settings = kiosk_settings.load(kiosk_dir, env={})
    agent = _agent(kiosk_dir, settings)
    assert not agent.run_cycle()
    state = agent.snapshot()
    assert state.last_error_code == "untrusted" and "is plain http" in state.last_error


def _agent(kiosk_dir, settings, session=None):
    from kiosk.clock import TimeKeeper
    from kiosk.store import EventLog, StoreConfig
    from tests.fakes.clock import FakeClock

    clock = FakeClock(datetime.now(UTC))
    agent = enrolment.make_sync_agent(
        kiosk_dir,
        settings,
        EventLog(kiosk_dir / "log", StoreConfig()),
        RosterStore(kiosk_dir),
        TimeKeeper(clock, kiosk_dir / "clock.json"),
        lambda: enrolment.KioskFacts(camera_ok=True),
        session=session,
    )
    assert agent is not None
    return agent


def enrolled_kiosk(app, url, tmp_path, site="S01"):
    """A kiosk enrolled over the in-process centre: (kiosk dir, client with token and pin)."""
    new = kiosks.add_kiosk(central_of(app).engine, site, datetime.now(UTC), timedelta(hours=1))
    kiosk_dir = kiosk_dir_for(tmp_path)
    client = CentralClient(url, session=session_with(WSGIAdapter(app)))
    enrolment.enroll(kiosk_dir, url, new.code, centre_fp(app), client=client)
    client.token = enrolment.load_token(kiosk_dir)
    client.pinned = load_pinned(kiosk_dir)
    return kiosk_dir, client, new


def test_pulled_changes_and_settings_are_applied(centre_dir, served, tmp_path, caplog):
    app, url = served
    engine = central_of(app).engine
    kiosk_dir, client, new = enrolled_kiosk(app, url, tmp_path)
    store = RosterStore(kiosk_dir)
    applier = enrolment.PullApplier(kiosk_dir, store)

    roster.import_roster(engine, [RosterRow(2, "C2", "李华", "一组", "S02", "西门")])
    now = datetime.now(UTC)
    kiosks.set_pushed_setting(engine, "*", "repeat_window_s", 90.0, now)
    applier(client.pull(applier.versions()).answer)
    assert set(store.current.cadres) == {"C1"}  # C2 moved to another site
    loaded = kiosk_settings.load(kiosk_dir, env={})
    assert loaded.repeat_window_s == 90.0 and loaded.kiosk_id == new.kiosk_id
    nothing_new = client.pull(applier.versions()).answer
    assert (nothing_new.roster, nothing_new.public_keys, nothing_new.settings) == (None,) * 3

    before = (kiosk_dir / "kiosk.toml").read_text()
    problem = enrolment.apply_settings(
        kiosk_dir, SettingsAnswer(version=9, values={"repeat_window_s": -5})
    )
    assert "refused" in problem and (kiosk_dir / "kiosk.toml").read_text() == before
    assert tomllib.loads(before)["kiosk_id"] == new.kiosk_id


UNPUSHABLE = {
    "screen_remote_allowed": True,
    "camera_source": "url",
    "camera_device": "http://evil.example/cam.mjpg",
    "listen_host": "0.0.0.0",
    "lead_pin": "0000",
    "lead_max_failures": 1000,
    "central_url": "http://evil.example/",
    "sync_plain_http_allowed": True,
    "kiosk_id": "hijack",
}


def test_settings_that_widen_trust_are_never_pushed(centre_dir, served, tmp_path, caplog):
    app, url = served
    engine = central_of(app).engine
    now = datetime.now(UTC)
    for key, value in UNPUSHABLE.items():
        with pytest.raises(kiosks.KioskError, match="cannot be set from the centre"):
            kiosks.set_pushed_setting(engine, "*", key, value, now)
    # Rows an older centre stored are never sent either.
    with engine.begin() as conn:
        conn.execute(
            insert(pushed_settings).values(
                scope="*",
                key="screen_remote_allowed",
                value="true",
                version=50,
                changed_at=now.replace(tzinfo=None),
                changed_by="old centre",
            )
        )
    kiosk_dir, client, _new = enrolled_kiosk(app, url, tmp_path)
    answer = client.pull(enrolment.PullApplier(kiosk_dir, RosterStore(kiosk_dir)).versions())
    assert answer.answer.settings is None or "screen_remote_allowed" not in (
        answer.answer.settings.values
    )
    assert kiosk_settings.load(kiosk_dir, env={}).screen_remote_allowed is False

    # And should one arrive all the same, the kiosk ignores it and says so in its log.
    before = (kiosk_dir / "kiosk.toml").read_text()
    with caplog.at_level(logging.WARNING, logger="kiosk.enrolment"):
        problem = enrolment.apply_settings(
            kiosk_dir, SettingsAnswer(version=60, values={**UNPUSHABLE, "sounds": False})
        )
    assert "never set from afar" in caplog.text and "screen_remote_allowed" in caplog.text
    assert "screen_remote_allowed" in problem
    after = kiosk_settings.load(kiosk_dir, env={})
    assert after.sounds is False  # the harmless one is applied
    assert (after.screen_remote_allowed, after.camera_source, after.listen_host) == (
        False,
        "usb",
        "0.0.0.0",
    )
    assert after.central_url == url and after.kiosk_id != "hijack"
    assert "evil" not in (kiosk_dir / "kiosk.toml").read_text() and before != ""


def test_a_rotated_centre_key_is_followed_and_a_forged_one_refused(centre_dir, served, tmp_path):
    app, url = served
    kiosk_dir, client, _new = enrolled_kiosk(app, url, tmp_path)
    applier = enrolment.PullApplier(kiosk_dir, RosterStore(kiosk_dir))
    first = centre_fp(app)

    keys.rotate_centre_key(central_of(app).signer.path, datetime.now(UTC))
    second = centre_fp(app)
    assert second != first
    assert not list(centre_dir.glob("*.retired-*")) or all(
        b"PRIVATE" not in p.read_bytes() for p in centre_dir.glob("*.retired-*")
    )
    # The kiosk, still pinned to the first key, follows the rotation the first key signed.
    kiosk_client = CentralClient(
        url, client.token, session=session_with(WSGIAdapter(app)), pinned=load_pinned(kiosk_dir)
    )
    kiosk_client.pull(applier.versions())
    assert load_pinned(kiosk_dir).fingerprint == second
    record = json.loads((kiosk_dir / PIN_FILE).read_text())
    assert record["via"].startswith("rotation")

    # A key swapped in without a rotation the pinned key signed is refused, and not pinned.
    key_path = central_of(app).signer.path
    key_path.unlink()
    keys.create_centre_key(key_path)
    with pytest.raises(UntrustedCentre, match="no rotation signed by the key"):
        kiosk_client.pull(applier.versions())
    assert load_pinned(kiosk_dir).fingerprint == second


def test_pin_centre_pins_a_kiosk_enrolled_before_keys_were_pinned(centre_dir, served, tmp_path):
    app, url = served
    kiosk_dir, _client, _new = enrolled_kiosk(app, url, tmp_path)
    (kiosk_dir / PIN_FILE).unlink()
    settings = kiosk_settings.load(kiosk_dir, env={})
    agent = _agent(kiosk_dir, settings, session=session_with(WSGIAdapter(app)))
    assert not agent.run_cycle()
    assert agent.snapshot().last_error_code == "untrusted"
    assert "no centre key is pinned" in agent.snapshot().last_error

    runner = CliRunner()
    wrong = runner.invoke(kiosk_cli.main, ["--instance", str(kiosk_dir), "pin-centre", "A" * 32])
    assert wrong.exit_code != 0 and "refused" in wrong.output
    assert not (kiosk_dir / PIN_FILE).exists()
    typed = shown(centre_fp(app)).lower()  # as a person types it: dashes, any case
    pinned = runner.invoke(kiosk_cli.main, ["--instance", str(kiosk_dir), "pin-centre", typed])
    assert pinned.exit_code == 0, pinned.output
    assert load_pinned(kiosk_dir).fingerprint == centre_fp(app)
    # The running kiosk takes the pin at its next exchange, without a restart.
    assert agent.run_cycle(), agent.snapshot().last_error
    assert agent.snapshot().last_error_code is None
