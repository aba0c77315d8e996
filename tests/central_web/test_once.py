"""Every state-changing staff form is done once however often it is sent, and answers with a
redirect, so a reload never repeats it (issue 14, items 1 and 8)."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select

from central import kiosks
from central.db import schema
from tests.central_web.helpers import csrf_of
from tests.central_web.seed import seed
from tests.central_web.test_pages import text_of

TEMPLATES = Path(__file__).resolve().parents[2] / "central" / "web" / "templates"


def token_of(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `action` on a page."""
    form = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
    assert form, f"no form to {action}"
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form[1]))
    assert "form_token" in fields and "csrf_token" in fields, fields
    return {"form_token": fields["form_token"], "csrf_token": fields["csrf_token"]}


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_every_post_form_of_every_template_carries_a_one_time_token():
    forms = 0
    for template in sorted(TEMPLATES.glob("*.html")):
        for form in re.findall(r"<form[^>]*>.*?</form>", template.read_text(), re.S):
            if 'method="post"' not in form.split(">", 1)[0]:
                continue
            forms += 1
            assert "staff_form_fields()" in form, f"{template.name}: a POST form without a token"
    assert forms >= 8


def test_a_correction_sent_twice_is_saved_once(app, admin, engine):
    seeded = seed(app)
    fields = token_of(admin.get("/staff/cadres/C001").get_data(as_text=True), "/staff/corrections")
    form = {
        **fields,
        "cadre_id": "C001",
        "action": "void",
        "event_id": str(seeded.events["c1_departure"].event_id),
        "reason": "双击",
    }
    first = admin.post("/staff/corrections", data=form)
    second = admin.post("/staff/corrections", data=form)
    assert first.status_code == 302 and second.status_code == 303
    assert second.headers["Location"].endswith(first.headers["Location"].split("/staff", 1)[1])
    assert count(engine, schema.corrections) == 1
    assert "只执行了一次" in text_of(admin.get(second.headers["Location"]))


def test_a_refused_form_may_be_sent_again_once_put_right(app, admin, engine):
    seeded = seed(app)
    fields = token_of(admin.get("/staff/cadres/C001").get_data(as_text=True), "/staff/corrections")
    form = {
        **fields,
        "cadre_id": "C001",
        "action": "void",
        "event_id": str(seeded.events["c1_departure"].event_id),
    }
    refused = admin.post("/staff/corrections", data={**form, "reason": ""})
    assert refused.status_code == 302 and count(engine, schema.corrections) == 0
    saved = admin.post("/staff/corrections", data={**form, "reason": "补上理由"})
    assert saved.status_code == 302 and count(engine, schema.corrections) == 1


def test_enrolment_answers_with_a_redirect_and_a_reload_enrols_nothing_more(app, admin, engine):
    seed(app)
    before = count(engine, schema.kiosks)
    fields = token_of(admin.get("/staff/kiosks").get_data(as_text=True), "/staff/kiosks/enrol")
    form = {**fields, "site_id": "S02", "name": "back gate"}
    answer = admin.post("/staff/kiosks/enrol", data=form)
    assert answer.status_code == 303
    code_page = answer.headers["Location"]
    assert code_page.endswith("/staff/kiosks/S02-2/enrolment")
    html = admin.get(code_page).get_data(as_text=True)
    code = re.search(r'<p class="code-box">([A-Z2-7-]+)</p>', html)[1]
    # A reload of the page, a resend of the POST: one kiosk, one code.
    assert code in admin.get(code_page).get_data(as_text=True)
    again = admin.post("/staff/kiosks/enrol", data=form)
    assert again.status_code == 303 and again.headers["Location"].endswith(code_page)
    assert count(engine, schema.kiosks) == before + 1
    assert count(engine, schema.enrolment_codes) == before + 1
    # The print view shows the same code, with its QR; once used, neither page shows it.
    printed = admin.get(code_page + "/print").get_data(as_text=True)
    assert code in printed and 'src="data:image/png;base64,' in printed
    assert 'class="main-nav"' not in printed
    kiosks.enrol(engine, code, app.extensions["central"].now())
    assert code not in admin.get(code_page).get_data(as_text=True)
    assert "已登记" in text_of(admin.get(code_page))
    assert code not in admin.get(code_page + "/print").get_data(as_text=True)


def test_the_code_is_shown_only_to_the_session_that_made_it(app, admin, engine):
    from tests.central_web.helpers import log_in

    seed(app)
    fields = token_of(admin.get("/staff/kiosks").get_data(as_text=True), "/staff/kiosks/enrol")
    answer = admin.post("/staff/kiosks/enrol", data={**fields, "site_id": "S02"})
    other = app.test_client()
    log_in(other, "admin")
    html = other.get(answer.headers["Location"]).get_data(as_text=True)
    assert 'class="code-box"' not in html


def test_a_new_code_too_answers_with_a_redirect(app, admin, engine):
    seed(app)
    answer = admin.post(
        "/staff/kiosks/S01-1/code", data={"csrf_token": csrf_of(admin), "form_token": "t" * 20}
    )
    assert answer.status_code == 303
    again = admin.post(
        "/staff/kiosks/S01-1/code", data={"csrf_token": csrf_of(admin), "form_token": "t" * 20}
    )
    assert again.status_code == 303
    with engine.connect() as conn:
        codes = conn.execute(
            select(func.count())
            .select_from(schema.enrolment_codes)
            .where(schema.enrolment_codes.c.kiosk_id == "S01-1")
        ).scalar_one()
    assert codes == 2, "the enrolment code of the seed, and one new code"
