"""A kiosk whose log was wiped enrols again and goes on with its chain: no forks at the centre.

The kiosk records and delivers five events, its SD card is replaced (the instance folder is
gone), staff make a new code for the same kiosk id, and it enrols again: its new log begins
after seq 5 with seq 5's hash, so the centre's chain check links its next events to the old
ones. A kiosk enrolled for the first time begins at 1, as before.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from central import kiosks
from central.app import create_app
from central.db.schema import anomalies, events
from central.db.schema import kiosks as kiosk_rows
from central.services import central_of
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

NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
URL = "http://centre.test/"


def record_and_push(instance, kiosk_id, session, cadres, clock) -> list:
    keeper = TimeKeeper(clock, instance / "clock.json")
    made = []
    with EventLog(instance / "log", StoreConfig()) as log:
        for cadre in cadres:
            reading = keeper.read()
            made.append(
                log.append(
                    {
                        "kiosk_id": kiosk_id,
                        "site_id": "S01",
                        "cadre_id": cadre,
                        "badge_serial": 1,
                        "kind": "arrival",
                        "source": "camera",
                        "device_time": reading.wall,
                        "boot_id": reading.boot_id,
                        "monotonic_ns": reading.monotonic_ns,
                        "clock_trusted": reading.trusted,
                        "badge_token": badge(cadre),
                    }
                )
            )
            clock.advance(minutes=1)
        agent = enrolment.make_sync_agent(
            instance,
            KioskSettings(
                kiosk_id=kiosk_id, site_id="S01", central_url=URL, sync_plain_http_allowed=True
            ),
            log,
            RosterStore(instance),
            keeper,
            lambda: enrolment.KioskFacts(camera_ok=True),
            session=session,
        )
        assert agent is not None and agent.run_cycle(), agent.snapshot().last_error
        assert log.pending_count() == 0
    return made


def trusted_loopback(instance):
    instance.mkdir()
    (instance / "kiosk.toml").write_text("sync_plain_http_allowed = true  # in process\n")


def test_a_wiped_kiosk_enrolled_again_continues_its_chain(tmp_path):
    write_issuing_key(tmp_path / "central" / "issuing_key.pem")
    app = create_app(tmp_path / "central", now=lambda: NOW, config={"TESTING": True})
    engine = central_of(app).engine
    cadres = [f"C{i}" for i in range(1, 8)]
    load_roster(engine, {"S01": cadres})
    session = session_with(WSGIAdapter(app))
    clock = FakeClock(NOW, boot_id="boot-1")

    new = kiosks.add_kiosk(engine, "S01", NOW, timedelta(hours=1))
    instance = tmp_path / "kiosk"
    fingerprint = central_of(app).signer.fingerprint()
    trusted_loopback(instance)
    client = CentralClient(URL, session=session)
    first = enrolment.enroll(instance, URL, new.code, fingerprint, client=client)
    assert first.chain is None  # a first enrolment begins at 1
    assert enrolment.load_state(instance).generation == 1
    before = record_and_push(instance, new.kiosk_id, session, cadres[:5], clock)
    assert [e.seq for e in before] == [1, 2, 3, 4, 5]

    shutil.rmtree(instance)  # a new SD card
    again = kiosks.new_enrolment_code(engine, new.kiosk_id, NOW, timedelta(hours=1))
    trusted_loopback(instance)
    client = CentralClient(URL, session=session)
    answer = enrolment.enroll(instance, URL, again.code, fingerprint, client=client)
    assert answer.chain is not None
    assert (answer.chain.generation, answer.chain.seq, answer.chain.hash) == (2, 5, before[-1].hash)
    assert enrolment.load_state(instance).generation == 2
    clock = FakeClock(NOW + timedelta(hours=1), boot_id="boot-2")
    after = record_and_push(instance, new.kiosk_id, session, cadres[5:], clock)
    assert [e.seq for e in after] == [6, 7] and after[0].prev_hash == before[-1].hash

    with engine.connect() as conn:
        kinds = conn.execute(select(anomalies.c.kind)).scalars().all()
        head = conn.execute(
            select(kiosk_rows.c.chain_seq, kiosk_rows.c.max_seq).where(
                kiosk_rows.c.kiosk_id == new.kiosk_id
            )
        ).one()
        stored = conn.execute(select(events.c.seq).order_by(events.c.seq)).scalars().all()
    assert "chain_fork" not in kinds and "chain_gap" not in kinds, kinds
    assert tuple(head) == (7, 7) and stored == [1, 2, 3, 4, 5, 6, 7]
