"""What admins do in the browser: corrections, roster import, badges, kiosks."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from central import corrections, keys, kiosks, roster
from central.db import schema
from tests.central_web.helpers import csrf_of, print_badges
from tests.central_web.seed import seed
from tests.central_web.test_pages import text_of


@pytest.fixture
def seeded(app):
    return seed(app)


def _stays(engine, cadre_id: str) -> list[tuple]:
    st = schema.stays
    with engine.connect() as conn:
        return [
            (r.state, r.arrival_event_id, r.departure_event_id)
            for r in conn.execute(
                select(st).where(st.c.cadre_id == cadre_id).order_by(st.c.stay_id)
            )
        ]


def _correct(client, **form) -> object:
    return client.post("/staff/corrections", data={**form, "csrf_token": csrf_of(client)})


def test_adding_a_forgotten_departure_closes_the_stay(app, seeded, admin, engine):
    assert _stays(engine, "C002")[0][0] == "open"
    response = _correct(
        admin,
        cadre_id="C002",
        action="add",
        kind="departure",
        time="2026-11-29T11:00",
        site_id="S01",
        reason="离开时忘了扫码",
    )
    assert response.status_code == 302
    state, arrival, departure = _stays(engine, "C002")[0]
    assert state == "closed" and arrival == str(seeded.events["c2_arrival"].event_id)
    with engine.connect() as conn:
        row = conn.execute(select(corrections.corrections)).one()
    assert row.staff_user == "admin" and row.reason == "离开时忘了扫码"
    assert row.new_event_id == departure, "the stay's departure is the record staff added"
    text = text_of(admin.get("/staff/sites/S01"))
    assert re.search(r"李娜 C002 城管一队 已离开 (\S+ )?06:10 11:00 4 小时 50 分", text)
    listing = text_of(admin.get("/staff/corrections"))
    assert "admin 李娜 2026-11-29 补录 2026-11-29 11:00:00 离开，站点 S01 离开时忘了扫码" in listing


def test_voiding_a_record_and_changing_one_are_appended_never_edited(app, seeded, admin, engine):
    departure = str(seeded.events["c1_departure"].event_id)
    _correct(admin, cadre_id="C001", action="void", event_id=departure, reason="误扫")
    assert _stays(engine, "C001")[0][0] == "open"
    _correct(
        admin,
        cadre_id="C001",
        action="replace",
        event_id=departure,
        kind="departure",
        time="2026-11-29T10:45",
        reason="其实是 10:45 走的",
    )
    state, _, departure_id = _stays(engine, "C001")[0]
    assert state == "closed" and departure_id == departure
    with engine.connect() as conn:
        rows = conn.execute(
            select(corrections.corrections).order_by(corrections.corrections.c.correction_id)
        ).all()
        kiosk_record = conn.execute(
            select(schema.events.c.kind, schema.events.c.corrected_time).where(
                schema.events.c.event_id == departure
            )
        ).one()
    assert [r.action for r in rows] == ["void", "replace"]
    assert kiosk_record.kind == "departure", "the kiosk's record itself is untouched"
    timeline = text_of(admin.get("/staff/cadres/C001"))
    assert "改为 2026-11-29 10:45:00 离开 — 其实是 10:45 走的 (admin)" in timeline
    # The departure's time is now staff's word, not the badge's: counted as by hand.
    assert "06:00 S01-1 10:45 S01-1 手工录入 4 小时 45 分" in timeline


def test_a_correction_needs_a_reason_and_stays_in_its_day(app, seeded, admin, engine):
    departure = str(seeded.events["c1_departure"].event_id)
    _correct(admin, cadre_id="C001", action="void", event_id=departure, reason="  ")
    _correct(
        admin,
        cadre_id="C001",
        action="replace",
        event_id=departure,
        kind="departure",
        time="2026-11-30T10:00",
        reason="wrong day",
    )
    other = str(seeded.events["c2_arrival"].event_id)
    response = _correct(admin, cadre_id="C001", action="void", event_id=other, reason="x")
    assert response.status_code == 302
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(corrections.corrections)).scalar() == 0
    page = text_of(admin.get(response.headers["Location"]))
    assert "请选择该干部的一条记录进行更改或作废" in page


def test_roster_upload_imports_and_a_bad_file_changes_nothing(app, admin, engine):
    good = "编号,姓名,单位,站点,站点名称\nC101,周杰,一队,S09,南湖站\nC102,吴芳,一队,S09,南湖站\n"
    response = admin.post(
        "/staff/roster/import",
        data={
            "file": (io.BytesIO(good.encode("utf-8-sig")), "名单.csv"),
            "csrf_token": csrf_of(admin),
        },
    )
    assert response.status_code == 302
    assert "新增 2 人" in text_of(admin.get("/staff/roster"))
    bad = "编号,姓名\nC103,\nC101,周杰\nC101,重复\n"
    response = admin.post(
        "/staff/roster/import",
        data={"file": (io.BytesIO(bad.encode()), "bad.csv"), "csrf_token": csrf_of(admin)},
    )
    assert response.status_code == 400
    text = text_of(response)
    assert "未导入任何内容" in text
    assert "2 缺少姓名" in text and "4 编号 C101 重复（首次出现在第 3 行）" in text
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.cadres)).scalar() == 2


def test_roster_upload_refuses_other_files_with_a_reason(app, admin):
    response = admin.post(
        "/staff/roster/import",
        data={"file": (io.BytesIO(b"x"), "roster.pdf"), "csrf_token": csrf_of(admin)},
    )
    assert response.status_code == 400
    assert "名单文件只支持 .csv 和 .xlsx" in text_of(response)
    response = admin.post(
        "/staff/roster/import",
        data={"file": (io.BytesIO(b"name,unit\nx,y\n"), "r.csv"), "csrf_token": csrf_of(admin)},
    )
    assert "都没有“编号”和“姓名”两列" in text_of(response)


def test_badges_print_as_pdf_and_revoke(app, seeded, admin, engine):
    instance = app.extensions["central"].instance
    keys.create_issuing_key(app.extensions["central"].settings.issuing_key_path(instance))
    response = print_badges(admin, scope="site", site_id="S01", layout="54x90-2x5")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    assert "attachment" in response.headers["Content-Disposition"]
    with engine.connect() as conn:
        serial = conn.execute(
            select(schema.cadres.c.badge_serial).where(schema.cadres.c.cadre_id == "C001")
        ).scalar_one()
    assert serial == 1
    response = admin.post(
        "/staff/badges/revoke", data={"cadre_id": "C001", "csrf_token": csrf_of(admin)}
    )
    assert response.status_code == 302
    with engine.connect() as conn:
        assert roster.revocations(conn) == {"C001": 1}
    response = admin.post(
        "/staff/badges/revoke", data={"cadre_id": "C003X", "csrf_token": csrf_of(admin)}
    )
    assert response.status_code == 400 and "名单中没有干部 C003X" in text_of(response)


def test_badges_print_without_an_issuing_key_says_what_to_do(app, seeded, admin):
    response = admin.post(
        "/staff/badges/print",
        data={"scope": "site", "site_id": "S01", "csrf_token": csrf_of(admin)},
    )
    assert response.status_code == 500
    assert "central init" in text_of(response)


def test_kiosk_enrolment_shows_a_working_one_time_code_and_revoke_shuts_it_out(
    app, seeded, admin, engine
):
    app.extensions["central"].settings.public_url = "https://centre.example/"
    response = admin.post(
        "/staff/kiosks/enrol",
        data={"site_id": "S02", "name": "back gate", "csrf_token": csrf_of(admin)},
    )
    assert response.status_code == 303
    response = admin.get(response.headers["Location"])
    html = response.get_data(as_text=True)
    code = re.search(r'<p class="code-box">([A-Z2-7-]+)</p>', html)[1]
    assert 'src="data:image/png;base64,' in html
    assert response.headers["Cache-Control"] == "no-store"
    now = app.extensions["central"].now()
    identity, _, token = kiosks.enrol(engine, code, now)
    assert identity.site_id == "S02" and identity.kiosk_id == "S02-2"
    response = admin.post("/staff/kiosks/S02-2/revoke", data={"csrf_token": csrf_of(admin)})
    assert response.status_code == 302
    with engine.connect() as conn:
        assert kiosks.authenticate(conn, token) is None
    assert "S02-2 · 已吊销" in text_of(admin.get("/staff/kiosks"))
