"""Releases at the centre: signed when added, offered by site or percentage in the signed pull
answer, fetched only by kiosks they reach, halted by the rollout duty after rollbacks."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from central import releases
from central.app import create_app
from central.db.schema import kiosk_status
from central.db.schema import releases as releases_table
from central.kiosks import KioskIdentity
from central.settings import CentralSettings
from sync.centre_key import NONCE_HEADER, SIGNATURE_HEADER, verify_answer
from sync.protocol import PullAnswer
from sync.releases import ReleaseRefused, check_wheel, verify_release
from tests.badges import write_issuing_key
from tests.sync.helpers import T0, enrolled, load_roster

WHEEL = "cadre_kiosk-0.2.0-py3-none-any.whl"


@pytest.fixture
def app(central_engine, tmp_path):
    write_issuing_key(tmp_path / "issuing_key.pem")
    load_roster(central_engine, {"S01": ["C1"], "S02": ["C9"]})
    return create_app(
        tmp_path, CentralSettings(), engine=central_engine, now=lambda: T0, config={"TESTING": True}
    )


def a_wheel(folder: Path, name: str = WHEEL, body: bytes = b"PK\x03\x04 a wheel") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(body)
    return path


def key_of(app):
    return app.extensions["central"].signer.key()


def pull(client, token: str) -> tuple[PullAnswer, object]:
    body = b"{}"
    nonce = "ab" * 16
    answer = client.post(
        "/api/v1/pull",
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", NONCE_HEADER: nonce},
    )
    assert answer.status_code == 200, answer.json
    return PullAnswer.model_validate_json(answer.data), (answer, nonce, body)


def test_release_by_site_is_signed_offered_and_fetched_by_that_site_only(
    app, central_engine, tmp_path
):
    s1, token1 = enrolled(central_engine, "S01")
    _s2, token2 = enrolled(central_engine, "S02")
    wheel = a_wheel(tmp_path / "in")
    release = releases.add_release(central_engine, tmp_path, key_of(app), wheel, T0, sites=("S01",))
    client = app.test_client()

    offered, (raw, nonce, body) = pull(client, token1)
    assert offered.update is not None and offered.update.manifest.version == "0.2.0"
    # The kiosk's two checks: the answer signed over its nonce, the release by the same key.
    public = key_of(app).public_key()
    verify_answer(public, raw.headers[SIGNATURE_HEADER], "/pull", nonce, body, 200, raw.data)
    manifest = verify_release(public, offered.update)
    stored = releases.wheel_path(tmp_path, release.sha256)
    check_wheel(manifest, stored)
    assert stored.read_bytes() == wheel.read_bytes()

    other, (raw2, _, _) = pull(client, token2)
    assert other.update is None and b'"update"' not in raw2.data  # an older kiosk reads it

    got = client.get("/api/v1/releases/0.2.0/wheel", headers={"Authorization": f"Bearer {token1}"})
    assert got.status_code == 200 and got.data == wheel.read_bytes()
    refused = client.get(
        "/api/v1/releases/0.2.0/wheel", headers={"Authorization": f"Bearer {token2}"}
    )
    assert refused.status_code == 404
    assert client.get("/api/v1/releases/0.2.0/wheel").status_code == 401
    assert s1


def test_percentage_reaches_the_same_kiosks_first_and_widens_over_them(
    app, central_engine, tmp_path
):
    ids = [enrolled(central_engine, "S01")[0] for _ in range(40)]
    release = releases.add_release(
        central_engine, tmp_path, key_of(app), a_wheel(tmp_path / "in"), T0, percent=25
    )
    with central_engine.connect() as conn:
        first = set(releases.offered_versions(conn, dict.fromkeys(ids, "S01")))
    assert first == {k for k in ids if releases.bucket(k) < 25}
    assert 0 < len(first) < 40
    releases.widen(central_engine, release.version, T0, percent=60)
    with central_engine.connect() as conn:
        wider = set(releases.offered_versions(conn, dict.fromkeys(ids, "S01")))
    assert first < wider
    with pytest.raises(releases.ReleaseError, match="from 60"):
        releases.widen(central_engine, release.version, T0, percent=10)


def test_newest_offered_release_wins_and_a_halted_one_is_not_offered(app, central_engine, tmp_path):
    kiosk_id, _ = enrolled(central_engine, "S01")
    me = KioskIdentity(kiosk_id=kiosk_id, site_id="S01")
    key = key_of(app)
    releases.add_release(central_engine, tmp_path, key, a_wheel(tmp_path / "a"), T0, percent=100)
    newer = a_wheel(tmp_path / "b", "cadre_kiosk-0.10.0-py3-none-any.whl", b"newer")
    releases.add_release(central_engine, tmp_path, key, newer, T0, sites=("S01",))
    with central_engine.begin() as conn:
        offer = releases.offer_for(conn, me)
        assert offer is not None and offer.manifest.version == "0.10.0"  # not "0.2.0" > "0.10.0"
        releases.halt(conn, "0.10.0", "by staff", T0)
        offer = releases.offer_for(conn, me)
    assert offer is not None and offer.manifest.version == "0.2.0"


def test_rollout_duty_halts_a_release_kiosks_switched_back_from(app, central_engine, tmp_path):
    kiosk_id, token = enrolled(central_engine, "S01")
    releases.add_release(
        central_engine, tmp_path, key_of(app), a_wheel(tmp_path / "in"), T0, sites=("S01",)
    )
    client = app.test_client()
    beat = {
        "app_version": "0.1.0",
        "queue_length": 0,
        "camera": {"ok": True},
        "clock": {"trusted": True},
        "ready": True,
        "update": {
            "offered": "0.2.0",
            "state": "refused",
            "rollbacks": [
                {
                    "from_version": "0.2.0",
                    "to_version": "0.1.0",
                    "at": T0.isoformat(),
                    "reason": "/healthz answered 503",
                }
            ],
        },
    }
    answer = client.post(
        "/api/v1/heartbeat", json=beat, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.json
    with central_engine.begin() as conn:
        assert releases.rollout_step(conn, T0, halt_after=2) == 0  # one kiosk: not yet
    # The app's own duty (release_halt_rollbacks = 1 by default), under its lease.
    duties = app.extensions["central"].duties
    assert releases.DUTY_NAME in duties.names
    assert duties.run_once(releases.DUTY_NAME) == 1
    assert duties.run_once(releases.DUTY_NAME) == 0  # halted already
    with central_engine.begin() as conn:
        row = conn.execute(select(releases_table)).one()
        assert releases.offer_for(conn, KioskIdentity(kiosk_id=kiosk_id, site_id="S01")) is None
    assert row.state == "halted" and kiosk_id in row.state_detail
    releases.widen(central_engine, "0.2.0", T0 + timedelta(hours=1))  # staff looked: again
    with central_engine.connect() as conn:
        assert conn.execute(select(releases_table.c.state)).scalar() == "offered"
        stored = json.loads(conn.execute(select(kiosk_status.c.report)).scalar() or "{}")
    assert stored["update"]["rollbacks"][0]["from_version"] == "0.2.0"


def test_a_changed_wheel_or_manifest_is_refused(app, central_engine, tmp_path):
    enrolled(central_engine, "S01")
    wheel = a_wheel(tmp_path / "in")
    release = releases.add_release(central_engine, tmp_path, key_of(app), wheel, T0, sites=("S01",))
    public = key_of(app).public_key()
    changed = a_wheel(tmp_path / "changed", body=b"PK\x03\x04 a wheel!")
    with pytest.raises(ReleaseRefused, match="bytes"):
        check_wheel(release.signed.manifest, changed)
    same_size = a_wheel(tmp_path / "same", body=b"PK\x03\x04 a whee!")
    with pytest.raises(ReleaseRefused, match="sha256"):
        check_wheel(release.signed.manifest, same_size)
    bumped = release.signed.model_copy(
        update={"manifest": release.signed.manifest.model_copy(update={"version": "9.9.9"})}
    )
    with pytest.raises(ReleaseRefused, match="signature does not match"):
        verify_release(public, bumped)


def test_cli_add_list_widen_and_clear_refusals(tmp_path):
    from central.cli import main

    runner = CliRunner()
    instance = tmp_path / "inst"
    assert runner.invoke(main, ["--instance", str(instance), "init"]).exit_code == 0
    wheel = a_wheel(tmp_path / "in")

    def run(*args: str):
        return runner.invoke(main, ["--instance", str(instance), "release", *args])

    nothing = run("add", str(wheel))
    assert nothing.exit_code != 0 and "--site S" in nothing.output
    not_wheel = run("add", str(a_wheel(tmp_path / "x", "notes.txt")), "--percent", "5")
    assert not_wheel.exit_code != 0 and "not a wheel" in not_wheel.output
    other = run("add", str(a_wheel(tmp_path / "y", "other-1.0-py3-none-any.whl")), "--percent", "5")
    assert other.exit_code != 0 and "not of cadre-kiosk" in other.output
    added = run("add", str(wheel), "--percent", "5")
    assert added.exit_code == 0, added.output
    assert "signed with centre key" in added.output and "5% of kiosks" in added.output
    again = run("add", str(wheel), "--percent", "5")
    assert again.exit_code != 0 and "exists already" in again.output
    assert run("widen", "0.2.0", "--percent", "50").exit_code == 0
    listed = run("list")
    assert "0.2.0" in listed.output and "50% of kiosks" in listed.output
