"""Every anomaly offers the fix that resolves it, from its own page, and a fix never adds another
anomaly for the same cadre and day (issue 14, item 2)."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from central.anomalies import anomaly_row
from central.db import schema
from central.web import queries
from tests.central_web.helpers import csrf_of
from tests.central_web.seed import local, push, seed
from tests.central_web.test_pages import text_of


def anomalies_of(engine, cadre_id: str | None) -> list[tuple[str, str | None, str | None]]:
    """Stored anomalies of the cadre (or the kiosk-level ones), as (kind, site, record)."""
    a = schema.anomalies
    with engine.connect() as conn:
        query = select(a.c.kind, a.c.site_id, a.c.event_id)
        query = query.where(a.c.cadre_id == cadre_id if cadre_id else a.c.cadre_id.is_(None))
        return sorted(tuple(r) for r in conn.execute(query))


def listed(client, kind: str, extra: str = "") -> list[dict[str, str]]:
    """The anomalies page's rows of one kind: the link to each one's own page."""
    page = client.get(f"/staff/anomalies?kind={kind}{extra}").get_data(as_text=True)
    return [
        {"href": html_lib.unescape(href)}
        for href in re.findall(r'href="(/staff/anomalies/one\?[^"]+)"', page)
    ]


def form_fields(form_html: str) -> dict[str, str]:
    fields = {}
    for tag in re.findall(r"<input[^>]*>", form_html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and 'type="checkbox"' not in tag:
            fields[name[1]] = html_lib.unescape(value[1]) if value else ""
    return fields


def forms_on(page: str, action: str) -> list[dict[str, str]]:
    found = re.findall(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    return [form_fields(body) for body in found]


# --- one scenario per anomaly kind: records that make it, at the kiosk or in the store -----------


def _manual(kiosk, cadre_id: str, kind: str, at, **extra: Any):
    return kiosk.event(cadre_id, kind, at, source="manual", operator="林", reason="手工", **extra)


def double_tapped_departure(app, seeded) -> str:
    """The issue's case: the lead's check-out tapped twice; the second has no arrival."""
    east = seeded.kiosks["S01"]
    made = [
        east.event("C003", "arrival", local(7, 0)),
        _manual(east, "C003", "departure", local(15, 53).replace(second=17)),
        _manual(east, "C003", "departure", local(15, 53).replace(second=19)),
    ]
    push(app.extensions["central"].engine, east, made, app.extensions["central"].now(), app)
    return "C003"


def double_tapped_arrival(app, seeded) -> str:
    east = seeded.kiosks["S01"]
    made = [
        _manual(east, "C003", "arrival", local(7, 0)),
        _manual(east, "C003", "arrival", local(7, 0).replace(second=40)),
    ]
    push(app.extensions["central"].engine, east, made, app.extensions["central"].now(), app)
    return "C003"


def never_left(app, seeded) -> str:
    """An arrival with nothing after it, on a day that is over."""
    east = seeded.kiosks["S01"]
    push(
        app.extensions["central"].engine,
        east,
        [east.event("C003", "arrival", local(7, 0))],
        app.extensions["central"].now(),
        app,
    )
    return "C003"


def kiosk_disagrees(app, seeded) -> str:
    """The kiosk called a scan an arrival; with every record the centre reads a departure."""
    east = seeded.kiosks["S01"]
    made = [east.event("C003", "arrival", local(7, 0)), east.event("C003", "arrival", local(11, 0))]
    push(app.extensions["central"].engine, east, made, app.extensions["central"].now(), app)
    return "C003"


def overlong(app, seeded) -> str:
    east = seeded.kiosks["S01"]
    made = [
        east.event("C003", "arrival", local(4, 0)),
        east.event("C003", "departure", local(17, 0)),
    ]
    push(app.extensions["central"].engine, east, made, app.extensions["central"].now(), app)
    return "C003"


def two_sites(app, seeded) -> str:
    west = seeded.kiosks["S02"]
    made = [west.event("C004", "arrival", local(8, 0))]
    push(app.extensions["central"].engine, west, made, app.extensions["central"].now(), app)
    return "C004"


def kiosk_level(kind: str) -> Callable[[Any, Any], str | None]:
    """Anomalies about a kiosk or its records as sent, as ingest stores them."""

    def make(app, seeded) -> str | None:
        central = app.extensions["central"]
        row = anomaly_row(
            kind,
            central.now().replace(tzinfo=None),
            kiosk_id="S01-1",
            site_id="S01",
            seq=7,
            boot_id="boot-1",
            detail={
                "chain_gap": "seq 5 missing before seq 7",
                "chain_fork": "seq 7 does not follow seq 6",
                "event_conflict": "two different events with seq 7",
                "rejected_event": "seq 7: hash does not match",
                "uncorrected_time": "boot boot-1: clock not synchronised and no offset known",
                "badge_proof": "seq 7: scan record without the badge it was read from: not counted",
                "correction_lane": "seq 7: void of 00000000-0000-4000-8000-000000000000, a "
                "record of kiosk S02-1: refused",
                "time_claim": "seq 7: record dated 2026-11-26 04:00:00 UTC by boot boot-0, "
                "before the kiosk's earlier records (2026-11-28 22:00:00 UTC): offset unknown, "
                "not counted",
            }.get(kind, "seq 7: refused"),
        )
        with central.engine.begin() as conn:
            conn.execute(insert(schema.anomalies).values(**row))
        return None

    return make


RECORD_SCENARIOS: dict[str, Callable[[Any, Any], str | None]] = {
    "no_arrival": double_tapped_departure,
    "no_departure": double_tapped_arrival,
    "kiosk_disagrees": kiosk_disagrees,
    "overlong_stay": overlong,
    "two_sites": two_sites,
}
SCENARIOS: dict[str, Callable[[Any, Any], str | None]] = {
    **RECORD_SCENARIOS,
    **{kind: kiosk_level(kind) for kind in set(queries.ANOMALY_KINDS) - set(RECORD_SCENARIOS)},
}


def test_every_anomaly_kind_has_a_scenario():
    assert set(SCENARIOS) == set(queries.ANOMALY_KINDS)


@pytest.mark.parametrize("kind", sorted(SCENARIOS))
def test_each_anomaly_is_fixed_from_its_own_page_with_no_new_anomaly(app, admin, engine, kind):
    seeded = seed(app)
    make = SCENARIOS[kind]
    cadre_id = make(app, seeded)
    before = anomalies_of(engine, cadre_id)
    assert kind in {k for k, _, _ in before}, before
    rows = listed(admin, kind)
    assert len(rows) == 1, rows
    page = admin.get(rows[0]["href"]).get_data(as_text=True)
    fixes = forms_on(page, "/staff/anomalies/fix")
    if fixes:
        answer = admin.post("/staff/anomalies/fix", data=fixes[0])
        assert answer.status_code == 302, text_of(admin.get(rows[0]["href"]))
        after = anomalies_of(engine, cadre_id)
        assert kind not in {k for k, _, _ in after}, after
        assert set(after) <= set(before), f"new anomalies: {set(after) - set(before)}"
        assert "异常已解决" in text_of(admin.get(answer.headers["Location"]))
    else:
        # Nothing a correction of records could do: the anomaly is reviewed, with a reason.
        reviews = forms_on(page, "/staff/anomalies/review")
        assert reviews, f"{kind}: neither a fix nor a review offered"
        answer = admin.post("/staff/anomalies/review", data={**reviews[0], "reason": "已核实"})
        assert answer.status_code == 302
        assert listed(admin, kind) == [], "a reviewed anomaly leaves the list"
        assert len(listed(admin, kind, "&reviewed=1")) == 1, "and is there when asked for"
        assert anomalies_of(engine, cadre_id) == before, "a review changes no record"
    corrected = {"no_arrival", "no_departure", "kiosk_disagrees", "two_sites"}
    assert bool(fixes) == (kind in corrected), f"{kind}: fixed by a correction or reviewed"


def test_a_departure_without_arrival_offers_to_void_the_duplicate(app, admin, engine):
    seed(app)
    double_tapped_departure(app, app.extensions["seeded"])
    page = admin.get(listed(admin, "no_arrival")[0]["href"]).get_data(as_text=True)
    offered = forms_on(page, "/staff/anomalies/fix")
    assert offered[0]["fix"] == "void"
    text = text_of(admin.get(listed(admin, "no_arrival")[0]["href"]))
    assert re.search(
        r"作废记录 2026-11-29 15:53:19 · 离开 · S01-1 #\d+ — 在 15:53 那次之后又一次离开", text
    )
    # The day's records are told apart: the two taps differ by their second and number.
    lines = re.findall(r"2026-11-29 15:53:1[79] · 离开 · S01-1 #(\d+) · 手工", text)
    assert len(set(lines)) == 2


def test_the_hint_that_made_it_worse_is_refused_with_the_anomalies_it_would_add(app, admin, engine):
    """Adding "the missing arrival" early in the day re-reads every scan after it."""
    seed(app)
    double_tapped_departure(app, app.extensions["seeded"])
    before = anomalies_of(engine, "C003")
    answer = admin.post(
        "/staff/corrections",
        data={
            "csrf_token": csrf_of(admin),
            "cadre_id": "C003",
            "action": "add",
            "kind": "arrival",
            "time": "2026-11-29T08:00",
            "site_id": "S01",
            "reason": "补到达",
        },
    )
    assert answer.status_code == 302
    assert anomalies_of(engine, "C003") == before, "nothing saved"
    text = text_of(admin.get("/staff/cadres/C003"))
    assert re.search(r"未保存：这条更正会在 2026-11-29 新增 \d+ 条异常", text)


def test_an_open_stay_on_a_day_that_is_over_gets_a_departure_within_a_normal_stay(
    app, admin, engine, clock
):
    seed(app)
    never_left(app, app.extensions["seeded"])
    clock.value = clock.value + timedelta(days=1)
    rows = [r for r in listed(admin, "no_departure", "&from=2026-11-29") if "C003" in r["href"]]
    assert len(rows) == 1
    page = admin.get(rows[0]["href"]).get_data(as_text=True)
    offered = forms_on(page, "/staff/anomalies/fix")
    assert offered and offered[0]["fix"] == "add_departure"
    # 12 h is the longest normal stay: a departure at the end of the day would be "overlong".
    assert offered[0]["time"] == "2026-11-29T18:59:00"
    answer = admin.post("/staff/anomalies/fix", data=offered[0])
    assert answer.status_code == 302
    assert [
        r for r in listed(admin, "no_departure", "&from=2026-11-29") if "C003" in r["href"]
    ] == []
    assert anomalies_of(engine, "C003") == []


def test_a_fix_at_a_time_that_adds_anomalies_is_refused(app, admin, engine, clock):
    seed(app)
    never_left(app, app.extensions["seeded"])
    clock.value = clock.value + timedelta(days=1)
    rows = [r for r in listed(admin, "no_departure", "&from=2026-11-29") if "C003" in r["href"]]
    offered = forms_on(admin.get(rows[0]["href"]).get_data(as_text=True), "/staff/anomalies/fix")
    answer = admin.post("/staff/anomalies/fix", data={**offered[0], "time": "2026-11-30T02:00:00"})
    assert answer.status_code == 302 and "/anomalies/one" in answer.headers["Location"]
    assert "未保存" in text_of(admin.get(answer.headers["Location"]))
    with engine.connect() as conn:
        assert conn.execute(select(schema.corrections)).first() is None


def test_viewers_see_the_anomaly_page_but_no_fix(app, viewer):
    seed(app)
    double_tapped_departure(app, app.extensions["seeded"])
    rows = listed(viewer, "no_arrival")
    page = viewer.get(rows[0]["href"]).get_data(as_text=True)
    assert forms_on(page, "/staff/anomalies/fix") == []
    assert (
        viewer.post("/staff/anomalies/fix", data={"csrf_token": csrf_of(viewer)}).status_code == 403
    )
