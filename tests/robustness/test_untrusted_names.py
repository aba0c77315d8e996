"""The roster is untrusted input: hostile names, units, site names, operators and reasons are
shown as the text they are, wherever they are shown.

A roster with markup, formula, path and template text goes in through the real upload page; a
kiosk at the hostile site pushes records (a by-hand one with a hostile operator and reason); then
every page that shows them is rendered and parsed: no element or attribute came from the data,
and the text is there, literally. Exports are opened as a spreadsheet program would: no cell
is a formula. File names in Content-Disposition are plain, and nothing an upload names is
written anywhere.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from werkzeug.http import parse_options_header

from central import keys
from central.roster import count_rows
from sync.badge_token import issue_token
from sync.events import GENESIS_HASH, seal
from sync.protocol import API_PREFIX
from sync.tabular import FORMULA_TRIGGERS
from tests.central_web.helpers import csrf_of, log_in, print_badges
from tests.kiosk_web.helpers import LOCAL, csrf, form_key, login, make_kit
from tests.robustness.conftest import enrol_kiosk, make_centre

SHANGHAI = timezone(timedelta(hours=8))
DAY = "2026-11-29"
SITE = 'S"><svg onload=alert(3)>'
SITE_NAME = "<script>alert(4)</script>站"
OTHER_SITE = "S2"
OTHER_SITE_NAME = '=HYPERLINK("http://evil.example","点我")'
OPERATOR = "<img src=x onerror=alert(5)>"
REASON = "=cmd|' /C calc'!A0 <script>alert(6)</script>"
# cadre id -> (name, unit). 64 characters is the longest name the roster takes.
CADRES: dict[str, tuple[str, str]] = {
    "H1": ("<script>alert(1)</script>", '"><img src=x onerror=alert(2)>'),
    "H2": ("=cmd|' /C calc'!A0", "+SUM(1,2)"),
    "H3": ("../../etc/passwd", "@evil"),
    "H4": ("{{7*7}}", "-2+3"),
    "H5": ("龘" * 64, "单位" * 64),
    "H6": ("宋<b>昕</b>&amp;", "a\"b'c&d"),
}
HOSTILE_TEXTS = [SITE, SITE_NAME, OTHER_SITE_NAME, OPERATOR, REASON] + [
    text for pair in CADRES.values() for text in pair
]


class Markup(HTMLParser):
    """Every element and attribute of a page, and its script bodies."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def assert_shown_harmlessly(html: str, where: str, expect: list[str] = ()) -> None:
    """No element or handler came from the data; `expect` texts are shown literally."""
    parser = Markup()
    parser.feed(html)
    for tag, attrs in parser.tags:
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"{where}: <{tag}> has {handlers}"
        assert tag not in ("svg",) or "onload" not in attrs, where
        if tag == "img":
            assert attrs.get("src") != "x", f"{where}: an <img> from the data"
        if tag == "script":
            # The pages' scripts are files of the server, or JSON data read as text.
            assert attrs.get("src") or attrs.get("type") == "application/json", where
    for body in parser.scripts:
        assert "alert(" not in body or "\\u003c" in body, f"{where}: script body {body[:80]!r}"
    for text in HOSTILE_TEXTS:
        if "<" in text:
            assert text not in html, f"{where}: {text!r} appears unescaped"
    shown = unescape(html)
    for text in expect:
        assert text in shown, f"{where}: {text!r} is not shown"


# ---------------------------------------------------------------------------- the centre


def roster_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["编号", "姓名", "单位", "站点", "站点名称"])
    for cadre_id, (name, unit) in CADRES.items():
        writer.writerow([cadre_id, name, unit, SITE, SITE_NAME])
    writer.writerow(["V1", "访客", "", OTHER_SITE, OTHER_SITE_NAME])
    return out.getvalue().encode("utf-8")


def event(kiosk_id: str, site_id: str, seq: int, prev: str, cadre: str, kind: str, at, **extra):
    return seal(
        {
            "event_id": uuid.uuid4(),
            "kiosk_id": kiosk_id,
            "site_id": site_id,
            "seq": seq,
            "cadre_id": cadre,
            "badge_serial": 1,
            "kind": kind,
            "source": "camera",
            "device_time": at,
            "boot_id": "boot-1",
            "monotonic_ns": seq * 1_000_000_000,
            "clock_trusted": True,
            "prev_hash": prev,
            **extra,
        }
    )


