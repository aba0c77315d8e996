"""The agent through a network that misbehaves half the time: everything arrives, once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from central.app import create_app
from central.db.schema import events, kiosks
from central.services import central_of
from sync.agent import AgentTuning, SyncAgent
from sync.client import CentralClient
from tests.fakes.faulty_proxy import FAULTS, FaultPlan, FaultyProxy
from tests.fakes.network import LoopbackServer
from tests.sync.helpers import T0, MemoryLog, enrolled, load_roster


def test_every_event_arrives_once_through_a_faulty_network(tmp_path):
    app = create_app(tmp_path, now=lambda: T0, config={"TESTING": True})
    engine = central_of(app).engine
    load_roster(engine, {"S01": [f"C{i}" for i in range(20)]})
    kiosk_id, token = enrolled(engine, "S01")
    log = MemoryLog(kiosk_id, "S01")
    for i in range(300):
        log.record(f"C{i % 20}", "arrival", T0 + timedelta(seconds=30 * i))

    server = LoopbackServer(app)
    host, port = server.url.removeprefix("http://").rstrip("/").split(":")
    proxy = FaultyProxy(host, int(port), FaultPlan.everything(total=0.5, seed=7)).start()
    try:
        client = CentralClient(proxy.url, token, timeout_s=5)
        agent = SyncAgent(log, client, kiosk_id, "boot-1", tuning=AgentTuning(batch_size=5))
        cycles = 0
        while log.pending_count() and cycles < 400:
            agent.run_cycle(full=False)
            cycles += 1
    finally:
        proxy.stop()
        server.close()

    assert log.pending_count() == 0, agent.snapshot().last_error
    assert set(FAULTS) <= set(proxy.counts)  # every kind of fault happened at least once
    assert log.acknowledged == sorted(log.acknowledged)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(events)).scalar_one()
        chain = conn.execute(select(kiosks.c.chain_seq)).scalar_one()
    assert (stored, chain) == (300, 300)
