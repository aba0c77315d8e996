"""The kiosk API over HTTP (Flask's test client): tokens, enrolment, validation, pull, heartbeat."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from central import api as central_api
from central import kiosks as central_kiosks
from central import roster
from central.app import create_app
from central.db.schema import events, kiosk_status
from central.kiosks import kiosk_health
from central.roster_file import RosterRow
from central.settings import CentralSettings
from sync.protocol import EnrolAnswer, PullAnswer, PushAnswer
from tests.badges import write_issuing_key
from tests.sync.helpers import T0, MemoryLog, enrolled, load_roster


@pytest.fixture
def app(central_engine, tmp_path):
    write_issuing_key(tmp_path / "issuing_key.pem")
    load_roster(central_engine, {"S01": ["C1", "C2"], "S02": ["C9"]})
    settings = CentralSettings(api_max_body_bytes=64 * 1024)
    clock = {"now": T0}
    application = create_app(
        tmp_path,
        settings,
        engine=central_engine,
        now=lambda: clock["now"],
        config={"TESTING": True},
    )
    application.clock = clock
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def push(client, token: str, kiosk_id: str, batch) -> object:
    body = {"kiosk_id": kiosk_id, "events": [e.wire() for e in batch]}
    return client.post("/api/v1/events", json=body, headers=bearer(token))


def test_enrolment_hands_out_token_roster_and_keys_once(app, client, central_engine):
    new = central_kiosks.add_kiosk(central_engine, "S01", T0, timedelta(hours=1), name="gate")
    answer = client.post("/api/v1/enrol", json={"code": new.code.lower()})
    assert answer.status_code == 200, answer.json
    enrolment = EnrolAnswer.model_validate(answer.json)
    assert (enrolment.kiosk_id, enrolment.site_id) == (new.kiosk_id, "S01")
    assert {c.cadre_id for c in enrolment.roster.cadres} == {"C1", "C2"}  # its own site only
    assert enrolment.roster.full and enrolment.roster.site_name == "S01"
    assert len(enrolment.public_keys.keys) == 1
    with central_engine.connect() as conn:
        stored = conn.execute(select(central_kiosks.kiosks.c.token_hash)).scalars().all()
    assert enrolment.token not in stored  # only the hash is kept
    assert central_kiosks.hash_secret(enrolment.token) in stored

    again = client.post("/api/v1/enrol", json={"code": new.code})
    assert again.status_code == 410 and "already used" in again.json["message"]
    unknown = client.post("/api/v1/enrol", json={"code": "AAAA-BBBB-CCCC-DDDD"})
    assert unknown.status_code == 404


def test_expired_code_is_refused(app, client, central_engine):
    new = central_kiosks.add_kiosk(central_engine, "S01", T0, timedelta(hours=1))
    app.clock["now"] = T0 + timedelta(hours=2)
    answer = client.post("/api/v1/enrol", json={"code": new.code})
    assert answer.status_code == 410 and "expired" in answer.json["message"]


def test_revoked_kiosk_is_refused_at_once(app, client, central_engine):
    kiosk_id, token = enrolled(central_engine, "S01")
    log = MemoryLog(kiosk_id, "S01")
    assert push(client, token, kiosk_id, [log.record("C1", "arrival", T0)]).status_code == 200
    central_kiosks.revoke(central_engine, kiosk_id, T0, by="admin")
    refused = push(client, token, kiosk_id, [log.record("C2", "arrival", T0)])
    assert refused.status_code == 401 and refused.json["error"] == "unauthorized"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/api/v1/pull", json={}, headers=bearer(token)).status_code == 401
    assert client.post("/api/v1/events", json={}).status_code == 401  # no token at all
    with central_engine.connect() as conn:
        assert len(conn.execute(select(events.c.event_id)).all()) == 1


def test_batch_for_another_kiosk_is_forbidden(client, central_engine):
    _mine, token = enrolled(central_engine, "S01")
    other, _ = enrolled(central_engine, "S01")
    log = MemoryLog(other, "S01")
    answer = push(client, token, other, [log.record("C1", "arrival", T0)])
    assert answer.status_code == 403
    assert answer.json["fields"] == [{"field": "kiosk_id", "reason": "not the kiosk of the token"}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kiosk_id": "K", "events": "none"}, "events"),
        ({"events": []}, "kiosk_id"),
        ({"kiosk_id": "K", "events": [], "extra": 1}, "extra"),
        ({"kiosk_id": "K", "events": [1, 2]}, "events.0"),
    ],
)
def test_malformed_batch_is_400_naming_the_field(client, central_engine, body, field):
    _kiosk_id, token = enrolled(central_engine, "S01")
    answer = client.post("/api/v1/events", json=body, headers=bearer(token))
    assert answer.status_code == 400
    assert answer.json["error"] == "malformed"
    assert field in [p["field"] for p in answer.json["fields"]]


def test_not_json_too_large_and_wrong_type(client, central_engine):
    kiosk_id, token = enrolled(central_engine, "S01")
    broken = client.post(
        "/api/v1/events",
        data=b'{"kiosk_id": "K", "events": [',
        content_type="application/json",
        headers=bearer(token),
    )
    assert broken.status_code == 400 and broken.json["fields"][0]["field"] == "(body)"
    huge = json.dumps({"kiosk_id": kiosk_id, "events": [], "pad": "x" * 70_000})
    too_large = client.post(
        "/api/v1/events", data=huge, content_type="application/json", headers=bearer(token)
    )
    assert too_large.status_code == 413 and too_large.json["error"] == "too_large"
    form = client.post("/api/v1/events", data={"a": "b"}, headers=bearer(token))
    assert form.status_code == 415


def test_push_answers_each_event_and_the_time(client, central_engine):
    kiosk_id, token = enrolled(central_engine, "S01")
    log = MemoryLog(kiosk_id, "S01")
    batch = [log.record("C1", "arrival", T0), log.record("C2", "arrival", T0)]
    answer = PushAnswer.model_validate(push(client, token, kiosk_id, batch).json)
    assert [(r.index, r.event_id, r.status) for r in answer.results] == [
        (0, str(batch[0].event_id), "stored"),
        (1, str(batch[1].event_id), "stored"),
    ]
    assert answer.server_time == T0


def test_pull_sends_only_what_changed(client, central_engine):
    _kiosk_id, token = enrolled(central_engine, "S01")
    first = PullAnswer.model_validate(
        client.post("/api/v1/pull", json={}, headers=bearer(token)).json
    )
    assert first.roster.full and {c.cadre_id for c in first.roster.cadres} == {"C1", "C2"}
    versions = {
        "roster_version": first.roster.version,
        "keys_version": first.public_keys.version,
        "settings_version": 0,
    }
    assert first.settings is None  # no settings pushed yet
    same = PullAnswer.model_validate(
        client.post("/api/v1/pull", json=versions, headers=bearer(token)).json
    )
    assert (same.roster, same.public_keys, same.settings) == (None, None, None)

    # C2 moves to S02, C5 joins S01, C9 (S02) is renamed.
    roster.import_roster(
        central_engine,
        [
            RosterRow(2, "C2", "name C2", "unit", "S02", "S02"),
            RosterRow(3, "C5", "new one", "unit", "S01", "S01"),
            RosterRow(4, "C9", "renamed", "unit", "S02", "S02"),
        ],
        now=T0,
    )
    delta = PullAnswer.model_validate(
        client.post("/api/v1/pull", json=versions, headers=bearer(token)).json
    ).roster
    assert not delta.full
    assert [c.cadre_id for c in delta.cadres] == ["C5"]
    assert set(delta.removed) == {"C2", "C9"}
    assert delta.version > versions["roster_version"]

    # A kiosk that holds a version the centre never gave (the centre's store was restored from
    # an older backup) gets the whole roster again.
    ahead = dict(versions, roster_version=delta.version + 50)
    again = PullAnswer.model_validate(
        client.post("/api/v1/pull", json=ahead, headers=bearer(token)).json
    ).roster
    assert again.full and {c.cadre_id for c in again.cadres} == {"C1", "C5"}


def test_heartbeat_is_kept_as_the_kiosk_health(app, client, central_engine):
    kiosk_id, token = enrolled(central_engine, "S01")
    beat = {
        "app_version": "0.1.0",
        "queue_length": 12,
        "last_scan_at": "2026-12-01T05:59:00+08:00",
        "camera": {"ok": False, "detail": "no frames for 30 s"},
        "clock": {"trusted": False, "offset_s": -3600.5, "boot_id": "b1"},
        "disk_free_bytes": 10**9,
        "ready": False,
        "ready_detail": "camera",
    }
    assert client.post("/api/v1/heartbeat", json=beat, headers=bearer(token)).status_code == 200
    with central_engine.connect() as conn:
        status = conn.execute(select(kiosk_status)).one()
        health = kiosk_health(conn, T0 + timedelta(minutes=10), dead_after_s=300)
    assert (status.queue_length, status.camera_ok, status.clock_offset_s) == (12, False, -3600.5)
    mine = next(k for k in health if k["kiosk_id"] == kiosk_id)
    assert mine["dead"] and mine["silent_s"] == 600
    assert mine["camera_detail"] == "no frames for 30 s"
    bad = dict(beat, queue_length=-1)
    answer = client.post("/api/v1/heartbeat", json=bad, headers=bearer(token))
    assert answer.status_code == 400 and answer.json["fields"][0]["field"] == "queue_length"


def test_a_failure_inside_the_centre_is_a_json_500(client, central_engine, monkeypatch):
    kiosk_id, token = enrolled(central_engine, "S01")

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(central_api, "ingest_events", broken)
    log = MemoryLog(kiosk_id, "S01")
    answer = push(client, token, kiosk_id, [log.record("C1", "arrival", T0)])
    assert answer.status_code == 500 and answer.json["error"] == "internal"
    assert "disk on fire" not in answer.get_data(as_text=True)  # no internals to the kiosk
