"""A small, known centre for the page tests, made through the real roster, enrolment and ingest.

Day 2026-11-29 (Asia/Shanghai, service day from 03:00); the clock stands at 12:00 local.
- S01 东湖站 (roster: C001 宋昕, C002 李娜, C003 王强), kiosk S01-1 alive;
- S02 西山站 (roster: C004 赵敏, C005 =HYPERLINK("x")), kiosk S02-1 silent for 3 hours.
C001 arrived 06:00 and left 11:30; C002 arrived 06:10 and is present.
C003 did not come. C004 (S02's roster) arrived at S01 at 07:00: a visitor there, absent at S02.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from flask import Flask
from sqlalchemy import Engine

from central import kiosks, roster
from central.ingest.heartbeat import record_heartbeat
from central.ingest.push import ingest_events
from central.roster_file import RosterRow
from central.stays import pairing
from sync.events import GENESIS_HASH, Event, seal
from sync.protocol import CameraReport, ClockReport, Heartbeat
from tests.proofs import CHECKS, badge

SHANGHAI = timezone(timedelta(hours=8))
DAY = datetime(2026, 11, 29, tzinfo=SHANGHAI)

ROSTER = [
    RosterRow(1, "C001", "宋昕", "城管一队", "S01", "东湖站"),
    RosterRow(2, "C002", "李娜", "城管一队", "S01", "东湖站"),
    RosterRow(3, "C003", "王强", "街道办", "S01", "东湖站"),
    RosterRow(4, "C004", "赵敏", "街道办", "S02", "西山站"),
    RosterRow(5, "C005", '=HYPERLINK("x")', "+unit", "S02", "西山站"),
]


def local(hour: int, minute: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute)


@dataclass
class FakeKiosk:
    """Makes chained events as a kiosk would (one boot, trusted clock)."""

    identity: kiosks.KioskIdentity
    token: str
    boot_id: str = "boot-1"
    seq: int = 0
    prev_hash: str = GENESIS_HASH
    made: list[Event] = field(default_factory=list)

    def event(self, cadre_id: str, kind: str, at: datetime, **extra: Any) -> Event:
        self.seq += 1
        if extra.get("source", "camera") != "manual":
            extra.setdefault("badge_token", badge(cadre_id, extra.get("badge_serial", 1)))
        event = seal(
            {
                "event_id": uuid.uuid4(),
                "kiosk_id": self.identity.kiosk_id,
                "site_id": self.identity.site_id,
                "seq": self.seq,
                "cadre_id": cadre_id,
                "badge_serial": 1,
                "kind": kind,
                "source": "camera",
                "device_time": at,
                "boot_id": self.boot_id,
                "monotonic_ns": self.seq * 1_000_000_000,
                "clock_trusted": True,
                "prev_hash": self.prev_hash,
                **extra,
            }
        )
        self.prev_hash = event.hash
        self.made.append(event)
        return event


@dataclass
class Seeded:
    kiosks: dict[str, FakeKiosk]
    events: dict[str, Event]


def enrol(engine: Engine, site_id: str, now: datetime) -> FakeKiosk:
    code = kiosks.add_kiosk(engine, site_id, now, timedelta(hours=1), name=f"{site_id} gate")
    identity, _, token = kiosks.enrol(engine, code.code, now)
    return FakeKiosk(identity, token)


def push(engine: Engine, kiosk: FakeKiosk, events: list[Event], now: datetime, app: Flask) -> None:
    central = app.extensions["central"]
    rules = pairing.StayRules.from_settings(central.settings)
    # No record reaches the centre before it was made.
    received = max([now, *(e.device_time + timedelta(minutes=1) for e in events)])
    answer = ingest_events(
        engine, kiosk.identity, [e.wire() for e in events], received, rules, checks=CHECKS
    )
    assert all(r.status == "stored" for r in answer.results), answer
    # Ingest may leave the pairing to a background refresher: do its work now, as it would.
    refresher = getattr(central, "stays", None)
    if refresher is not None:
        refresher.drain()


def heartbeat(engine: Engine, kiosk: FakeKiosk, at: datetime, app: Flask, **changes: Any) -> None:
    rules = pairing.StayRules.from_settings(app.extensions["central"].settings)
    beat = Heartbeat(
        app_version=changes.get("app_version", "1.0"),
        fleet=changes.get("fleet"),
        settings=changes.get("settings"),
        queue_length=changes.get("queue_length", 0),
        camera=CameraReport(ok=changes.get("camera_ok", True)),
        clock=ClockReport(trusted=True, boot_id=kiosk.boot_id),
        ready=True,
    )
    record_heartbeat(engine, kiosk.identity, beat, at, rules)


def seed(app: Flask) -> Seeded:
    engine: Engine = app.extensions["central"].engine
    now = app.extensions["central"].now()
    roster.import_roster(engine, ROSTER)
    east = enrol(engine, "S01", now - timedelta(days=1))
    west = enrol(engine, "S02", now - timedelta(days=1))
    made = {
        "c1_arrival": east.event("C001", "arrival", local(6, 0)),
        "c2_arrival": east.event("C002", "arrival", local(6, 10)),
        "c4_arrival": east.event("C004", "arrival", local(7, 0)),
        "c1_departure": east.event("C001", "departure", local(11, 30)),
    }
    push(engine, east, list(made.values()), now, app)
    heartbeat(engine, east, now - timedelta(seconds=30), app, queue_length=2)
    heartbeat(engine, west, now - timedelta(hours=3), app)
    seeded = Seeded({"S01": east, "S02": west}, made)
    app.extensions["seeded"] = seeded
    return seeded


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
