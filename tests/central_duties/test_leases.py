"""Leases on the database (central/duties/lease.py): one holder at a time, takeover after
expiry, a fence that stops a holder who lost its lease, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from central.db.bulk import write_transaction
from central.db.schema import duty_leases, login_throttle
from central.duties import lease as leases
from central.duties.lease import LeaseLost


def acquire(engine, holder: str, duty: str = "d", ttl_s: float = 60):
    with write_transaction(engine) as conn:
        return leases.acquire(conn, duty, holder, ttl_s)


def lapse(engine, duty: str = "d") -> None:
    """Time passes beyond the lease: its holder stopped renewing (it died, or hangs)."""
    with engine.begin() as conn:
        past = leases.database_now(conn) - timedelta(seconds=1)
        conn.execute(update(duty_leases).where(duty_leases.c.duty == duty).values(expires_at=past))


def test_one_holder_at_a_time_and_a_takeover_after_expiry(central_engine):
    first = acquire(central_engine, "A")
    assert first is not None and first.generation == 1
    assert acquire(central_engine, "B") is None, "held by A"
    assert acquire(central_engine, "A") == first, "renewing keeps the generation"
    assert acquire(central_engine, "B", duty="other") is not None, "each duty its own lease"

    lapse(central_engine)
    taken = acquire(central_engine, "B")
    assert taken is not None and taken.generation == 2
    assert acquire(central_engine, "A") is None, "A comes back from a pause: B holds it now"
    with pytest.raises(LeaseLost), write_transaction(central_engine) as conn:
        leases.fence(conn, first, 60)

    with write_transaction(central_engine) as conn:
        assert leases.release(conn, taken)
    again = acquire(central_engine, "A")
    assert again is not None and again.generation == 3, "a released lease is free at once"


def test_an_expired_lease_nobody_took_still_fences(central_engine):
    held = acquire(central_engine, "A")
    lapse(central_engine)
    with write_transaction(central_engine) as conn:
        leases.fence(conn, held, 60)  # no one else can have written under it
    assert acquire(central_engine, "B") is None, "the fence renewed it"


def test_of_many_asking_at_once_exactly_one_gets_it(central_engine):
    for round_ in range(2):
        start = threading.Barrier(8)
        won: list[object] = []

        def ask(name: str, start: threading.Barrier = start, won: list[object] = won) -> None:
            start.wait()
            lease = acquire(central_engine, name)
            if lease is not None:
                won.append(lease)

        threads = [threading.Thread(target=ask, args=(f"P{n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(won) == 1, (round_, won)
        lapse(central_engine)  # the second round: all ask for an expired lease


def test_a_takeover_waits_for_the_holders_work_to_commit(central_engine):
    """A holder's work transaction starts with the fence; the lease expires during the work;
    a takeover must not happen (and so no other process work) until that transaction ends."""
    held = acquire(central_engine, "A")
    order: list[str] = []
    in_work = threading.Event()

    def work() -> None:
        with write_transaction(central_engine) as conn:
            leases.fence(conn, held, ttl_s=0)  # expires at once: only the row lock protects
            in_work.set()
            time.sleep(0.5)
            conn.execute(
                insert(login_throttle).values(
                    key="work of A", window_start=leases.database_now(conn), attempts=1
                )
            )
            order.append("A commits")

    def take_over() -> None:
        in_work.wait(10)
        lease = acquire(central_engine, "B")
        order.append(f"B {'takes it' if lease else 'is refused'}")

    threads = [threading.Thread(target=work), threading.Thread(target=take_over)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert order == ["A commits", "B takes it"]
    with central_engine.connect() as conn:
        assert conn.execute(select(login_throttle.c.key)).scalar_one() == "work of A"
