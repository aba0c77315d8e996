"""The staff pages' queries on both stores: SQLite and PostgreSQL (when configured)."""

from __future__ import annotations

import io
import re

from openpyxl import load_workbook

from tests.central_web.helpers import csrf_of, log_in
from tests.central_web.seed import seed
from tests.central_web.test_pages import site_row, text_of


def test_pages_corrections_and_exports_on_each_store(app_on):
    app = app_on()
    made = seed(app)
    client = app.test_client()
    log_in(client, "admin")
    text = text_of(client.get("/staff/"))
    assert re.search(r"东湖站 S01 · 1 人不在本站名单 3 3 2 1 0 1 ", site_row(text, "东湖站"))
    assert "S02 · S02-1 · 最后联系：3 小时前" in text
    assert re.search(r"李娜 C002 城管一队 在岗 06:10", text_of(client.get("/staff/sites/S01")))
    assert "宋昕" in text_of(client.get("/staff/cadres?q=宋"))
    departure = str(made.events["c1_departure"].event_id)
    response = client.post(
        "/staff/corrections",
        data={
            "cadre_id": "C001",
            "action": "void",
            "event_id": departure,
            "reason": "误扫",
            "csrf_token": csrf_of(client),
        },
    )
    assert response.status_code == 302
    timeline = text_of(client.get("/staff/cadres/C001"))
    assert "作废记录" in timeline and "误扫" in timeline
    assert "2026-11-29 S01 06:00 S01-1" in timeline
    anomalies = text_of(client.get("/staff/anomalies"))
    assert "出现在站点" not in anomalies
    export = client.get("/staff/exports/download?from=2026-11-29&to=2026-11-29&what=events")
    rows = list(load_workbook(io.BytesIO(export.data)).active.iter_rows(values_only=True))
    voided = next(row for row in rows if row[14] == departure)
    assert voided[15] == "作废" and voided[16] == "误扫" and voided[17] == "admin"


def test_once_tokens_fixes_reviews_and_live_figures_on_each_store(app_on):
    """The store-side pieces of the staff pages' newer work, on SQLite and PostgreSQL: a form
    sent twice (unique token), an anomaly fixed from its page, a review, the live JSON."""
    from sqlalchemy import func, select

    from central.db import schema
    from tests.central_web.test_fixes import double_tapped_departure, forms_on, listed
    from tests.central_web.test_once import token_of

    app = app_on()
    seeded = seed(app)
    engine = app.extensions["central"].engine
    client = app.test_client()
    log_in(client, "admin")
    double_tapped_departure(app, seeded)
    page = client.get(listed(client, "no_arrival")[0]["href"]).get_data(as_text=True)
    fix = forms_on(page, "/staff/anomalies/fix")[0]
    assert client.post("/staff/anomalies/fix", data=fix).status_code == 302
    assert client.post("/staff/anomalies/fix", data=fix).status_code == 303, "sent twice"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.corrections)).scalar() == 1
    assert listed(client, "no_arrival") == []
    fields = token_of(client.get("/staff/accounts").get_data(as_text=True), "/staff/accounts")
    form = {**fields, "username": "wang", "role": "viewer"}
    form.update(password="wang password 1", password_again="wang password 1")
    assert client.post("/staff/accounts", data=form).status_code == 302
    assert client.post("/staff/accounts", data=form).status_code == 303
    assert "已添加账号 wang" in text_of(client.get("/staff/accounts"))
    live = client.get("/staff/live/overview.json").get_json()
    assert live["sites"]["S01"]["arrived"] == 4
    again = client.get(f"/staff/live/overview.json?since={live['stamp']}").get_json()
    assert again == {"unchanged": True, "stamp": live["stamp"]}
