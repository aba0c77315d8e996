"""Rows 1 and 2 of issue 11, tried as an attacker would: a valid kiosk token, a forged push.

A kiosk's bearer token is on its SD card in clear, so whoever copies the card can push anything
in that kiosk's name. These tests push over the kiosk API (Flask's test client, SQLite and
PostgreSQL) and check what the centre counts. Records are built as wire dicts (the event's JSON
with its hash) so a forger's choices, proofs included, are the test's own.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from central import kiosks as central_kiosks
from central import roster
from central.app import create_app
from central.badges import issue_badges
from central.db.schema import anomalies, events, stays
from central.services import central_of
from central.settings import CentralSettings
from sync.events import GENESIS_HASH, Event, compute_hash
from tests.badges import ISSUED, TEST_KEY, badge, write_issuing_key
from tests.sync.helpers import T0, load_roster


@pytest.fixture
def app(central_engine, tmp_path):
    write_issuing_key(tmp_path / "issuing_key.pem")
    load_roster(central_engine, {"S01": ["C1", "C2", "C3", "C4"], "S02": ["C9"]})
    clock = {"now": T0}
    application = create_app(
        tmp_path,
        CentralSettings(),
        engine=central_engine,
        now=lambda: clock["now"],
        config={"TESTING": True},
    )
    application.clock = clock
    return application


class Kiosk:
    """A kiosk's identity and log as a forger holding its token would make them."""

    def __init__(self, engine: Any, site_id: str, boot_id: str = "boot-1") -> None:
        new = central_kiosks.add_kiosk(engine, site_id, T0, timedelta(hours=1))
        identity, _, self.token = central_kiosks.enrol(engine, new.code, T0)
        self.kiosk_id, self.site_id, self.boot_id = identity.kiosk_id, site_id, boot_id
        self.seq, self.prev_hash = 0, GENESIS_HASH

    def record(self, cadre_id: str, kind: str, at: datetime, **extra: Any) -> dict[str, Any]:
        """One chained record; `badge_token` (if any) is added after the model, so this
        builds what any version of the schema would carry."""
        token = extra.pop("badge_token", None)
        self.seq += 1
        fields = {
            "event_id": uuid.uuid4(),
            "kiosk_id": self.kiosk_id,
            "site_id": self.site_id,
            "seq": self.seq,
            "cadre_id": cadre_id,
            "badge_serial": 1,
            "kind": kind,
            "source": "camera",
            "device_time": at,
            "boot_id": self.boot_id,
            "monotonic_ns": 10**12 + int((at - T0).total_seconds() * 1e9),
            "clock_trusted": True,
            "prev_hash": self.prev_hash,
            "hash": GENESIS_HASH,
            **extra,
        }
        wire = Event.model_validate(fields).wire()
        if token is not None:
            wire["badge_token"] = token
        wire["hash"] = compute_hash(wire)
        self.prev_hash = wire["hash"]
        return wire

    def push(self, client: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
        answer = client.post(
            "/api/v1/events",
            json={"kiosk_id": self.kiosk_id, "events": records},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert answer.status_code == 200, answer.json
        return answer.json


def _stays(engine: Any) -> dict[str, list[str]]:
    """cadre id -> the states of its stays."""
    found: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for row in conn.execute(select(stays.c.cadre_id, stays.c.state)):
            found.setdefault(row.cadre_id, []).append(row.state)
    return found


def _anomalies(engine: Any) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        return [
            (r.kind, r.event_id)
            for r in conn.execute(
                select(anomalies.c.kind, anomalies.c.event_id).order_by(anomalies.c.anomaly_id)
            )
        ]


def test_row1_a_kiosk_cannot_void_a_record_of_another_kiosk(app, central_engine):
    """Row 1: a kiosk of site A pushed `kind=void, corrects=<a record of site B>`; site B's stay
    vanished with no anomaly. Now the void is kept but refused, with an anomaly, and B's stay
    stands; a kiosk's void of its own record still works."""
    client = app.test_client()
    app.clock["now"] = T0 + timedelta(hours=1)
    site_a, site_b = Kiosk(central_engine, "S01"), Kiosk(central_engine, "S02")
    hand = {"source": "manual", "operator": "lead", "reason": "badge at home"}
    at_b = site_b.record("C9", "arrival", T0, badge_serial=None, **hand)
    site_b.push(client, [at_b])
    own = site_a.record("C1", "arrival", T0, badge_serial=None, **hand)
    site_a.push(client, [own])
    central_of(app).stays.drain()
    assert _stays(central_engine) == {"C9": ["open"], "C1": ["open"]}

    void = {
        "source": "manual",
        "operator": "x",
        "reason": "x",
        "badge_serial": None,
    }
    foreign = site_a.record(
        "C9", "void", T0 + timedelta(minutes=5), corrects=at_b["event_id"], **void
    )
    mine = site_a.record("C1", "void", T0 + timedelta(minutes=6), corrects=own["event_id"], **void)
    answer = site_a.push(client, [foreign, mine])
    central_of(app).stays.drain()

    # B's stay stands; A's void of its own record took effect.
    assert _stays(central_engine) == {"C9": ["open"]}
    assert [r["status"] for r in answer["results"]] == ["stored", "stored"]
    assert "not counted" in answer["results"][0]["reason"]
    assert answer["results"][1]["reason"] is None
    assert _anomalies(central_engine) == [("correction_lane", foreign["event_id"])]
    with central_engine.connect() as conn:
        kept = conn.execute(
            select(events.c.quarantine).where(events.c.event_id == foreign["event_id"])
        ).scalar_one()
    assert kept == "foreign_correction"


def test_row2_a_forged_push_stores_no_attendance_and_the_real_one_counts(app, central_engine):
    """Row 2: with only a kiosk's token, a push of arrivals for cadres of other sites, for ids on
    no roster, for a revoked badge, backdated 3 days with clock_trusted=true, was all stored and
    counted. Now each forged record is kept, not counted, and raises one anomaly; the same
    arrivals with the badges really read are stored and counted."""
    client = app.test_client()
    app.clock["now"] = T0 + timedelta(hours=1)
    issue_badges(central_engine, TEST_KEY, cadre_ids=["C3"], today=ISSUED)
    roster.revoke_badge(central_engine, "C3", now=T0 - timedelta(hours=1))  # C3's lost badge
    victim = Kiosk(central_engine, "S02")
    elsewhere = victim.record("C9", "arrival", T0, badge_token=badge("C9"))
    victim.push(client, [elsewhere])
    central_of(app).stays.drain()
    before = _anomalies(central_engine)

    kiosk = Kiosk(central_engine, "S01")
    later = T0 + timedelta(minutes=10)
    void = {
        "source": "manual",
        "operator": "x",
        "reason": "x",
        "badge_serial": None,
    }
    forged = [
        kiosk.record("C1", "arrival", later),  # typed in: no badge was read
        kiosk.record("C2", "arrival", later, badge_token=badge("C1")),  # C1's badge for C2
        kiosk.record("NOBODY", "arrival", later, badge_token=badge("C1")),  # an id on no roster
        kiosk.record("C3", "arrival", later, badge_token=badge("C3", 1)),  # the revoked badge
        kiosk.record(  # a real badge, backdated 3 days on a clock said to be trusted
            "C4",
            "arrival",
            T0 - timedelta(days=3),
            badge_token=badge("C4"),
            boot_id="boot-0",
            monotonic_ns=5 * 10**9,
        ),
        kiosk.record("C9", "void", later, corrects=elsewhere["event_id"], **void),
    ]
    answer = kiosk.push(client, forged)
    central_of(app).stays.drain()

    assert _stays(central_engine) == {"C9": ["open"]}  # nothing of the forger's counts
    assert [r["status"] for r in answer["results"]] == ["stored"] * len(forged)
    assert all("not counted" in r["reason"] for r in answer["results"])
    raised = _anomalies(central_engine)[len(before) :]
    assert sorted(raised, key=lambda a: str(a[1])) == sorted(
        [
            ("badge_proof", forged[0]["event_id"]),
            ("badge_proof", forged[1]["event_id"]),
            ("badge_proof", forged[2]["event_id"]),
            ("badge_proof", forged[3]["event_id"]),
            ("time_claim", forged[4]["event_id"]),
            ("correction_lane", forged[5]["event_id"]),
        ],
        key=lambda a: str(a[1]),
    )
    with central_engine.connect() as conn:
        kept = dict(conn.execute(select(events.c.event_id, events.c.quarantine)).all())
    assert [kept[r["event_id"]] for r in forged] == [
        "no_badge_proof",
        "badge_mismatch",
        "badge_mismatch",
        "badge_revoked",
        "time_claim",
        "foreign_correction",
    ]

    real = [
        kiosk.record(
            cadre,
            "arrival",
            later + timedelta(minutes=1),
            badge_token=badge(cadre, serial),
            badge_serial=serial,
        )
        for cadre, serial in (("C1", 1), ("C2", 1), ("C3", 2), ("C4", 1))
    ]
    answer = kiosk.push(client, real)
    central_of(app).stays.drain()
    assert [(r["status"], r["reason"]) for r in answer["results"]] == [("stored", None)] * 4
    assert _stays(central_engine) == {c: ["open"] for c in ("C1", "C2", "C3", "C4", "C9")}
    assert len(_anomalies(central_engine)) == len(before) + len(forged)


def test_a_badge_revoked_after_the_scan_still_counts(app, central_engine):
    """Revocation is judged at the scan's time: a badge read offline before it was revoked, and
    pushed after, counts; read after the revocation, it does not."""
    client = app.test_client()
    kiosk = Kiosk(central_engine, "S01")
    issue_badges(central_engine, TEST_KEY, cadre_ids=["C1"], today=ISSUED)
    roster.revoke_badge(central_engine, "C1", now=T0 + timedelta(hours=1))
    app.clock["now"] = T0 + timedelta(hours=3)
    before = kiosk.record("C1", "arrival", T0, badge_token=badge("C1"))
    after = kiosk.record("C1", "arrival", T0 + timedelta(hours=2), badge_token=badge("C1"))
    answer = kiosk.push(client, [before, after])
    central_of(app).stays.drain()
    assert answer["results"][0]["reason"] is None
    assert "revoked at 2026-11-30 23:00:00 UTC" in answer["results"][1]["reason"]
    with central_engine.connect() as conn:
        counted = (
            conn.execute(select(events.c.event_id).where(events.c.quarantine.is_(None)))
            .scalars()
            .all()
        )
    assert counted == [before["event_id"]]
    assert _stays(central_engine) == {"C1": ["open"]}
