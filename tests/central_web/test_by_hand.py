"""Attendance a badge proves and attendance entered by hand, counted apart on every page and
export; records that do not count are shown, marked, and left out of every count."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from central.corrections import NewCorrection, add_correction
from central.db.schema import events
from central.stays import store as stay_store
from tests.central_web.seed import DAY, local, push, seed
from tests.central_web.test_pages import site_row, text_of

ISO_DAY = "2026-11-29"
HAND = {"source": "manual", "operator": "组长王", "reason": "忘带胸卡", "badge_serial": None}


@pytest.fixture
def mixed(app):
    """The seed (C001, C002, C004 by camera at S01), then C003 arrives at S01 entered by the lead,
    and a record for C005 at S02 comes with no badge proof (not counted)."""
    seeded = seed(app)
    central = app.extensions["central"]
    east, west = seeded.kiosks["S01"], seeded.kiosks["S02"]
    by_hand = east.event("C003", "arrival", local(11, 40), **HAND)
    forged = west.event("C005", "arrival", local(11, 41), badge_token=None)
    push(central.engine, east, [by_hand], central.now(), app)
    push(central.engine, west, [forged], central.now(), app)
    return seeded, by_hand, forged


def _csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))


def test_pages_count_arrivals_by_hand_apart(mixed, viewer):
    overview = text_of(viewer.get(f"/staff/?day={ISO_DAY}"))
    # 4 arrived over all sites, 1 of them on the lead's word; C005's forged record counts nowhere.
    assert "4 已到 其中手工录入： 1 " in overview
    # expected, arrived, present, departed, no departure, absent, by hand
    assert re.search(r"东湖站 S01 · 1 人不在本站名单 3 4 3 1 0 0 1 ", site_row(overview, "东湖站"))
    assert re.search(r"西山站 S02 2 0 0 0 0 2 0 ", site_row(overview, "西山站"))

    site = text_of(viewer.get(f"/staff/sites/S01?day={ISO_DAY}"))
    assert "4 已到 其中手工录入： 1 " in site
    assert re.search(r"王强 C003 街道办 在岗 手工录入 ", site)
    assert not re.search(r"宋昕 C001 [^ ]+ [^ ]+ 手工录入", site)

    live = viewer.get(f"/staff/live/overview.json?day={ISO_DAY}").get_json()
    assert live["totals"]["by_hand"] == 1 and live["sites"]["S01"]["by_hand"] == 1
    assert (
        viewer.get(f"/staff/live/sites/S01.json?day={ISO_DAY}").get_json()["totals"]["by_hand"] == 1
    )

    english = text_of(viewer.get(f"/staff/?day={ISO_DAY}", headers={"Accept-Language": "en"}))
    assert "of which by hand: 1 " in english


def test_the_timeline_shows_a_record_that_does_not_count(mixed, viewer):
    page = text_of(viewer.get(f"/staff/cadres/C005?from={ISO_DAY}&to={ISO_DAY}"))
    assert "不计入 没有胸卡证明" in page
    assert "这几天没有在岗记录。" in page  # no stay was made of it
    anomalies = text_of(viewer.get(f"/staff/anomalies?from={ISO_DAY}&to={ISO_DAY}"))
    assert "胸卡未获证明" in anomalies
    assert "扫码记录没有附带所读的胸卡，不计入" in anomalies


def test_exports_say_how_each_arrival_was_recorded(mixed, viewer):
    stays = _csv(viewer.get(f"/staff/exports/download?from={ISO_DAY}&to={ISO_DAY}&format=csv").data)
    header = stays[0]
    column = header.index("到达记录方式")
    recorded = {row[3]: row[column] for row in stays[1:]}
    assert recorded == {"C001": "胸卡", "C002": "胸卡", "C003": "手工录入", "C004": "胸卡"}
    assert stays[1][header.index("离开记录方式")] in ("胸卡", "")

    sheet = load_workbook(
        io.BytesIO(
            viewer.get(
                f"/staff/exports/download?from={ISO_DAY}&to={ISO_DAY}&what=events&format=xlsx",
                headers={"Accept-Language": "en"},
            ).data
        )
    ).active
    rows = list(sheet.iter_rows(values_only=True))
    at = {name: i for i, name in enumerate(rows[0])}
    by_cadre = {row[at["id"]]: row for row in rows[1:]}
    assert by_cadre["C003"][at["recorded"]] == "by hand"
    assert by_cadre["C001"][at["recorded"]] == "badge"
    assert by_cadre["C005"][at["recorded"]] in (None, "")
    assert by_cadre["C005"][at["not counted because"]] == "no_badge_proof"


def test_a_staff_correction_makes_a_badge_arrival_by_hand(app, mixed, viewer):
    """Staff who move a scanned arrival's time vouch for the new time themselves: counted apart."""
    seeded, _by_hand, _forged = mixed
    central = app.extensions["central"]
    target = str(seeded.events["c2_arrival"].event_id)
    with central.engine.begin() as conn:
        add_correction(
            conn,
            NewCorrection(
                "replace",
                "C002",
                "S01",
                DAY.date(),
                "the kiosk was an hour fast",
                "admin",
                target_event_id=target,
                kind="arrival",
                event_time=(local(5, 10) - timedelta(hours=8)).replace(tzinfo=None),
            ),
            central.now(),
        )
        stay_store.recompute(conn, [("C002", DAY.date())], central.rules, central.now())
        assert (
            conn.execute(
                select(events.c.quarantine).where(events.c.event_id == target)
            ).scalar_one()
            is None
        )
    overview = text_of(viewer.get(f"/staff/?day={ISO_DAY}"))
    assert "4 已到 其中手工录入： 2 " in overview
