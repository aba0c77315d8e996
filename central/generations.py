"""Log generations: a kiosk enrolled again (its SD card replaced, its log wiped) goes on with
its hash chain where the centre's copy of it ends, instead of starting a second chain from 1
that the chain check (central/ingest/chain.py) would report as a fork at every seq.

At enrolment the centre tells the kiosk its generation (how many times this kiosk id has been
enrolled) and the seq and hash of the newest event it holds from it (sync.protocol.ChainBase);
the kiosk's empty log begins after that event (kiosk.store EventLog.continue_chain). Events the
kiosk made but never delivered before the wipe are gone with it; the centre already shows them
as a gap, if any later one arrived. docs/decisions.md says why this rather than a new kiosk id.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from central.db.schema import enrolment_codes, events, kiosks
from sync.events import GENESIS_HASH
from sync.protocol import ChainBase


def generation(conn: Connection, kiosk_id: str) -> int:
    """How many times this kiosk id has been enrolled (codes used)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(enrolment_codes)
            .where(enrolment_codes.c.kiosk_id == kiosk_id, enrolment_codes.c.used_at.is_not(None))
        ).scalar_one()
    )


def chain_base(conn: Connection, kiosk_id: str) -> ChainBase | None:
    """Where a kiosk enrolling now continues its chain; None for a first enrolment of a kiosk
    the centre has no event from."""
    count = generation(conn, kiosk_id)
    max_seq = conn.execute(select(kiosks.c.max_seq).where(kiosks.c.kiosk_id == kiosk_id)).scalar()
    max_seq = int(max_seq or 0)
    if max_seq == 0:
        return None if count <= 1 else ChainBase(generation=count, seq=0, hash=GENESIS_HASH)
    # A fork leaves two events with one seq: the one stored first is the chain's.
    head = conn.execute(
        select(events.c.hash)
        .where(events.c.kiosk_id == kiosk_id, events.c.seq == max_seq)
        .order_by(events.c.received_at, events.c.event_id)
        .limit(1)
    ).scalar()
    if head is None:  # not stored (cannot happen: max_seq counts stored events)
        return None
    return ChainBase(generation=max(count, 1), seq=max_seq, hash=str(head))
