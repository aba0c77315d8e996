"""A kiosk the centre revoked says so, on its screen and on the lead's page, in the page's
language, after its next exchange with the centre (within one sync interval)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central import kiosks
from central.app import create_app as create_central
from central.services import central_of
from kiosk import enrolment
from sync.client import CentralClient
from tests.fakes.network import WSGIAdapter, session_with
from tests.kiosk_web.helpers import login, make_kit
from tests.sync.helpers import load_roster

URL = "http://centre.test/"
NOW = datetime(2026, 11, 28, 21, 20, tzinfo=UTC)  # 05:20 in Shanghai


def test_a_revoked_kiosk_says_it_is_shut_out_on_the_screen_and_the_lead_page(tmp_path, issuing_key):
    centre = create_central(tmp_path / "central", now=lambda: NOW, config={"TESTING": True})
    engine = central_of(centre).engine
    load_roster(engine, {"S01": ["C1", "C2"]})
    session = session_with(WSGIAdapter(centre))
    new = kiosks.add_kiosk(engine, "S01", NOW, timedelta(hours=1))
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "kiosk.toml").write_text("sync_plain_http_allowed = true  # in process\n")
    fingerprint = central_of(centre).signer.fingerprint()
    enrolment.enroll(
        instance, URL, new.code, fingerprint, client=CentralClient(URL, session=session)
    )

    kit = make_kit(
        tmp_path,
        issuing_key,
        kiosk_id=new.kiosk_id,
        site_id="S01",
        central_url=URL,
        sync_plain_http_allowed=True,
    )
    services = kit.services
    try:
        agent = enrolment.make_sync_agent(
            instance,
            services.settings,
            services.log,
            services.roster,
            services.keeper,
            lambda: enrolment.KioskFacts(camera_ok=True),
            session=session,
        )
        assert agent is not None
        services.sync_agent = agent
        assert agent.run_cycle(), agent.snapshot().last_error
        assert services.screen_status()["network"]["state"] == "ok"

        kiosks.revoke(engine, new.kiosk_id, NOW)
        services.rules.manual("C1", "arrival", operator="张组长", reason="忘带工牌")
        # The agent's next full cycle (one sync interval at most) meets the refusal.
        assert not agent.run_cycle(full=True)

        status = services.screen_status()
        assert status["network"]["text"] == "已被中心停用"  # not 在线 (online)
        assert status["network"] == {"state": "bad", "code": "shut_out", "text": "已被中心停用"}
        assert status["banner"].startswith("中心已停用本签到机")

        client = kit.app.test_client()
        login(client)
        items = {i["key"]: i for i in client.get("/lead/api/readiness").get_json()["items"]}
        assert (items["sync"]["state"], items["sync"]["code"]) == ("bad", "shut_out")
        assert items["sync"]["values"]["error_code"] == "unauthorized"
        assert (items["pending"]["state"], items["pending"]["values"]) == ("bad", {"count": 1})
        page = client.get("/lead/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
        readiness = page[page.index('id="readiness"') : page.index('id="clock-form"')]
        assert "中心已停用本签到机" in readiness
        assert "refused" not in readiness and "token" not in readiness  # no English
        english = client.get("/lead/", headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert "The centre has shut this kiosk out" in english
    finally:
        services.stop()
