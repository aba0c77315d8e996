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
