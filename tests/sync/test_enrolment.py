"""Enrolment end to end: `central kiosk add`, the QR, `kiosk enroll` over real HTTP, revoke."""

from __future__ import annotations

import re
import stat
import tomllib
from datetime import UTC, datetime, timedelta

import pytest
import zxingcpp
from click.testing import CliRunner
from PIL import Image

from central import cli as central_cli
from central import kiosks, roster
from central.app import create_app
from central.roster_file import RosterRow
from central.services import central_of
from kiosk import cli as kiosk_cli
from kiosk import enrolment
from kiosk import settings as kiosk_settings
from kiosk.roster import RosterStore
from sync.client import CentralClient, Unauthorized
from sync.protocol import SettingsAnswer, parse_enrolment_qr
from tests.fakes.network import LoopbackServer, WSGIAdapter, session_with


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


def test_add_enrol_revoke_through_the_commands(centre_dir, served, tmp_path):
    _app, url = served
    runner = CliRunner()
    added = runner.invoke(
        central_cli.main, ["--instance", str(centre_dir), "kiosk", "add", "--site", "S01"]
    )
    assert added.exit_code == 0, added.output
    code = re.search(r"one-time code: (\S+)", added.output).group(1)
    png = centre_dir / "enrol-S01-1.png"
    [decoded] = zxingcpp.read_barcodes(Image.open(png))
    assert parse_enrolment_qr(decoded.text) == ("http://127.0.0.1:9/", code)

    kiosk_dir = tmp_path / "kiosk"
    kiosk_dir.mkdir()
    (kiosk_dir / "kiosk.toml").write_text("# set by the installer\ncamera_fps = 10.0\n")
    enrolled = runner.invoke(kiosk_cli.main, ["--instance", str(kiosk_dir), "enroll", url, code])
    assert enrolled.exit_code == 0, enrolled.output
    assert "enrolled as kiosk S01-1 of site S01 (东门): 2 cadres" in enrolled.output

    token_file = kiosk_dir / enrolment.TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    text = (kiosk_dir / "kiosk.toml").read_text()
    assert text.startswith("# set by the installer\ncamera_fps = 10.0\n")
    loaded = kiosk_settings.load(kiosk_dir, env={})
    assert (loaded.kiosk_id, loaded.site_id, loaded.site_name) == ("S01-1", "S01", "东门")
    assert loaded.central_url == url and loaded.camera_fps == 10.0
    snapshot = RosterStore(kiosk_dir).current
    assert set(snapshot.cadres) == {"C1", "C2"} and snapshot.cadres["C1"].name == "宋昕"
    assert len(snapshot.keyring) == 1

    again = runner.invoke(kiosk_cli.main, ["--instance", str(kiosk_dir), "enroll", url, code])
    assert again.exit_code != 0 and "enrolled already" in again.output
    reused = runner.invoke(
        kiosk_cli.main, ["--instance", str(kiosk_dir), "enroll", "--force", url, code]
    )
    assert reused.exit_code != 0 and "already used" in reused.output
    assert enrolment.load_token(kiosk_dir) == token_file.read_text().strip()  # kept

    client = CentralClient(url, enrolment.load_token(kiosk_dir))
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
    qr_text = f"CKE1|{new.code}|{url}"
    kiosk_dir = tmp_path / "kiosk2"
    result = runner.invoke(kiosk_cli.main, ["--instance", str(kiosk_dir), "enroll", qr_text])
    assert result.exit_code == 0, result.output
    assert kiosk_settings.load(kiosk_dir, env={}).site_id == "S02"
    bad = runner.invoke(kiosk_cli.main, ["--instance", str(kiosk_dir), "enroll", "CB1XYZ"])
    assert bad.exit_code != 0 and "not a kiosk enrolment code" in bad.output


def test_pulled_changes_and_settings_are_applied(centre_dir, served, tmp_path):
    app, url = served
    engine = central_of(app).engine
    new = kiosks.add_kiosk(engine, "S01", datetime.now(UTC), timedelta(hours=1))
    kiosk_dir = tmp_path / "kiosk"
    client = CentralClient(url, session=session_with(WSGIAdapter(app)))
    enrolment.enroll(kiosk_dir, url, new.code, client=client)
    client.token = enrolment.load_token(kiosk_dir)
    store = RosterStore(kiosk_dir)
    applier = enrolment.PullApplier(kiosk_dir, store)

    roster.import_roster(engine, [RosterRow(2, "C2", "李华", "一组", "S02", "西门")])
    now = datetime.now(UTC)
    kiosks.set_pushed_setting(engine, "*", "repeat_window_s", 90.0, now)
    kiosks.set_pushed_setting(engine, "site:S01", "kiosk_id", "hijack", now)
    applier(client.pull(applier.versions()).answer)
    assert set(store.current.cadres) == {"C1"}  # C2 moved to another site
    loaded = kiosk_settings.load(kiosk_dir, env={})
    assert loaded.repeat_window_s == 90.0 and loaded.kiosk_id == new.kiosk_id
    assert "kiosk_id" in enrolment.load_state(kiosk_dir).settings_problem
    nothing_new = client.pull(applier.versions()).answer
    assert (nothing_new.roster, nothing_new.public_keys, nothing_new.settings) == (None,) * 3

    before = (kiosk_dir / "kiosk.toml").read_text()
    problem = enrolment.apply_settings(
        kiosk_dir, SettingsAnswer(version=9, values={"repeat_window_s": -5})
    )
    assert "refused" in problem and (kiosk_dir / "kiosk.toml").read_text() == before
    assert tomllib.loads(before)["kiosk_id"] == new.kiosk_id
