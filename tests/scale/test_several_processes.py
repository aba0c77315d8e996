"""The centre as several `central serve` processes on one PostgreSQL (issue 16, part 1).

Three processes behind a round-robin proxy (tests/fakes/round_robin_proxy.py), twenty kiosks
(the real sync agent and HTTP client, each with a log in memory) pushing to them in turn, and
the process running the stays duty killed with SIGKILL half-way. What must hold: every event
stored once, every stay paired once and exactly as the records say, no duty run by two
processes at once (the `duty_runs` rows of each duty never overlap), and the killed process's
duties taken over by another.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from central import kiosks
from central.db import schema
from central.duties import lease as leases
from central.duties.report import overlapping_runs
from central.stays import store as stay_store
from central.stays.pairing import StayRules
from sync.agent import AgentTuning, SyncAgent
from sync.client import CentralClient
from sync.events import Event
from tests.central_web.helpers import csrf_from
from tests.fakes.round_robin_proxy import RoundRobinProxy
from tests.scale.cluster import Cluster, KioskLog, fresh_database, holder_pid
from tests.waiting import wait_for

pytestmark = pytest.mark.postgres

SITES = [f"RR{n:02d}" for n in range(10)]
CADRES_PER_SITE = 30
PHASES = ("arrival", "departure", "arrival", "departure")
ROUNDS_PER_PHASE = 3
# The centre's repeat window, cut from 120 s so a test can make two stays per cadre in seconds.
SETTINGS = {"repeat_window_s": 1, "trusted_proxies": 1}
PHASE_GAP_S = 1.5


def kiosk_of_site(site: str, cadre_number: int, phase: int, pair: list[KioskLog]) -> KioskLog:
    """Half the cadres start at the site's first kiosk, half at its second; each scan after
    that is at the other kiosk, so every stay is an arrival at one kiosk and a departure at the
    other (pushed to different processes, paired by whichever holds the stays duty)."""
    return pair[(cadre_number + phase) % 2]


def push_until_sent(agent: SyncAgent, log: KioskLog, full: bool, failures: Counter[str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        if agent.run_cycle(full=full) and log.pending_count() == 0:
            return
        failures[log.identity.kiosk_id] += 1
        if time.monotonic() > deadline:
            raise AssertionError(f"{log.identity.kiosk_id}: {agent.snapshot().last_error}")
        time.sleep(0.2)


def test_three_processes_twenty_kiosks_and_a_kill(postgres_url, tmp_path):
    with fresh_database(postgres_url) as database:
        cluster = Cluster(tmp_path / "central", database.url, SETTINGS)
        cluster.init({site: CADRES_PER_SITE for site in SITES})
        engine = cluster.engine
        now = datetime.now(UTC)
        pairs: dict[str, list[KioskLog]] = {}
        agents: dict[str, SyncAgent] = {}
        proxy: RoundRobinProxy | None = None
        try:
            cluster.start(3)
            proxy = RoundRobinProxy(cluster.ports).start()
            for site in SITES:
                pairs[site] = []
                for number in (1, 2):
                    code = kiosks.add_kiosk(
                        engine, site, now, timedelta(hours=1), kiosk_id=f"{site}-K{number}"
                    )
                    identity, _, token = kiosks.enrol(engine, code.code, now)
                    log = KioskLog(identity)
                    pairs[site].append(log)
                    client = CentralClient(proxy.url, token, timeout_s=30)
                    agents[identity.kiosk_id] = SyncAgent(
                        log,
                        client,
                        identity.kiosk_id,
                        log.boot_id,
                        tuning=AgentTuning(batch_size=5),
                    )
            badges = {site: cluster.badges(site) for site in SITES}
            result = run_kiosks(cluster, pairs, agents, proxy, badges)
            # Kiosks are done; whichever process holds the stays duty now finishes the queue.
            wait_for(lambda: stays_settled(engine), 60, "stays queue empty")
        finally:
            if proxy is not None:
                proxy.stop()
            cluster.stop()
        check_result(cluster, pairs, result, proxy)
        engine.dispose()


def run_kiosks(
    cluster: Cluster,
    pairs: dict[str, list[KioskLog]],
    agents: dict[str, SyncAgent],
    proxy: RoundRobinProxy,
    badges: dict[str, dict[str, tuple[str, int]]],
) -> dict[str, Any]:
    """Every kiosk scans its cadres phase by phase, pushing after each round of scans; in the
    third phase, while kiosks push, the process holding the stays duty is killed."""
    logs = [log for pair in pairs.values() for log in pair]
    barrier = threading.Barrier(len(logs) + 1)
    failures: Counter[str] = Counter()
    errors: list[BaseException] = []

    def kiosk(log: KioskLog) -> None:
        try:
            site = log.identity.site_id
            mine = list(range(CADRES_PER_SITE))
            for phase, kind in enumerate(PHASES):
                barrier.wait(120)
                cadres = [n for n in mine if kiosk_of_site(site, n, phase, pairs[site]) is log]
                size = -(-len(cadres) // ROUNDS_PER_PHASE)
                for start in range(0, len(cadres), size):
                    for n in cadres[start : start + size]:
                        cadre = f"{site}-{n}"
                        log.record(cadre, kind, badges[site][cadre])
                    full = start == 0  # a pull and a heartbeat once per phase, as agents do
                    push_until_sent(agents[log.identity.kiosk_id], log, full, failures)
                barrier.wait(120)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=kiosk, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    killed: dict[str, Any] = {}
    try:
        for phase in range(len(PHASES)):
            barrier.wait(120)  # the phase begins
            if phase == 2:
                goal = sum(proxy.sent.values()) + 30
                wait_for(lambda goal=goal: sum(proxy.sent.values()) >= goal, 60, "pushes")
                killed = kill_the_stays_holder(cluster)
            barrier.wait(300)  # every kiosk's scans of the phase are at the centre
            time.sleep(PHASE_GAP_S)  # the next scan of a cadre is past the repeat window
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return {"killed": killed, "failures": failures}


def kill_the_stays_holder(cluster: Cluster) -> dict[str, Any]:
    with cluster.engine.connect() as conn:
        held = {row["duty"]: row for row in leases.holders(conn) if row["live"]}
        runs = conn.execute(select(func.count()).select_from(schema.duty_runs)).scalar_one()
    assert "stays" in held, "a process holds the stays duty while kiosks push"
    assert runs > 0, "the stays duty has done work before the kill"
    victim = cluster.by_pid(holder_pid(held["stays"]["holder"]))
    cluster.kill(victim)  # returns once the process is gone
    # The moment is read after the death: a run the victim began between a reading taken before
    # the kill and the signal would otherwise count as a run "after" it.
    with cluster.engine.connect() as conn:
        killed_at = leases.database_now(conn)
    return {"holder": held["stays"]["holder"], "port": victim.port, "at": killed_at, "held": held}


def check_result(
    cluster: Cluster,
    pairs: dict[str, list[KioskLog]],
    result: dict[str, Any],
    proxy: RoundRobinProxy | None,
) -> None:
    engine = cluster.engine
    logs = [log for pair in pairs.values() for log in pair]
    made = {str(e.event_id): e for log in logs for e in log.events}
    killed = result["killed"]
    assert len(made) == len(SITES) * CADRES_PER_SITE * len(PHASES)

    # The stays duty moved: a newer generation, held by a process that is not the killed one.
    with engine.connect() as conn:
        now_held = {row["duty"]: row for row in leases.holders(conn)}
    stays_lease = now_held["stays"]
    assert stays_lease["holder"] != killed["holder"]
    assert stays_lease["generation"] > killed["held"]["stays"]["generation"]
    takeover_s = (stays_lease["acquired_at"] - killed["at"]).total_seconds()
    print(f"stays duty taken over {takeover_s:.1f} s after the SIGKILL")

    with engine.connect() as conn:
        stored = conn.execute(
            select(
                schema.events.c.event_id,
                schema.events.c.hash,
                schema.events.c.kiosk_id,
                schema.events.c.quarantine,
            )
        ).all()
        chains = {
            r.kiosk_id: r.chain_seq
            for r in conn.execute(select(schema.kiosks.c.kiosk_id, schema.kiosks.c.chain_seq))
        }
        rejected = conn.execute(select(func.count()).select_from(schema.rejected_events))
        rejected_count = rejected.scalar_one()
        chain_anomalies = conn.execute(
            select(schema.anomalies.c.kind, func.count())
            .where(schema.anomalies.c.kind.in_(("chain_gap", "chain_fork", "event_conflict")))
            .group_by(schema.anomalies.c.kind)
        ).all()
        runs = conn.execute(select(schema.duty_runs)).all()
        overlaps = overlapping_runs(conn)

    # Every event stored once, each kiosk's chain complete.
    assert len(stored) == len(made), "one row per event, none twice, none lost"
    assert {r.event_id: r.hash for r in stored} == {k: e.hash for k, e in made.items()}
    assert chains == {log.identity.kiosk_id: len(log.events) for log in logs}
    assert rejected_count == 0 and chain_anomalies == []
    assert {r.quarantine for r in stored} == {None}, "every scan proven by its badge"

    # Stays: paired once each, exactly as the scans were made, and as a fresh pairing says.
    rules = StayRules.from_settings(cluster.settings)
    stays = read_stays(engine)
    expected = expected_stays(pairs, rules)
    if expected is not None:
        assert stays == expected
    with engine.connect() as conn, conn.begin() as transaction:
        stay_store.rebuild(conn, rules)
        fresh = stays_in(conn)
        transaction.rollback()
    assert stays == fresh, "what the duty paired bit by bit equals pairing everything at once"

    # No duty ran twice at once; the stays duty ran on the killed process and on another.
    assert overlaps == [], overlaps
    stays_runs = [r for r in runs if r.duty == "stays"]
    before = {r.holder for r in stays_runs if r.started_at < killed["at"]}
    after = {r.holder for r in stays_runs if r.started_at >= killed["at"]}
    assert killed["holder"] in before
    assert after and killed["holder"] not in after
    # Every process answered kiosks in turn.
    assert proxy is not None
    assert all(proxy.sent[port] > 0 for port in cluster.ports), proxy.sent
    print(
        f"{len(made)} events from {len(logs)} kiosks; requests per process {dict(proxy.sent)}, "
        f"refused after the kill {dict(proxy.refused)}, failed in flight {dict(proxy.failed)}; "
        f"stays runs {len(stays_runs)} by {len(before | after)} holders; "
        f"kiosk retries {sum(result['failures'].values())}"
    )


def stays_settled(engine: Any) -> bool:
    with engine.connect() as conn:
        return stay_store.queued(conn) == 0


def stays_in(conn: Any) -> set[tuple[Any, ...]]:
    st = schema.stays
    rows = conn.execute(
        select(st.c.cadre_id, st.c.arrival_event_id, st.c.departure_event_id, st.c.state)
    ).all()
    as_tuples = [tuple(r) for r in rows]
    assert len(as_tuples) == len(set(as_tuples)), "a stay stored twice"
    return set(as_tuples)


def read_stays(engine: Any) -> set[tuple[Any, ...]]:
    with engine.connect() as conn:
        return stays_in(conn)


def expected_stays(
    pairs: dict[str, list[KioskLog]], rules: StayRules
) -> set[tuple[Any, ...]] | None:
    """Two closed stays per cadre, from the scans as made; None when the run crossed the start
    of a service day (03:00 in the centre's zone), where stays are split by day instead."""
    scans: dict[str, list[Event]] = {}
    for pair in pairs.values():
        for log in pair:
            for event in log.events:
                scans.setdefault(event.cadre_id, []).append(event)
    times = [e.device_time for events in scans.values() for e in events]
    if len({rules.day.service_day(t.astimezone(UTC).replace(tzinfo=None)) for t in times}) > 1:
        return None
    expected: set[tuple[Any, ...]] = set()
    for cadre_id, events in scans.items():
        ordered = sorted(events, key=lambda e: e.device_time)
        assert [e.kind for e in ordered] == list(PHASES)
        for arrival, departure in (ordered[0:2], ordered[2:4]):
            expected.add((cadre_id, str(arrival.event_id), str(departure.event_id), "closed"))
    return expected


def test_a_staff_session_made_on_one_process_works_on_another_and_ends_on_all(
    postgres_url, tmp_path
):
    with fresh_database(postgres_url) as database:
        cluster = Cluster(tmp_path / "central", database.url, {})
        cluster.init({"SS01": 1})
        cluster.cli_input("staff password 1\n", "user", "add", "lin", "--role", "viewer")
        try:
            cluster.start(2)
            a, b = (s.url for s in cluster.processes)
            browser = requests.Session()
            page = browser.get(f"{a}staff/login", timeout=10)
            login = browser.post(
                f"{a}staff/login",
                data={
                    "username": "lin",
                    "password": "staff password 1",
                    "csrf_token": csrf_from(page.text),
                },
                allow_redirects=False,
                timeout=10,
            )
            assert login.status_code == 302
            copied = dict(browser.cookies)  # a copy of the cookie, as a thief would keep it
            on_b = browser.get(f"{b}staff/", allow_redirects=False, timeout=10)
            assert on_b.status_code == 200, "the session made on A works on B"
            logout = browser.post(
                f"{b}staff/logout",
                data={"csrf_token": csrf_from(on_b.text)},
                allow_redirects=False,
                timeout=10,
            )
            assert logout.status_code == 302
            for url in (a, b):
                replay = requests.get(
                    f"{url}staff/", cookies=copied, allow_redirects=False, timeout=10
                )
                assert replay.status_code == 302, "logged out on B: the cookie opens nothing"
                assert "/staff/login" in replay.headers["Location"]
        finally:
            cluster.stop()