def push(app: Flask, token: str, kiosk_id: str, site_id: str, plan: list[tuple]) -> None:
    central = app.extensions["central"]
    key = keys.load_issuing_key(central.settings.issuing_key_path(central.instance))
    prev, made = GENESIS_HASH, []
    for seq, (cadre, kind, at, extra) in enumerate(plan, start=1):
        if extra.get("source", "camera") == "camera":  # the badge read, signed by this centre
            extra = {"badge_token": issue_token(key, cadre, 1, at.date()), **extra}
        made.append(event(kiosk_id, site_id, seq, prev, cadre, kind, at, **extra))
        prev = made[-1].hash
    response = app.test_client().post(
        f"{API_PREFIX}/events",
        json={"kiosk_id": kiosk_id, "events": [e.wire() for e in made]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert all(r["status"] == "stored" for r in response.get_json()["results"])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Any:
    app = make_centre(tmp_path_factory.mktemp("hostile") / "central")
    admin = app.test_client()
    log_in(admin, "admin")
    response = admin.post(
        "/staff/roster/import",
        data={"file": (io.BytesIO(roster_csv()), "roster.csv"), "csrf_token": csrf_of(admin)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    kiosk_id, token = enrol_kiosk(app, SITE)
    other_kiosk, other_token = enrol_kiosk(app, OTHER_SITE)
    at = datetime(2026, 11, 29, 6, 0, tzinfo=SHANGHAI)
    manual = {"source": "manual", "operator": OPERATOR, "reason": REASON}
    plan = [(cadre, "arrival", at + timedelta(minutes=i), {}) for i, cadre in enumerate(CADRES)]
    plan.append(("H2", "departure", at + timedelta(hours=3), manual))
    push(app, token, kiosk_id, SITE, plan)
    # H1 at a second site the same day: an anomaly that names the person.
    push(app, other_token, other_kiosk, OTHER_SITE, [("H1", "arrival", at, {})])
    app.extensions["central"].stays.drain()
    # A staff correction with a hostile reason.
    form = {
        "cadre_id": "H3",
        "action": "add",
        "kind": "departure",
        "site_id": SITE,
        "reason": REASON,
        "time": "2026-11-29T11:00",
        "csrf_token": csrf_of(admin),
    }
    response = admin.post("/staff/corrections", data=form)
    assert response.status_code == 302
    yield app, admin, kiosk_id
    app.extensions["central"].engine.dispose()


def test_the_roster_upload_took_the_hostile_rows_as_text(hostile):
    app, admin, _ = hostile
    page = admin.get("/staff/roster").get_data(as_text=True)
    assert_shown_harmlessly(page, "roster page")
    with app.extensions["central"].engine.connect() as conn:
        assert count_rows(conn)["cadres"] == len(CADRES) + 1


def staff_pages(kiosk_id: str) -> list[tuple[str, list[str]]]:
    from urllib.parse import quote

    site = quote(SITE, safe="")
    q = f"?day={DAY}&from={DAY}&to={DAY}"
    pages = [
        (f"/staff/{q}", [SITE_NAME]),
        (f"/staff/sites/{site}{q}", [SITE_NAME, CADRES["H1"][0], CADRES["H5"][0]]),
        (f"/staff/sites/{site}/arrivals.json{q}", []),
        ("/staff/cadres?q=H", [CADRES["H1"][0], CADRES["H6"][0]]),
        (f"/staff/anomalies{q}", [CADRES["H1"][0]]),
        ("/staff/corrections", [REASON, CADRES["H3"][0]]),
        ("/staff/kiosks", [SITE_NAME]),
        (f"/staff/exports{q}", [SITE_NAME, OTHER_SITE_NAME]),
    ]
    for cadre_id, (name, unit) in CADRES.items():
        expect = [name, unit]
        if cadre_id == "H2":
            expect += [OPERATOR, REASON]  # the by-hand departure
        pages.append((f"/staff/cadres/{cadre_id}{q}", expect))
    return pages


def test_every_staff_page_shows_hostile_text_as_text(hostile):
    _app, admin, kiosk_id = hostile
    for path, expect in staff_pages(kiosk_id):
        response = admin.get(path)
        assert response.status_code == 200, (path, response.status_code)
        if response.mimetype == "application/json":
            assert response.get_json()["site_id"] == SITE
            continue
        assert_shown_harmlessly(response.get_data(as_text=True), path, expect)


def content_disposition_name(response) -> str:
    _value, options = parse_options_header(response.headers["Content-Disposition"])
    name = options.get("filename*") or options.get("filename") or ""
    header = response.headers["Content-Disposition"]
    assert "\r" not in header and "\n" not in header
    return name


def assert_plain_file_name(name: str, suffix: str) -> None:
    assert name.endswith(suffix), name
    assert not set(name) & set('/\\:*?"<>|\x00'), f"unsafe file name {name!r}"
    assert ".." not in name and not name.startswith("."), name


def defused(cell: Any) -> bool:
    return not (isinstance(cell, str) and cell.startswith(FORMULA_TRIGGERS))


@pytest.mark.parametrize("what", ["stays", "events"])
def test_exports_defuse_every_cell_and_name_the_file_plainly(hostile, what):
    _app, admin, _ = hostile
    query = {"from": DAY, "to": DAY, "site": [SITE, OTHER_SITE], "what": what}
    response = admin.get("/staff/exports/download", query_string={**query, "format": "csv"})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert_plain_file_name(content_disposition_name(response), ".csv")
    text = response.get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    cells = [cell for row in rows for cell in row]
    assert all(defused(cell) for cell in cells), [c for c in cells if not defused(c)]
    assert "'" + CADRES["H2"][0] in cells and CADRES["H1"][0] in cells
    if what == "events":
        assert "'" + REASON in cells and OPERATOR in cells

    response = admin.get("/staff/exports/download", query_string={**query, "format": "xlsx"})
    assert response.status_code == 200
    assert_plain_file_name(content_disposition_name(response), ".xlsx")
    sheet = load_workbook(io.BytesIO(response.get_data())).worksheets[0]
    values = []
    for row in sheet.iter_rows():
        for cell in row:
            assert cell.data_type != "f", f"formula cell {cell.coordinate}: {cell.value!r}"
            values.append(cell.value)
    assert all(defused(v) for v in values)
    assert "'" + CADRES["H2"][0] in values and CADRES["H5"][0] in values


def test_badge_sheets_print_hostile_names_literally(hostile):
    import pypdfium2

    _app, admin, _ = hostile
    response = print_badges(admin, scope="site", site_id=SITE, layout="54x90-2x5")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert_plain_file_name(content_disposition_name(response), ".pdf")
    pdf = pypdfium2.PdfDocument(response.get_data())
    text = "".join(page.get_textpage().get_text_range() for page in pdf)
    compact = re.sub(r"\s+", "", text)
    for name, _unit in CADRES.values():
        # Even 64 characters are printed whole: smaller, on more lines, never cut.
        assert re.sub(r"\s+", "", name) in compact, name


def test_a_roster_with_invisible_or_path_characters_is_refused_with_the_reason(tmp_path):
    app = make_centre(tmp_path / "central")
    admin = app.test_client()
    log_in(admin, "admin")
    rows = [
        "编号,姓名,单位,站点,站点名称",
        "R1,\u202e宋昕,,S1,站",  # right-to-left override: shows as something else
        "R2,李娜\u200b,,S1,站",  # zero-width space
        "R3,王强,,../../etc/passwd,站",
        "R4,赵敏,,..,站",
        "R5," + "长" * 65 + ",,S1,站",
    ]
    upload = ("\n".join(rows) + "\n").encode()
    response = admin.post(
        "/staff/roster/import",
        data={"file": (io.BytesIO(upload), "<b>bad</b>.csv"), "csrf_token": csrf_of(admin)},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert_shown_harmlessly(page, "refused roster", ["<b>bad</b>.csv"])
    assert page.count("U+202E") == 1 and "U+200B" in page
    assert page.count("站点编号不能含有") == 2  # the path-like site ids, in the page's words
    assert "最多 64" in page or "at most 64" in page
    with app.extensions["central"].engine.connect() as conn:
        assert count_rows(conn)["cadres"] == 0
    app.extensions["central"].engine.dispose()


def test_an_upload_named_like_a_path_writes_nothing_there(tmp_path):
    app = make_centre(tmp_path / "central")
    admin = app.test_client()
    log_in(admin, "admin")
    target = tmp_path / f"escaped-{uuid.uuid4().hex}.csv"
    climb = "../" * 12 + str(target).lstrip("/")
    before = sorted(p.name for p in tmp_path.iterdir())
    response = admin.post(
        "/staff/roster/import",
        data={
            "file": (io.BytesIO("编号,姓名\nC9,名\n".encode()), climb),
            "csrf_token": csrf_of(admin),
        },
    )
    assert response.status_code == 302
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    app.extensions["central"].engine.dispose()


# ---------------------------------------------------------------------------- the kiosk


@pytest.fixture
def hostile_kit(tmp_path, issuing_key):
    from kiosk.roster import CadreEntry, RosterSnapshot, RosterStore
    from sync.badge_token import key_id_of, public_key_to_text

    instance = tmp_path / "instance"
    instance.mkdir()
    public = issuing_key.public_key()
    RosterStore(instance).save(
        RosterSnapshot(
            version=1,
            site_id="site-1",
            cadres={
                c: CadreEntry(name=n, unit=u, site_id="site-1") for c, (n, u) in CADRES.items()
            },
            public_keys={key_id_of(public): public_key_to_text(public)},
        )
    )
    kit = make_kit(tmp_path, issuing_key, site_name=SITE_NAME, site_id='site"/..\\1')
    yield kit
    kit.services.stop()


def lead_client(kit, name: str = OPERATOR) -> FlaskClient:
    client = kit.app.test_client()
    login(client, name=name)
    return client


def test_the_kiosk_screen_carries_hostile_names_as_json_text(hostile_kit):
    kit = hostile_kit
    client = kit.app.test_client()
    page = client.get("/", environ_base=LOCAL).get_data(as_text=True)
    assert_shown_harmlessly(page, "kiosk screen", [SITE_NAME])
    assert "</script" not in page.split('id="screen-config"', 1)[1].split("</script>", 1)[0]

    stream = client.get("/stream", environ_base=LOCAL, buffered=False)
    try:
        chunks = iter(stream.response)
        for _ in range(3):  # retry, hello, status
            next(chunks)
        for cadre_id, (name, _unit) in CADRES.items():
            kit.services.handle_payload(kit.badge(cadre_id), "camera")
            message = next(chunks).decode()
            lines = message.strip().split("\n")
            assert [line.split(":", 1)[0] for line in lines] == ["id", "event", "data"]
            data = json.loads(lines[2].removeprefix("data: "))
            assert data["outcome"] == "arrival" and data["name"] == name
    finally:
        stream.close()


def test_the_screen_script_puts_server_text_in_as_text_never_as_markup():
    script = (Path(__file__).resolve().parents[2] / "kiosk/web/static/screen.js").read_text()
    markup_sinks = re.findall(r"(\w[\w.$()\"'-]*)\.(innerHTML|outerHTML)\s*=\s*([^;]+);", script)
    for _target, _sink, value in markup_sinks:
        # Only the script's own icons (picked by outcome) or nothing go in as markup.
        assert re.fullmatch(r'ICONS\[[\w.]+\] \|\| ""|""', value.strip()), value
    assert "insertAdjacentHTML" not in script and "document.write" not in script
    for field in ("headline", "name", "detail", "extra"):
        assert f".textContent = scan.{field}" in script


def test_the_lead_page_and_its_exports_show_hostile_text_harmlessly(hostile_kit):
    kit = hostile_kit
    for cadre_id in CADRES:
        kit.services.handle_payload(kit.badge(cadre_id), "camera")
    client = lead_client(kit)
    client.get("/lead/", environ_base=LOCAL)
    outcome = client.post(
        "/lead/manual",
        data={
            "cadre_id": "H2",
            "kind": "departure",
            "reason": REASON,
            "csrf_token": csrf(client),
            "form_key": form_key(kit.app),
        },
        environ_base=LOCAL,
        follow_redirects=True,
    )
    assert outcome.status_code == 200
    names = [name for name, _unit in CADRES.values()]
    page = outcome.get_data(as_text=True)
    assert_shown_harmlessly(page, "lead page", [*names, OPERATOR, REASON])
    api = client.get("/lead/api/summary", environ_base=LOCAL).get_json()
    assert {p["name"] for p in api["present"]} >= set(names) - {CADRES["H2"][0]}

    response = client.get(f"/lead/export.csv?from={DAY}", environ_base=LOCAL)
    assert response.status_code == 200
    assert_plain_file_name(content_disposition_name(response), ".csv")
    cells = [
        c for row in csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))) for c in row
    ]
    assert all(defused(c) for c in cells), [c for c in cells if not defused(c)]
    assert "'" + REASON in cells and OPERATOR in cells

    response = client.get(f"/lead/export.xlsx?from={DAY}", environ_base=LOCAL)
    assert_plain_file_name(content_disposition_name(response), ".xlsx")
    sheet = load_workbook(io.BytesIO(response.get_data())).worksheets[0]
    for row in sheet.iter_rows():
        for cell in row:
            assert cell.data_type != "f" and defused(cell.value), cell.value


def test_what_the_lead_types_is_kept_without_invisible_or_control_characters(kit):
    """A right-to-left override would show a reason reversed on every page; a NUL cannot be
    stored by the centre's PostgreSQL: both are dropped where the lead types them."""
    client = kit.app.test_client()
    login(client, name="组长\u202e\x00\n王\u3000五")
    client.get("/lead/", environ_base=LOCAL)
    response = client.post(
        "/lead/manual",
        data={
            "cadre_id": "C001",
            "kind": "arrival",
            "reason": "迟到\u202e了\x00\r\n\u200b原因",
            "csrf_token": csrf(client),
            "form_key": form_key(kit.app),
        },
        environ_base=LOCAL,
        follow_redirects=True,
    )
    assert response.status_code == 200
    (event,) = list(kit.services.log.iter_events())
    assert (event.operator, event.reason) == ("组长王 五", "迟到了原因")
