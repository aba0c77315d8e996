"""A kiosk after a power cut, end to end: its real log and time keeper, the agent, the centre.

The kiosk's clock resumed three hours behind and is not synchronised. Its scans are stored at
the centre as the clock said (uncorrected); the exchange itself tells the kiosk the true time,
the heartbeat carries that offset, and the centre places the boot's events on true time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from central import kiosks
from central.app import create_app
from central.db.schema import anomalies, boots, events, kiosk_status
from central.services import central_of
from central.stays import queries as stay_queries
from kiosk import enrolment
from kiosk.clock import TimeKeeper
from kiosk.roster import RosterStore
from kiosk.settings import KioskSettings
from kiosk.store import EventLog, StoreConfig
from sync.client import CentralClient
from tests.badges import badge, write_issuing_key
from tests.fakes.clock import FakeClock
from tests.fakes.network import WSGIAdapter, session_with
from tests.sync.helpers import load_roster

TRUE_NOW = datetime(2026, 11, 30, 21, 30, tzinfo=UTC)  # 05:30 in Shanghai
URL = "http://centre.test/"


def test_power_cut_kiosk_is_corrected_by_the_centre(tmp_path):
    centre_time = {"now": TRUE_NOW}
    write_issuing_key(tmp_path / "central" / "issuing_key.pem")
    app = create_app(tmp_path / "central", now=lambda: centre_time["now"], config={"TESTING": True})
    engine = central_of(app).engine
    load_roster(engine, {"S01": ["C1", "C2"]})
    session = session_with(WSGIAdapter(app))

    new = kiosks.add_kiosk(engine, "S01", TRUE_NOW, timedelta(hours=1))
    instance = tmp_path / "kiosk"
    instance.mkdir()
    (instance / "kiosk.toml").write_text("sync_plain_http_allowed = true  # in process\n")
    client = CentralClient(URL, session=session)
    enrolment.enroll(instance, URL, new.code, central_of(app).signer.fingerprint(), client=client)

    clock = FakeClock(TRUE_NOW - timedelta(hours=3), boot_id="b-after-cut", synchronized=False)
    keeper = TimeKeeper(clock, instance / "clock.json")
    log = EventLog(instance / "log", StoreConfig())
    for cadre in ("C1", "C2"):
        reading = keeper.read()
        log.append(
            {
                "kiosk_id": new.kiosk_id,
                "site_id": "S01",
                "cadre_id": cadre,
                "badge_serial": 1,
                "kind": "arrival",
                "source": "camera",
                "device_time": reading.wall,
                "boot_id": reading.boot_id,
                "monotonic_ns": reading.monotonic_ns,
                "clock_trusted": reading.trusted,
                "badge_token": badge(cadre),  # the badge read, as the rules keep it
            }
        )
        clock.advance(minutes=1)
        centre_time["now"] += timedelta(minutes=1)

    settings = KioskSettings(
        kiosk_id=new.kiosk_id, site_id="S01", central_url=URL, sync_plain_http_allowed=True
    )
    agent = enrolment.make_sync_agent(
        instance,
        settings,
        log,
        RosterStore(instance),
        keeper,
        lambda: enrolment.KioskFacts(camera_ok=True, last_scan_at=clock.now()),
        app_version="test",
        session=session,
    )
    assert agent is not None
    assert agent.run_cycle(), agent.snapshot().last_error
    assert log.pending_count() == 0

    # The kiosk learned its offset from the exchange...
    anchor = keeper.anchor("b-after-cut")
    assert anchor is not None and anchor.offset == timedelta(hours=3)
    assert keeper.read().shown == centre_time["now"]
    # ...and the centre put its events on true time, keeping what the clock said.
    with engine.connect() as conn:
        rows = conn.execute(select(events).order_by(events.c.seq)).all()
        status = conn.execute(select(kiosk_status)).one()
    assert [r.time_status for r in rows] == ["corrected", "corrected"]
    assert [r.corrected_time for r in rows] == [
        TRUE_NOW.replace(tzinfo=None),
        (TRUE_NOW + timedelta(minutes=1)).replace(tzinfo=None),
    ]
    assert rows[0].device_time == (TRUE_NOW - timedelta(hours=3)).replace(tzinfo=None)
    assert rows[0].service_day == date(2026, 12, 1)
    assert (status.queue_length, status.app_version, status.camera_ok) == (0, "test", True)
    assert status.clock_trusted is False
    # The centre measured the boot's clock itself, from the requests' X-Kiosk-Clock, and found
    # nothing of the records' times to contradict it.
    with engine.connect() as conn:
        boot = conn.execute(select(boots).where(boots.c.boot_id == "b-after-cut")).one()
        raised = conn.execute(select(anomalies.c.kind)).scalars().all()
    assert boot.first_contact_at == (TRUE_NOW + timedelta(minutes=2)).replace(tzinfo=None)
    assert boot.first_contact_mono_ns == clock.monotonic_ns()
    assert "time_claim" not in raised and "badge_proof" not in raised

    central_of(app).stays.drain()
    with engine.connect() as conn:
        present = stay_queries.present_cadres(
            conn, "S01", date(2026, 12, 1), centre_time["now"], central_of(app).rules
        )
    assert {p["cadre_id"] for p in present} == {"C1", "C2"}
    log.close()
