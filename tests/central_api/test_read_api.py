"""The read API as an integration uses it: tokens and scopes, the lists, cursor paging, codes."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from central.db.engine import make_engine
from central.db.schema import api_tokens
from central.readapi import tokens
from tests.central_api.helpers import make_token, read, read_all
from tests.central_web.seed import local, push, seed

DAY = date(2026, 11, 29)


def test_no_token_a_revoked_token_or_a_missing_scope_reads_nothing(app: Flask) -> None:
    seed(app)
    client = app.test_client()
    answer = read(client, "events", None)
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert read(client, "events", "cit_not-a-token").status_code == 401

    kiosks_only = make_token(app, "kiosks", name="monitor")
    refused = read(client, "events", kiosks_only)
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "forbidden"
    assert read(client, "kiosks", kiosks_only).status_code == 200

    tokens.revoke_token(app.extensions["central"].engine, "monitor", "test", local(12))
    assert read(client, "kiosks", kiosks_only).status_code == 401


def test_tokens_are_stored_as_hashes_only(app: Flask) -> None:
    clear = make_token(app, "events")
    engine = app.extensions["central"].engine
    with engine.connect() as conn:
        stored = conn.execute(select(api_tokens)).one()
        dump = " ".join(str(v) for v in stored)
    assert clear.startswith("cit_") and len(clear) > 40
    assert clear not in dump
    assert stored.token_hash == tokens.hash_token(clear)


def test_attendance_lists_the_absent_and_who_came_elsewhere(app: Flask) -> None:
    seed(app)
    token = make_token(app, "attendance")
    rows = {r["cadre_id"]: r for r in read_all(app.test_client(), "attendance", token, day=DAY)}
    assert sorted(rows) == ["C001", "C002", "C003", "C004", "C005"]
    assert rows["C001"]["status"] == "departed"
    assert rows["C001"]["first_arrival"] == "2026-11-28T22:00:00Z"  # 06:00 in Shanghai
    assert rows["C002"]["status"] == "present"
    assert rows["C003"]["status"] == "absent"
    assert rows["C003"]["first_arrival"] is None
    # C004 belongs to S02 and came to S01: absent at home, present elsewhere.
    assert rows["C004"]["status"] == "absent"
    assert [(e["site_id"], e["status"]) for e in rows["C004"]["elsewhere"]] == [("S01", "present")]
    one_site = read_all(app.test_client(), "attendance", token, day=DAY, site_id="S02")
    assert [r["cadre_id"] for r in one_site] == ["C004", "C005"]


def test_paging_by_cursor_returns_every_row_once_in_a_fixed_order(app: Flask) -> None:
    seeded = seed(app)
    token = make_token(app)
    client = app.test_client()
    everything = read(client, "events", token).get_json()
    assert everything["next_cursor"] is None
    paged = read_all(client, "events", token, limit=1)
    assert paged == everything["results"]
    assert sorted(r["event_id"] for r in paged) == sorted(
        str(e.event_id) for e in seeded.events.values()
    )
    first = paged[0]
    assert first["kind"] in {"arrival", "departure"} and first["source"] == "camera"
    assert first["counted"] is True and first["by_hand"] is False
    assert first["received_at"].endswith("Z")
    # Stays and attendance page the same way.
    assert (
        read_all(client, "stays", token, day=DAY, limit=1)
        == (read(client, "stays", token, day=DAY).get_json()["results"])
    )
    assert [r["cadre_id"] for r in read_all(client, "attendance", token, day=DAY, limit=2)] == [
        "C001",
        "C002",
        "C003",
        "C004",
        "C005",
    ]


def test_a_cursor_of_another_list_or_a_forged_one_is_refused(app: Flask) -> None:
    seed(app)
    token = make_token(app)
    client = app.test_client()
    cursor = read(client, "events", token, limit=1).get_json()["next_cursor"]
    assert cursor
    wrong = read(client, "anomalies", token, cursor=cursor)
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "bad_cursor"
    assert read(client, "events", token, cursor="!!!").status_code == 400
    assert read(client, "events", token, cursor="W10").status_code == 400  # "[]"


def test_bad_or_unknown_parameters_are_named(app: Flask) -> None:
    token = make_token(app)
    client = app.test_client()
    unknown = read(client, "events", token, site="S01")
    assert unknown.status_code == 400
    assert [f["field"] for f in unknown.get_json()["fields"]] == ["site"]
    missing = read(client, "stays", token)
    assert missing.status_code == 400
    assert [f["field"] for f in missing.get_json()["fields"]] == ["day"]
    assert read(client, "events", token, limit=0).status_code == 400
    assert read(client, "events", token, limit=1001).status_code == 400
    assert read(client, "stays", token, day="29/11/2026").status_code == 400


def test_anomalies_and_kiosks_read_as_codes(app: Flask) -> None:
    seeded = seed(app)
    east = seeded.kiosks["S01"]
    east.seq += 1  # seq 5 never comes: a gap in east's chain
    push(
        app.extensions["central"].engine,
        east,
        [east.event("C003", "arrival", local(8))],
        app.extensions["central"].now(),
        app,
    )
    token = make_token(app, "anomalies", "kiosks")
    client = app.test_client()
    found = read_all(client, "anomalies", token)
    assert "chain_gap" in {a["kind"] for a in found}
    gaps = read_all(client, "anomalies", token, kind="chain_gap")
    assert gaps and all(
        a["kind"] == "chain_gap" and a["kiosk_id"] == east.identity.kiosk_id for a in gaps
    )
    kiosks = {k["site_id"]: k for k in read_all(client, "kiosks", token)}
    assert kiosks["S01"]["state"] == "active"
    assert kiosks["S01"]["stored_through_seq"] == 4 and kiosks["S01"]["highest_seq"] == 6
    assert kiosks["S02"]["silent"] is True  # its heartbeat is three hours old


def test_healthz_says_whether_this_process_can_serve(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    central = app.extensions["central"]
    # Duties are not started under TESTING, and nobody holds their leases: serving, degraded.
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["database"] is True and body["status"] == "degraded"
    assert {d["name"] for d in body["duties"]} == set(central.duties.names)
    assert all(d["here"] == "stopped" and d["held"] is False for d in body["duties"])
    central.duties.start()
    try:
        deadline = time.monotonic() + 10
        while client.get("/healthz").get_json()["status"] != "ok":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        body = client.get("/healthz").get_json()
        assert all(d["here"] == "running" and d["held"] for d in body["duties"])
    finally:
        central.duties.stop()
    # A database that cannot be reached: this process cannot serve.
    central.engine = make_engine(f"sqlite:///{tmp_path}/no-such-folder/central.db")
    down = client.get("/healthz")
    assert down.status_code == 503
    assert down.get_json()["status"] == "failing" and down.get_json()["database"] is False
