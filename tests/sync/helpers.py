"""Builders for the sync tests: a roster, enrolled kiosks, and an in-memory kiosk log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from central import kiosks, roster
from central.kiosks import KioskIdentity
from central.roster_file import RosterRow
from central.stays.pairing import StayRules
from central.timefix import DayRule
from sync.events import GENESIS_HASH, Event, seal
from tests.badges import badge

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # 06:00 on 1 December in Asia/Shanghai
RULES = StayRules(
    DayRule.of("Asia/Shanghai", "03:00"),
    repeat_window=timedelta(minutes=2),
    longest_shift=timedelta(hours=16),
    overlong=timedelta(hours=12),
)


def load_roster(engine: Engine, sites: dict[str, list[str]]) -> None:
    """sites: site id -> cadre ids on its roster."""
    rows = []
    for site_id, cadre_ids in sites.items():
        for cadre_id in cadre_ids:
            rows.append(
                RosterRow(len(rows) + 2, cadre_id, f"name {cadre_id}", "unit", site_id, site_id)
            )
    roster.import_roster(engine, rows, now=T0)


def enrolled(engine: Engine, site_id: str, kiosk_id: str | None = None) -> tuple[str, str]:
    """(kiosk_id, token) of a freshly enrolled kiosk."""
    new = kiosks.add_kiosk(engine, site_id, T0, timedelta(hours=1), kiosk_id=kiosk_id)
    identity, _, token = kiosks.enrol(engine, new.code, T0)
    return identity.kiosk_id, token


class MemoryLog:
    """A kiosk log in memory with the three methods the agent uses; makes chained events."""

    def __init__(self, kiosk_id: str, site_id: str, boot_id: str = "boot-1"):
        self.kiosk_id = kiosk_id
        self.site_id = site_id
        self.boot_id = boot_id
        self.events: list[Event] = []
        self.cursor = 0
        self.acknowledged: list[int] = []
        self.rewound: list[int] = []

    @property
    def identity(self) -> KioskIdentity:
        return KioskIdentity(self.kiosk_id, self.site_id)

    def record(self, cadre_id: str, kind: str, at: datetime, **extra: Any) -> Event:
        previous = self.events[-1] if self.events else None
        fields: dict[str, Any] = {
            "event_id": uuid.uuid4(),
            "kiosk_id": self.kiosk_id,
            "site_id": self.site_id,
            "seq": (previous.seq + 1) if previous else 1,
            "cadre_id": cadre_id,
            "badge_serial": 1,
            "kind": kind,
            "source": "camera",
            "device_time": at,
            "boot_id": self.boot_id,
            "monotonic_ns": int((at - T0).total_seconds() * 1e9) + 10**15,
            "clock_trusted": True,
            "prev_hash": previous.hash if previous else GENESIS_HASH,
        }
        fields.update(extra)
        if fields["source"] != "manual" and fields["badge_serial"] is not None:
            # The badge it was read from, unless the test says otherwise.
            fields.setdefault("badge_token", badge(cadre_id, fields["badge_serial"]))
        event = seal(fields)
        self.events.append(event)
        return event

    def pending(self, limit: int) -> list[Event]:
        return [e for e in self.events if e.seq > self.cursor][:limit]

    def acknowledge(self, through_seq: int) -> None:
        assert through_seq >= self.cursor, "the cursor never moves back"
        self.cursor = through_seq
        self.acknowledged.append(through_seq)

    def pending_count(self) -> int:
        return sum(1 for e in self.events if e.seq > self.cursor)

    @property
    def acknowledged_seq(self) -> int:
        return self.cursor

    def rewind(self, to_seq: int) -> None:
        self.cursor = min(self.cursor, to_seq)
        self.rewound.append(to_seq)
