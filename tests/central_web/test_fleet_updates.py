"""The fleet view of updates: a real kiosk app, enrolled in process, is offered a release in its
signed pull answer, says where it stands in its heartbeat (waiting, here: updates are off), and
reports the release it switched back from; the kiosks page shows the version offered, the
state and the rollback, and filters by the mark."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from central import releases
from kiosk.app import _default_sync_agent
from kiosk.updates.layout import ROOT_ENV, UpdateLayout
from sync.agent import SyncAgent
from sync.protocol import Rollback
from tests.central_web import seed
from tests.central_web.kiosk_app import enrolled_kiosk
from tests.proofs import write_issuing_key


@pytest.fixture
def centre(app: Flask) -> Flask:
    write_issuing_key(Path(app.instance_path) / "issuing_key.pem")
    seed.seed(app)
    return app


def _row(page: str, kiosk_id: str) -> str:
    start = page.index(f'<tr data-kiosk="{kiosk_id}"')
    return page[start : page.index("</tr>", start)]


def test_offer_state_and_rollback_reach_the_kiosks_page(
    tmp_path: Path, centre: Flask, admin: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "opt"
    (root / "venvs" / "0.1.0").mkdir(parents=True)
    layout = UpdateLayout(root)
    layout.point(layout.current, layout.venv_of("0.1.0"))
    layout.point(layout.good, layout.venv_of("0.1.0"))
    layout.remember_rollback(
        Rollback(
            from_version="0.1.5",
            to_version="0.1.0",
            at=datetime(2026, 3, 1, 22, 0, tzinfo=UTC),
            reason="/healthz answered 503",
        )
    )
    monkeypatch.setenv(ROOT_ENV, str(root))
    app, _monotonic, kiosk_id, session = enrolled_kiosk(tmp_path, centre, "S01")
    services = app.extensions["kiosk"]
    services.settings.updates_enabled = False  # it must only wait, whatever the clock says

    state = centre.extensions["central"]
    wheel = tmp_path / "cadre_kiosk-9.0.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04 not installed here")
    releases.add_release(
        state.engine,
        Path(centre.instance_path),
        state.signer.key(),
        wheel,
        state.now(),
        sites=("S01",),
    )

    agent = _default_sync_agent(services, session=session)
    assert isinstance(agent, SyncAgent)
    try:
        assert agent.run_cycle(), agent.snapshot().last_error  # the pull brings the offer
        updater = services.updater
        assert updater is not None
        assert updater.step() == "waiting"
        assert agent.run_cycle(), agent.snapshot().last_error  # the heartbeat says so
    finally:
        services.updater.stop()

    page = admin.get("/staff/kiosks").get_data(as_text=True)
    row = _row(page, kiosk_id)
    assert "9.0.0" in row and "等待空闲时更新" in row  # offered; waiting (zh-CN first)
    assert 'data-mark="rolled_back"' in row and "0.1.5" in row
    assert 'data-mark="update_refused"' not in row
    back = admin.get("/staff/kiosks?mark=rolled_back").get_data(as_text=True)
    assert kiosk_id in back and len(re.findall(r'<tr data-kiosk="', back)) == 1
