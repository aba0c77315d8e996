"""The duty runner (central/duties/runner.py): of two processes, one does a duty's work at a time,
the other takes over when the first dies; `duty_runs` shows it and would show an overlap."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Connection, func, insert, select

from central.db.schema import duty_runs, login_throttle, staff_sessions, staff_users
from central.duties import Duty, DutyRunner
from central.duties import lease as leases
from central.duties import runner as runner_module
from central.duties.housekeeping import DUTY_RUNS_KEEP, housekeeping_duty
from central.duties.report import last_runs, overlapping_runs

T = datetime(2026, 11, 29, 4, 0)


def busy_duty(step_s: float = 0.02) -> Duty:
    """A duty that always finds work and takes `step_s` per step."""

    def step(conn: Connection) -> int:
        time.sleep(step_s)
        return 1

    return Duty(name="busy", step=step, idle_s=0.05)


def wait_until(check, timeout_s: float = 20.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, "not within the time allowed"
        time.sleep(0.02)
    return time.monotonic() - started


def runs(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(duty_runs).order_by(duty_runs.c.started_at)).all()


def test_one_of_two_processes_works_and_the_other_takes_over_when_it_dies(central_engine):
    first = DutyRunner(central_engine, "host:1:a", lease_s=1.0, retry_s=0.05)
    second = DutyRunner(central_engine, "host:2:b", lease_s=1.0, retry_s=0.05)
    for runner in (first, second):
        runner.add(busy_duty())
        runner.start()
    try:
        wait_until(lambda: len(runs(central_engine)) >= 10)
        holders = {r.holder for r in runs(central_engine)}
        assert len(holders) == 1, "one process does the work"
        (alive, dead) = (second, first) if holders == {"host:1:a"} else (first, second)
        # The holder dies: its thread stops and nothing is released (as after SIGKILL).
        dead._release = lambda running: None  # type: ignore[method-assign]
        dead.stop()
        died_at = len(runs(central_engine))
        took = wait_until(lambda: alive.status()[0].holding)
        wait_until(lambda: len(runs(central_engine)) >= died_at + 10)
    finally:
        for runner in (first, second):
            runner.stop()
    print(f"taken over {took:.2f} s after the holder stopped (lease 1 s)")
    done = runs(central_engine)
    assert {r.holder for r in done[:died_at]} == {dead.holder}
    assert {r.holder for r in done[died_at:]} == {alive.holder}
    assert done[died_at].generation == done[0].generation + 1
    with central_engine.connect() as conn:
        assert overlapping_runs(conn) == []
        (last,) = last_runs(conn)
    assert last["holder"] == alive.holder and last["runs"] == len(done)


def test_a_stopped_runner_releases_its_lease_at_once(central_engine):
    first = DutyRunner(central_engine, "host:1:a", lease_s=60, retry_s=0.05)
    second = DutyRunner(central_engine, "host:2:b", lease_s=60, retry_s=0.05)
    first.add(busy_duty())
    second.add(busy_duty())
    first.start()
    wait_until(lambda: first.status()[0].holding)
    second.start()
    first.stop()  # SIGTERM: the lease is released, not left to expire in 60 s
    try:
        wait_until(lambda: second.status()[0].holding, timeout_s=10)
    finally:
        second.stop()


def test_without_leases_the_runs_check_finds_two_processes_at_once(central_engine, monkeypatch):
    """The check of the multi-process test is not toothless: two runners whose leases grant
    everything do overlap, and overlapping_runs says so."""
    if central_engine.dialect.name == "sqlite":
        pytest.skip("SQLite runs one write transaction at a time: two holders cannot overlap")
    monkeypatch.setattr(
        runner_module.leases,
        "acquire",
        lambda conn, duty, holder, ttl: leases.Lease(duty, holder, 1),
    )
    monkeypatch.setattr(
        runner_module.leases, "fence", lambda conn, lease, ttl: leases.database_now(conn)
    )
    runners = [DutyRunner(central_engine, f"host:{n}:x", lease_s=1.0) for n in (1, 2)]
    for runner in runners:
        runner.add(busy_duty(step_s=0.05))
        runner.start()
    try:
        wait_until(lambda: len(runs(central_engine)) >= 20)
    finally:
        for runner in runners:
            runner.stop()
    with central_engine.connect() as conn:
        assert overlapping_runs(conn), "two holders at once must show"


def test_housekeeping_deletes_what_has_expired_and_keeps_the_rest(central_engine):
    now = T + timedelta(days=40)
    window_s = 900
    with central_engine.begin() as conn:
        user = conn.execute(
            insert(staff_users).values(
                username="lin", password_hash="x", role="viewer", active=True, created_at=T
            )
        ).inserted_primary_key[0]
        for name, expires in (
            ("ended", now - timedelta(seconds=1)),
            ("live", now + timedelta(hours=1)),
        ):
            conn.execute(
                insert(staff_sessions).values(
                    session_hash=name,
                    user_id=user,
                    csrf="c",
                    created_at=T,
                    seen_at=T,
                    expires_at=expires,
                )
            )
        for key, start in (("old", now - timedelta(seconds=window_s)), ("new", now)):
            conn.execute(insert(login_throttle).values(key=key, window_start=start, attempts=3))
        db_now = leases.database_now(conn)
        for started in (db_now - DUTY_RUNS_KEEP - timedelta(minutes=1), db_now):
            conn.execute(
                insert(duty_runs).values(
                    duty="stays",
                    holder="h",
                    generation=1,
                    started_at=started,
                    ended_at=started,
                    items=1,
                )
            )
    runner = DutyRunner(central_engine, "host:1:a")
    runner.add(housekeeping_duty(lambda: now, window_s))
    assert runner.run_once("housekeeping") == 3
    with central_engine.connect() as conn:
        assert conn.execute(select(staff_sessions.c.session_hash)).scalars().all() == ["live"]
        assert conn.execute(select(login_throttle.c.key)).scalars().all() == ["new"]
        # Two kept: the recent one, and the housekeeping run just recorded.
        assert conn.execute(select(func.count()).select_from(duty_runs)).scalar_one() == 2
    assert runner.run_once("housekeeping") == 0, "nothing left to delete"
