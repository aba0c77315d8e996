"""Leases on the database: which process runs a periodic duty, one at a time.

A lease is a row of `duty_leases`: the duty's name, its holder, an expiry and a generation. Any
`central serve` process may take a lease that is free or expired; the holder renews it well
before it expires; a process that dies stops renewing, and another takes the lease over once it
has expired (within `ttl` and a retry interval: seconds). A clean stop releases it at once.

Why a row rather than PostgreSQL advisory locks: the same code runs on SQLite and PostgreSQL, a
lease held by a host that vanished from the network expires on time (an advisory lock waits for
TCP keepalive to notice, two hours by default), and operators can read who holds what
(`central duties`). The price is the fence: a holder paused longer than its lease (a stopped VM,
a long GC) might wake up still believing it holds it. So every transaction that does a duty's
work begins with `fence()`, which succeeds only while the lease is at the same holder and
generation and renews it there; on PostgreSQL the row it updates stays locked until the work
commits, so a takeover waits for that transaction to end and then sees the renewed expiry.

Expiry is read from the database's clock (PostgreSQL) so hosts whose clocks disagree still agree
on when a lease ends; SQLite serves one host, whose clock it is.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, select, text, update

from central.db.bulk import dialect_insert
from central.db.schema import duty_leases

# Far enough in the past that any `expires_at <= now` holds: what a released lease expires at.
RELEASED = datetime(2000, 1, 1)


class LeaseLost(Exception):
    """The lease moved to another holder (or generation): the work in hand must not commit."""


@dataclass(frozen=True)
class Lease:
    duty: str
    holder: str
    generation: int


def new_holder_id() -> str:
    """This process's name as a lease holder: host, pid and a random tail (a pid comes back)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def database_now(conn: Connection) -> datetime:
    """Now, as naive UTC, by the database's clock (PostgreSQL) or this host's (SQLite)."""
    if conn.dialect.name == "postgresql":
        # clock_timestamp, not now(): the transaction's start would stand still in a long one.
        value: datetime = conn.execute(
            text("SELECT clock_timestamp() AT TIME ZONE 'UTC'")
        ).scalar_one()
        return value
    return datetime.now(UTC).replace(tzinfo=None)


def acquire(conn: Connection, duty: str, holder: str, ttl_s: float) -> Lease | None:
    """Take the lease of `duty`, or renew it when `holder` has it; None when another holds it.

    One statement decides (an INSERT of a missing row, or an UPDATE whose WHERE names the only
    cases it may take the row in), so two processes asking at once cannot both win.
    """
    now = database_now(conn)
    expires = now + timedelta(seconds=ttl_s)
    made = conn.execute(
        dialect_insert(conn, duty_leases)
        .values(duty=duty, holder=holder, generation=1, acquired_at=now, expires_at=expires)
        .on_conflict_do_nothing(index_elements=["duty"])
        .returning(duty_leases.c.generation)  # psycopg's rowcount is -1 for ON CONFLICT
    ).first()
    if made is not None:
        return Lease(duty, holder, 1)
    mine = duty_leases.c.holder == holder
    row = conn.execute(
        update(duty_leases)
        .where(duty_leases.c.duty == duty, mine | (duty_leases.c.expires_at <= now))
        .values(
            generation=case((mine, duty_leases.c.generation), else_=duty_leases.c.generation + 1),
            acquired_at=case((mine, duty_leases.c.acquired_at), else_=now),
            holder=holder,
            expires_at=expires,
        )
        .returning(duty_leases.c.generation)
    ).first()
    return None if row is None else Lease(duty, holder, int(row.generation))


def fence(conn: Connection, lease: Lease, ttl_s: float) -> datetime:
    """Prove, inside a work transaction, that `lease` still holds; renew it. Returns the
    database's now. Raises LeaseLost when another process took it (the caller rolls back).

    The generation is the fencing token: any takeover raises it, so an expired lease nobody took
    may still be used (no one else can have written under it), and a taken one never again.
    """
    now = database_now(conn)
    renewed = conn.execute(
        update(duty_leases)
        .where(
            duty_leases.c.duty == lease.duty,
            duty_leases.c.holder == lease.holder,
            duty_leases.c.generation == lease.generation,
        )
        .values(expires_at=now + timedelta(seconds=ttl_s))
    ).rowcount
    if renewed != 1:
        raise LeaseLost(f"{lease.duty}: lease generation {lease.generation} is no longer ours")
    return now


def release(conn: Connection, lease: Lease) -> bool:
    """Give the lease up (a clean stop): another process may take it at its next try."""
    released = conn.execute(
        update(duty_leases)
        .where(
            duty_leases.c.duty == lease.duty,
            duty_leases.c.holder == lease.holder,
            duty_leases.c.generation == lease.generation,
        )
        .values(expires_at=RELEASED)
    ).rowcount
    return released == 1


def holders(conn: Connection) -> list[dict[str, Any]]:
    """Every lease with its holder, generation and expiry, and whether it is live now."""
    now = database_now(conn)
    rows = conn.execute(select(duty_leases).order_by(duty_leases.c.duty)).all()
    return [dict(row._mapping, live=row.expires_at > now) for row in rows]
