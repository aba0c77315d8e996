"""What the pages say: codes as words in the page's language, one time zone, records named as
staff know them, the chart counting people (issue 14, items 5, 11, 12 and 14)."""

from __future__ import annotations

import re
import typing
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from central.web import labels
from sync import events as sync_events
from tests.central_web.helpers import csrf_of
from tests.central_web.seed import local, push, seed
from tests.central_web.test_i18n import _po
from tests.central_web.test_pages import text_of

ROOT = Path(__file__).resolve().parents[2]


def _kiosk_flags() -> set[str]:
    source = (ROOT / "kiosk" / "rules" / "outcome.py").read_text(encoding="utf-8")
    return set(re.findall(r'^FLAG_\w+ = "(\w+)"', source, flags=re.M))


def _stay_flags() -> set[str]:
    source = (ROOT / "central" / "stays" / "pairing.py").read_text(encoding="utf-8")
    return set(re.findall(r'\.flag\("(\w+)"\)', source))


def _stay_states() -> set[str]:
    source = (ROOT / "central" / "stays" / "pairing.py").read_text(encoding="utf-8")
    return set(re.findall(r'state(?:: str)? = "(\w+)"', source)) | set(
        re.findall(r'state="(\w+)"', source)
    )


CODES = {
    "flag": lambda: _kiosk_flags() | _stay_flags(),
    "kind": lambda: set(typing.get_args(sync_events.Kind)),
    "source": lambda: set(typing.get_args(sync_events.Source)) | {"staff"},
    "stay_state": _stay_states,
}


@pytest.mark.parametrize("table", sorted(CODES))
def test_every_code_the_records_hold_has_a_translated_word(app, table):
    codes = CODES[table]()
    assert len(codes) >= 3, f"the {table} codes were not found in their source"
    catalogue = _po()
    with app.test_request_context("/staff/", headers={"Accept-Language": "zh-CN"}):
        for code in sorted(codes):
            assert labels.knows(table, code), f"{table} {code!r}: no word in central/web/labels.py"
            said = labels.label(table, code)
            assert said != code and not re.search(r"[a-z]{3}", said), (code, said)
    # Each label's English is a catalogue entry with a translation.
    with app.test_request_context("/staff/?lang=en"):
        from flask import session

        session["lang"] = "en"
        for code in sorted(codes):
            english = labels.label(table, code)
            entry = catalogue.get(english)
            assert entry is not None and entry.string, english


def test_a_raw_flag_never_reaches_the_timeline(app, viewer):
    seeded = seed(app)
    east = seeded.kiosks["S01"]
    central = app.extensions["central"]
    flagged = east.event(
        "C003",
        "departure",
        local(9, 0),
        source="manual",
        operator="林",
        reason="忘记签到",
        flags=["departure_without_arrival", "time_entered_by_operator", "a_future_flag"],
    )
    push(central.engine, east, [flagged], central.now(), app)
    text = text_of(viewer.get("/staff/cadres/C003"))
    for raw in ("departure_without_arrival", "time_entered_by_operator", "manual", "camera"):
        assert raw not in text, raw
    assert "有离开无到达" in text
    assert "时间由现场负责人填写" in text
    assert "其他（a_future_flag）" in text, "an unknown flag is called 'other', not shown bare"


def test_a_kiosk_writing_utc_is_shown_in_the_sites_time_zone(app, viewer):
    seeded = seed(app)
    east = seeded.kiosks["S01"]
    central = app.extensions["central"]
    # 15:54 in Shanghai, written by a kiosk whose clock runs in UTC: 07:54 UTC.
    at = local(15, 54).astimezone(UTC)
    push(central.engine, east, [east.event("C003", "arrival", at)], central.now(), app)
    text = text_of(viewer.get("/staff/cadres/C003"))
    assert "07:54" not in text and "UTC+00:00" not in text
    assert re.search(r"2026-11-29 15:54:00 2026-11-29 15:54:00 时钟可信 到达", text)
    assert text.count("UTC+08:00") == 1


def test_a_person_is_called_by_their_full_name(app, viewer):
    seed(app)
    text = text_of(viewer.get("/staff/cadres?q=C00"))
    assert "姓名" in text and "名称" not in text


def test_a_voided_record_is_named_by_its_time_kind_and_kiosk(app, admin):
    seeded = seed(app)
    arrival = seeded.events["c1_departure"]
    answer = admin.post(
        "/staff/corrections",
        data={
            "csrf_token": csrf_of(admin),
            "cadre_id": "C001",
            "action": "void",
            "event_id": str(arrival.event_id),
            "reason": "扫错了",
            **form_token(admin, "/staff/cadres/C001"),
        },
    )
    assert answer.status_code == 302
    for page in ("/staff/corrections", "/staff/cadres/C001"):
        text = text_of(admin.get(page))
        assert str(arrival.event_id)[:8] not in text, page
        assert re.search(r"作废记录 2026-11-29 11:30:00 · 离开 · S01-1 #4", text), page


def test_the_chart_counts_people_not_scans(app, viewer):
    seeded = seed(app)
    east = seeded.kiosks["S01"]
    central = app.extensions["central"]
    # C003 comes and goes three times within 06:30-06:44, past the repeat window each time:
    # three stays, one person arriving.
    times = [local(6, 30) + timedelta(minutes=3 * i) for i in range(5)]
    kinds = ["arrival", "departure", "arrival", "departure", "arrival"]
    made = [east.event("C003", kind, at) for kind, at in zip(kinds, times, strict=True)]
    push(central.engine, east, made, central.now(), app)
    chart = viewer.get("/staff/sites/S01/arrivals.json").get_json()
    people = {slot["start"][11:16]: slot["people"] for slot in chart["slots"]}
    assert people["06:30"] == 1, "one person, however many times they scanned"
    assert people["06:00"] == 2
    text = text_of(viewer.get("/staff/sites/S01"))
    assert "每 15 分钟到达人数" in text


def form_token(client, page: str) -> dict[str, str]:
    """The one-time form token of the first form on `page`, when the pages give one."""
    html = client.get(page).get_data(as_text=True)
    found = re.search(r'name="form_token" value="([^"]+)"', html)
    return {"form_token": found[1]} if found else {}
