"""The kiosk's sync agent against a real centre in process and against a misbehaving network."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from central.app import create_app
from central.db.schema import events
from central.services import central_of
from sync.agent import AgentTuning, SyncAgent
from sync.client import CentralClient
from sync.protocol import PushAnswer
from tests.fakes.network import ScriptedAdapter, WSGIAdapter, session_with
from tests.sync.helpers import T0, MemoryLog, enrolled, load_roster

URL = "http://centre.test"


@pytest.fixture
def centre(tmp_path):
    app = create_app(tmp_path, now=lambda: T0, config={"TESTING": True})
    load_roster(central_of(app).engine, {"S01": ["C1", "C2", "C3"]})
    return app


@pytest.fixture
def kiosk(centre):
    kiosk_id, token = enrolled(central_of(centre).engine, "S01")
    log = MemoryLog(kiosk_id, "S01")
    for minute in range(7):
        log.record(f"C{minute % 3 + 1}", "arrival", T0 + timedelta(minutes=minute * 5))
    return log, token


def stored(centre) -> int:
    with central_of(centre).engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events)).scalar_one()


def agent_for(log, token, adapter, **kwargs) -> SyncAgent:
    client = CentralClient(URL, token, timeout_s=2, session=session_with(adapter))
    tuning = kwargs.pop("tuning", AgentTuning(batch_size=3))
    return SyncAgent(log, client, log.kiosk_id, "boot-1", tuning=tuning, **kwargs)


def test_everything_pending_goes_out_in_batches_and_is_acknowledged(centre, kiosk):
    log, token = kiosk
    samples = []
    agent = agent_for(log, token, WSGIAdapter(centre), on_clock_sample=samples.append)
    assert agent.run_cycle()
    assert log.acknowledged == [3, 6, 7] and log.pending_count() == 0
    assert stored(centre) == 7
    state = agent.snapshot()
    assert (state.online, state.waiting, state.sent_total, state.last_error) == (True, 0, 7, None)
    assert len(samples) == 5  # three pushes, a pull and a heartbeat each measured the clock


def half_body(request):
    response = requests.Response()
    response.status_code = 200
    response._content = b'{"server_time": "2026-11-30T22:00:00Z", "results": ['
    response.request = request
    return response


GARBAGE = [
    (200, b"<html>captive portal</html>"),
    half_body,
    (200, b'{"server_time": "2026-11-30T22:00:00Z", "results": "ok"}'),
    (500, b"<h1>Internal Server Error</h1>"),
    (502, b'{"error": "bad_gateway", "message": "upstream down", "fields": []}'),
    requests.ConnectionError("Connection reset by peer"),
    requests.Timeout("read timed out"),
]
EXPECTED = [
    "not understood",
    "not understood",
    "not understood (results",
    "answered 500: HTTP 500",
    "answered 502: upstream down",
    "cannot reach the centre: Connection reset by peer",
    "did not answer within 2 s",
]


def test_garbage_answers_are_errors_and_nothing_is_marked_sent(centre, kiosk):
    log, token = kiosk
    adapter = ScriptedAdapter(list(GARBAGE), then=WSGIAdapter(centre))
    agent = agent_for(log, token, adapter)
    for failures, expected in enumerate(EXPECTED, start=1):
        assert not agent.run_cycle()
        state = agent.snapshot()
        assert expected in state.last_error
        assert state.consecutive_failures == failures
        assert log.acknowledged == [] and state.waiting == 7
    assert agent.snapshot().online is False
    assert agent.run_cycle()  # the network is back: everything goes
    assert log.pending_count() == 0 and stored(centre) == 7
    assert agent.snapshot().last_error is None


def test_answer_lost_after_the_centre_stored_is_harmless(centre, kiosk):
    log, token = kiosk
    real = WSGIAdapter(centre)

    def store_then_drop(request):
        real.send(request)
        raise requests.ConnectionError("connection closed before the answer")

    agent = agent_for(log, token, ScriptedAdapter([store_then_drop], then=real))
    assert not agent.run_cycle()
    assert log.acknowledged == [] and stored(centre) == 3  # stored, but not known to be
    assert agent.run_cycle()
    assert log.pending_count() == 0 and stored(centre) == 7  # resent: nothing twice


def answer_for(batch_events, statuses) -> bytes:
    results = [
        {"index": i, "event_id": str(e.event_id), "seq": e.seq, "status": s}
        for i, (e, s) in enumerate(zip(batch_events, statuses, strict=False))
    ]
    return (
        PushAnswer(
            server_time=T0,
            results=results,
            stored=len(results),
            duplicates=0,
            rejected=0,
        )
        .model_dump_json()
        .encode()
    )


def test_cursor_moves_only_through_the_answered_prefix(kiosk):
    log, token = kiosk
    first_three = log.events[:3]
    other = MemoryLog(log.kiosk_id, "S01")
    strangers = [other.record("C1", "arrival", T0) for _ in range(3)]
    script = [
        (200, answer_for(first_three[:2], ["stored", "duplicate"])),  # the third unanswered
        (200, answer_for(strangers, ["stored"] * 3)),  # answers about other events
    ]
    agent = agent_for(log, token, ScriptedAdapter(script))
    assert not agent.run_cycle()
    assert log.acknowledged == [2]
    assert "answered for 2 of 3" in agent.snapshot().last_error
    assert not agent.run_cycle()
    assert log.acknowledged == [2]  # nothing more


def test_a_refused_event_is_reported_and_does_not_stall_the_queue(centre, kiosk):
    log, token = kiosk
    bad = log.events[1].wire()
    bad["cadre_id"] = "C3"  # damaged after sealing: its hash no longer matches
    log.events[1] = log.events[1].model_validate(bad)
    agent = agent_for(log, token, WSGIAdapter(centre))
    assert agent.run_cycle()
    assert log.pending_count() == 0 and stored(centre) == 6
    assert "seq 2: hash does not match" in agent.snapshot().last_refusal


def test_revoked_kiosk_sees_why(centre, kiosk):
    from central import kiosks

    log, token = kiosk
    kiosks.revoke(central_of(centre).engine, log.kiosk_id, T0)
    agent = agent_for(log, token, WSGIAdapter(centre))
    assert not agent.run_cycle()
    state = agent.snapshot()
    assert "refused this kiosk's token" in state.last_error and state.online is True


class FakeWaiter:
    """Records each wait; answers from `woken` (True: a wake() came) and stops the agent."""

    def __init__(self, woken: list[bool], clock: list[float]):
        self.waits: list[float] = []
        self.woken = list(woken)
        self.clock = clock
        self.agent: SyncAgent | None = None

    def wait(self, timeout=None):
        self.waits.append(timeout)
        if not self.woken:
            self.agent.stop()
            return True
        early = self.woken.pop(0)
        self.clock[0] += 0.5 if early else timeout
        return early

    def set(self):
        pass

    def clear(self):
        pass


def test_backoff_doubles_with_full_jitter_up_to_the_cap(kiosk):
    log, token = kiosk
    clock = [0.0]
    waiter = FakeWaiter([False] * 7, clock)
    dead = ScriptedAdapter([requests.ConnectionError("no route")] * 20)
    agent = agent_for(
        log,
        token,
        dead,
        tuning=AgentTuning(batch_size=3, backoff_base_s=2, backoff_cap_s=20),
        rand=lambda: 0.5,
        monotonic=lambda: clock[0],
        waiter=waiter,
    )
    waiter.agent = agent
    agent.run_forever()
    assert waiter.waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert agent.backoff_delay(1) <= 1.0 and agent.backoff_delay(50) == 10.0


def test_wake_during_backoff_retries_after_the_minimum_interval(centre, kiosk):
    log, token = kiosk
    clock = [100.0]
    waiter = FakeWaiter([True, False], clock)
    script = ScriptedAdapter([requests.ConnectionError("no route")], then=WSGIAdapter(centre))
    agent = agent_for(
        log,
        token,
        script,
        tuning=AgentTuning(batch_size=3, backoff_base_s=60, backoff_cap_s=60, interval_s=30),
        rand=lambda: 1.0,
        monotonic=lambda: clock[0],
        waiter=waiter,
    )
    waiter.agent = agent
    agent.run_forever()
    # Failed: backoff of 60 s; a scan woke it 0.5 s later; it waited out the rest of 5 s, then
    # sent everything and settled into the normal interval.
    assert waiter.waits == [60.0, 4.5, 30.0]
    assert log.pending_count() == 0


def test_wake_never_blocks_while_an_exchange_hangs(centre, kiosk):
    log, token = kiosk
    release = threading.Event()
    entered = threading.Event()
    real = WSGIAdapter(centre)

    def hang(request):
        entered.set()
        release.wait(10)
        return real.send(request)

    agent = agent_for(log, token, ScriptedAdapter([hang], then=real))
    agent.start()
    try:
        assert entered.wait(10)
        agent.wake()  # returns although the agent's thread is stuck in the network
        assert agent.snapshot().waiting == 7
        assert not release.is_set()
    finally:
        release.set()
        agent.stop()
    assert log.acknowledged[:1] == [3]  # the held batch went through, then the agent stopped


def test_a_centre_older_than_the_fleet_view_still_gets_heartbeats(centre, kiosk):
    """An older centre refuses the heartbeat's unknown `fleet` field (400, naming it): the agent
    sends the rest, and stops offering it; pushes are not held up."""
    import json

    from sync.protocol import (
        CameraReport,
        ClockReport,
        ErrorAnswer,
        FieldProblem,
        FleetReport,
        Heartbeat,
    )

    inner = WSGIAdapter(centre)
    refused = []

    blamed = ["fleet"]

    def old_centre(request):
        if request.path_url.endswith("/heartbeat") and "fleet" in json.loads(request.body):
            refused.append(request)
            problem = FieldProblem(field=blamed[0], reason="Extra inputs are not permitted")
            answer = ErrorAnswer(error="malformed", message="bad heartbeat", fields=[problem])
            return (400, answer.model_dump_json().encode())
        return None

    class OldCentre(ScriptedAdapter):
        def send(self, request, *args, **kwargs):
            step = old_centre(request)
            if step is None:
                return inner.send(request, *args, **kwargs)
            self.script = [step]
            return super().send(request, *args, **kwargs)

    def beat() -> Heartbeat:
        return Heartbeat(
            queue_length=0,
            camera=CameraReport(ok=True),
            clock=ClockReport(trusted=True),
            ready=True,
            fleet=FleetReport(cpu_temp_c=50.0),
        )

    log, token = kiosk
    agent = agent_for(log, token, OldCentre([]), heartbeat=beat)
    assert agent.run_cycle(), agent.snapshot().last_error
    assert log.pending_count() == 0 and len(refused) == 1
    assert agent.run_cycle() and len(refused) == 1  # not offered again
    # A 400 about anything else is still an error, and the report is not dropped for it.
    blamed[0] = "camera.detail"
    agent = agent_for(log, token, OldCentre([]), heartbeat=beat)
    assert not agent.run_cycle() and len(refused) == 2
    assert "camera.detail" in agent.snapshot().last_error


def test_a_centre_that_lost_acknowledged_records_gets_them_again(centre, kiosk):
    """A centre restored from an older backup: the heartbeat says where its chain of this
    kiosk ends, and the kiosk sends everything after that again."""
    from sqlalchemy import delete, update

    from central.db.schema import kiosks

    log, token = kiosk
    agent = agent_for(log, token, WSGIAdapter(centre))
    assert agent.run_cycle() and log.cursor == 7 and stored(centre) == 7
    engine = central_of(centre).engine
    with engine.begin() as conn:  # what a restore of a backup taken after seq 4 leaves
        conn.execute(delete(events).where(events.c.seq > 4))
        conn.execute(update(kiosks).values(chain_seq=4, max_seq=4))
    assert agent.run_cycle()  # nothing pending; the heartbeat's answer rewinds the cursor
    assert log.rewound == [4] and log.pending_count() == 3
    assert agent.run_cycle()
    assert stored(centre) == 7 and log.pending_count() == 0
    assert agent.run_cycle()
    assert log.rewound == [4]  # whole again: no more resending
    with engine.connect() as conn:
        assert conn.execute(select(kiosks.c.chain_seq)).scalar() == 7


def test_a_heartbeat_answer_names_resend_after_only_when_something_is_missing(centre, kiosk):
    log, token = kiosk
    agent_for(log, token, WSGIAdapter(centre)).run_cycle()
    client = centre.test_client()
    beat = {
        "queue_length": 0,
        "camera": {"ok": True},
        "clock": {"trusted": True, "boot_id": "boot-1"},
        "ready": True,
    }
    headers = {"Authorization": f"Bearer {token}"}
    old_kiosk = client.post("/api/v1/heartbeat", json=beat, headers=headers).get_json()
    assert set(old_kiosk) == {"server_time"}  # a kiosk of before the field reads it
    whole = client.post(
        "/api/v1/heartbeat", json={**beat, "acknowledged_seq": 7}, headers=headers
    ).get_json()
    assert set(whole) == {"server_time"}
    ahead = client.post(
        "/api/v1/heartbeat", json={**beat, "acknowledged_seq": 9}, headers=headers
    ).get_json()
    assert ahead["resend_after"] == 7


def test_a_centre_older_than_the_resend_still_gets_heartbeats(centre, kiosk):
    """A centre of before `acknowledged_seq` refuses it (400 naming it): the agent sends the
    heartbeat without it from then on."""
    import json

    from sync.protocol import ErrorAnswer, FieldProblem

    inner = WSGIAdapter(centre)
    refused = []

    class OldCentre(ScriptedAdapter):
        def send(self, request, *args, **kwargs):
            body = json.loads(request.body) if request.body else {}
            if request.path_url.endswith("/heartbeat") and "acknowledged_seq" in body:
                refused.append(request)
                problem = FieldProblem(field="acknowledged_seq", reason="Extra inputs")
                answer = ErrorAnswer(error="malformed", message="bad", fields=[problem])
                self.script = [(400, answer.model_dump_json().encode())]
                return super().send(request, *args, **kwargs)
            return inner.send(request, *args, **kwargs)

    log, token = kiosk
    agent = agent_for(log, token, OldCentre([]))
    assert agent.run_cycle(), agent.snapshot().last_error
    assert agent.run_cycle() and len(refused) == 1 and log.pending_count() == 0
