"""A cadre of another site, read at this kiosk, is named once the centre has the scan: the kiosk
asks for the names of the visitors it saw, and the centre names only those it saw here."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from central import badges, keys, kiosks
from central.app import create_app as create_central
from central.services import central_of
from kiosk import enrolment
from sync.client import CentralClient
from sync.protocol import NamesRequest
from tests.fakes.clock import FakeClock
from tests.fakes.network import WSGIAdapter, session_with
from tests.kiosk_web.helpers import CST, login, make_kit
from tests.sync.helpers import load_roster

URL = "http://centre.test/"
NOW = datetime(2026, 11, 28, 21, 20, tzinfo=UTC)  # 05:20 in Shanghai


def test_a_visitor_is_named_after_the_next_sync(tmp_path, issuing_key):
    central_dir = tmp_path / "central"
    centre = create_central(central_dir, now=lambda: NOW, config={"TESTING": True})
    central = central_of(centre)
    key_path = central.settings.issuing_key_path(central.instance)
    keys.create_issuing_key(key_path)
    load_roster(central.engine, {"S01": ["C1"], "S02": ["C9", "C8"]})
    [visitor] = badges.issue_badges(
        central.engine, keys.load_issuing_key(key_path), cadre_ids=["C9"], today=date(2026, 11, 1)
    )
    session = session_with(WSGIAdapter(centre))
    new = kiosks.add_kiosk(central.engine, "S01", NOW, timedelta(hours=1))
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "kiosk.toml").write_text("sync_plain_http_allowed = true  # in process\n")
    fingerprint = central_of(centre).signer.fingerprint()
    enrolment.enroll(
        instance, URL, new.code, fingerprint, client=CentralClient(URL, session=session)
    )

    clock = FakeClock(NOW.astimezone(CST))
    kit = make_kit(
        tmp_path,
        issuing_key,
        clock=clock,
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
        services.ask_for_visitors_names(agent)
        first = services.handle_payload(visitor.payload, "camera")
        assert first["outcome"] == "arrival" and first["name"] == "C9"  # not known yet
        assert agent.run_cycle(full=True), agent.snapshot().last_error

        assert services.visitors.entry("C9").name == "name C9"
        again = services.handle_payload(visitor.payload, "camera")
        assert again["outcome"] == "repeat" and again["name"] == "name C9"
        client = kit.app.test_client()
        login(client)
        [present] = client.get("/lead/api/summary").get_json()["present"]
        assert (present["name"], present["on_roster"]) == ("name C9", False)
        page = client.get("/lead/").get_data(as_text=True)
        row = page[page.index('id="p-C9"') :]
        row = row[: row.index("</li>")]
        assert "name C9" in row and "不在本站名单" in row

        # The centre names only whom this kiosk's badge reader saw: not another site's C8,
        # nor this site's C1 (the kiosk has its own roster for those).
        token = enrolment.load_token(instance)
        asked = CentralClient(URL, token, session=session).names(
            NamesRequest(cadre_ids=["C9", "C8", "C1", "NOBODY"])
        )
        assert [n.cadre_id for n in asked.answer.names] == ["C9"]
        # Kept across a restart.
        services.stop()
        again_kit = make_kit(tmp_path, issuing_key, clock=clock, site_id="S01")
        assert again_kit.services.visitors.entry("C9").name == "name C9"
        again_kit.services.stop()
    finally:
        services.stop()


def test_an_older_centre_without_names_is_not_asked_again(tmp_path):
    from sync.agent import SyncAgent
    from sync.client import Refused

    class OldCentre:
        asked = 0

        def names(self, request):
            OldCentre.asked += 1
            raise Refused(404, "the centre answered 404: not found")

    agent = SyncAgent.__new__(SyncAgent)  # only the names step is exercised here
    agent._client = OldCentre()
    learned: list = []
    agent.look_up_names(lambda: ["C9"], lambda asked, answer: learned.append(answer))
    agent._ask_names()
    agent._ask_names()
    assert OldCentre.asked == 1 and learned == []
