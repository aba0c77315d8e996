"""Chinese first, English second: every message translated, the compiled catalogue current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "kiosk" / "translations"
PO = TRANSLATIONS / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"%\((\w+)\)")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> set[str]:
    """Every message the kiosk's code and templates show, extracted as the README says."""
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    CommandLineInterface().run(
        [
            "pybabel",
            "-q",
            "extract",
            "-F",
            str(TRANSLATIONS / "babel.cfg"),
            "-k",
            "_l",
            "-o",
            str(pot),
            str(ROOT / "kiosk"),
        ]
    )
    with pot.open("rb") as f:
        return {m.id for m in read_po(f) if m.id}


@pytest.fixture(scope="module")
def chinese():
    with PO.open("rb") as f:
        return read_po(f, locale="zh_Hans_CN")


def test_every_shown_message_has_a_chinese_translation(extracted, chinese):
    assert len(extracted) > 100  # the extraction really saw the pages
    untranslated = sorted(
        mid for mid in extracted if not chinese.get(mid) or not chinese.get(mid).string
    )
    assert untranslated == [], "run pybabel update and translate: see kiosk/translations/babel.cfg"
    fuzzy = sorted(m.id for m in chinese if m.id and m.fuzzy)
    assert fuzzy == []


def test_translations_keep_the_placeholders(chinese):
    for message in chinese:
        if not message.id:
            continue
        assert sorted(PLACEHOLDER.findall(message.id)) == sorted(
            PLACEHOLDER.findall(message.string)
        ), message.id


def test_compiled_catalogue_matches_the_po_file(chinese):
    with MO.open("rb") as f:
        compiled = read_mo(f)
    po = {m.id: m.string for m in chinese if m.id}
    mo = {m.id: m.string for m in compiled if m.id}
    assert mo == po, "the .mo is stale: run pybabel compile -d kiosk/translations"


# ---------------------------------------------------------------- codes shown as words


def _english_catalogue() -> set[str]:
    with PO.open("rb") as f:
        return {m.id for m in read_po(f) if m.id and isinstance(m.id, str)}


def _codes(module, prefix: str) -> set[str]:
    return {v for k, v in vars(module).items() if k.startswith(prefix) and isinstance(v, str)}


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def test_every_flag_kind_source_status_and_refusal_code_has_chinese_words(kit):
    from typing import get_args

    from kiosk.rules import corrected, outcome
    from kiosk.web import present, status
    from sync import events

    codes = {
        present.flag_text: _codes(outcome, "FLAG_"),
        present.kind_text: set(get_args(events.Kind)),
        present.source_text: set(get_args(events.Source)),
        present.status_text: set(get_args(corrected.Standing)),
        present.refusal_text: _codes(outcome, "REFUSE_"),
        status.sync_problem_text: {
            "unreachable",
            "refused",
            "incomplete",
            "internal",
            "unauthorized",
        },
    }
    with kit.app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        for word, values in codes.items():
            assert values, word
            for code in values:
                text = word(code)
                assert _has_chinese(text) and code not in text, (word.__name__, code, text)


def test_every_readiness_line_is_worded_in_chinese(kit):
    from kiosk.web.status import item_words, readiness

    with kit.app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        for item in readiness(kit.services):
            label, value = item_words(item)
            assert _has_chinese(label), item
            if item.key not in ("light", "focus", "fps", "pending", "disk"):
                assert _has_chinese(value), (item, value)


def test_the_lead_export_has_no_english_or_codes_in_chinese(kit):
    import io

    from openpyxl import load_workbook

    from tests.kiosk_web.helpers import login, post_form

    services = kit.services
    services.rules.scan(kit.badge("C002"), "camera", kind="arrival")  # Arrive chosen on screen
    services.handle_payload(kit.badge("C001"), "camera")
    services.handle_payload(kit.badge("X900"), "wedge")  # a visitor, by the barcode scanner
    client = kit.app.test_client()
    login(client, name="")  # no name given: recorded as the default operator
    post_form(
        client,
        kit.app,
        "/lead/manual",
        cadre_id="C002",
        kind="departure",
        reason="早走",
        time="05:10",
    )
    arrival = services.log.last_event("C001")
    post_form(
        client,
        kit.app,
        "/lead/correct",
        event_id=str(arrival.event_id),
        kind="arrival",
        time="2026-11-29T05:00",
        reason="晚录",
    )
    post_form(
        client,
        kit.app,
        "/lead/void",
        event_id=str(services.log.last_event("X900").event_id),
        reason="错扫",
    )
    kit.clock.advance(hours=20)  # C003's arrival an old one: flagged when the next scan comes
    services.handle_payload(kit.badge("C003"), "camera")
    kit.clock.advance(hours=17)
    services.handle_payload(kit.badge("C003"), "camera")
    login(client, name="")  # 37 hours on: the lead's session of before has ended

    english = _english_catalogue()
    from kiosk.rules import outcome

    codes = _codes(outcome, "FLAG_") | {"arrival", "departure", "void", "camera", "wedge", "manual"}
    codes |= {"voided", "replaced", "undone", "true", "false", "site lead"}
    data = client.get(
        "/lead/export.xlsx?from=2026-11-29&to=2026-12-01", headers={"Accept-Language": "zh-CN"}
    ).data
    rows = list(load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    assert len(rows) > 6
    for row in rows:
        for cell in row:
            if not isinstance(cell, str):
                continue
            for part in cell.split(", "):
                assert part not in english, (part, row)
                assert part not in codes, (part, row)

    page = client.get("/lead/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    for code in codes - {"true", "false"}:
        assert f">{code}<" not in page, code


def test_a_refused_entry_is_explained_in_the_pages_language(kit):
    from tests.kiosk_web.helpers import flashes, login, post_form

    client = kit.app.test_client()
    login(client)
    post_form(
        client, kit.app, "/lead/manual", cadre_id="C001", kind="arrival", reason="x", time="23:59"
    )
    assert flashes(client)[-1] == ("error", "不能填写将来的时间。")
