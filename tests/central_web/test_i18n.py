"""Every message of the staff pages has a Chinese translation, and the compiled catalogue is
the one the .po says."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from central.web import anomaly_messages, roster_messages
from central.web.i18n import TRANSLATIONS_DIR

WEB = Path(__file__).resolve().parents[2] / "central" / "web"
CATALOGUE = TRANSLATIONS_DIR / "zh_Hans_CN" / "LC_MESSAGES"
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


# Said outside a page in the reader's language (export cells, alert messages): same catalogue.
OUTSIDE_PAGES = [WEB.parent / "words.py", WEB.parent / "alerts.py"]


def _extracted() -> set[str | tuple[str, ...]]:
    from babel.messages.extract import extract_from_file

    ids: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(str(WEB), METHODS):
        ids.add(message if isinstance(message, str) else tuple(message))
    for path in OUTSIDE_PAGES:
        for _line, message, _comments, _context in extract_from_file("python", str(path)):
            ids.add(message if isinstance(message, str) else tuple(message))
    return ids


def _po():
    with (CATALOGUE / "messages.po").open("rb") as handle:
        return read_po(handle, locale="zh_Hans_CN")


def test_every_message_of_the_pages_is_translated():
    catalogue = _po()
    extracted = _extracted()
    assert len(extracted) > 150, "the extraction must see the templates and the views"
    missing = []
    for message_id in extracted:
        key = message_id[0] if isinstance(message_id, tuple) else message_id
        entry = catalogue.get(key)
        strings = entry.string if entry else None
        ok = all(strings) if isinstance(strings, tuple | list) else bool(strings)
        if not ok or (entry and entry.fuzzy):
            missing.append(key)
    assert not missing, f"untranslated (run pybabel update, then translate): {missing}"


def test_translations_keep_every_placeholder():
    for message in _po():
        if not message.id:
            continue
        source = message.id if isinstance(message.id, str) else message.id[0]
        targets = message.string if isinstance(message.string, tuple | list) else [message.string]
        for target in targets:
            assert sorted(PLACEHOLDER.findall(source)) == sorted(PLACEHOLDER.findall(target)), (
                source
            )


def test_compiled_catalogue_matches_the_po():
    with (CATALOGUE / "messages.mo").open("rb") as handle:
        compiled = read_mo(handle)
    source = _po()
    for message in source:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        assert compiled.get(key) is not None, f"stale .mo (run pybabel compile): {key!r}"
        said = compiled.get(key).string
        expected = message.string
        if isinstance(expected, list | tuple):
            said, expected = list(said), list(expected)
        assert said == expected, f"stale .mo: {key!r}"


def test_every_row_problem_the_roster_reader_reports_is_translated(tmp_path):
    from central import roster_file

    long_name = "长" * (roster_file.NAME_MAX + 1)
    rows = [
        "编号,姓名,单位,站点,站点名称",
        ",无编号,,,",
        "C1,,,,",
        "bad id!,名,,,",
        "C2,好名,,,",
        "C2,重复,,,",
        f"C3,{long_name},,,",
        "C4,名\u202e字,,,",
        "C5,名,,,孤立站名",
        "C6,名,,,,多出",
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    parsed = roster_file.read_roster_file(path)
    assert len(parsed.problems) >= 8
    unknown = [
        p.reason for p in parsed.problems if not roster_messages.is_known_row_problem(p.reason)
    ]
    assert not unknown, f"roster problems with no translation in roster_messages.py: {unknown}"


def test_stay_anomaly_details_are_translated():
    details = [
        "arrival at 2026-11-29 01:00:00 UTC has no departure",
        "departure at 2026-11-29 01:00:00 UTC without an arrival",
        "kiosk S01-1 recorded arrival at 2026-11-29 01:00:00 UTC; with every kiosk's records it "
        "counts as departure",
        "stay of 13.2 h from 2026-11-29 01:00:00 UTC",
        "seen at sites S01, S02",
        "seq 4 missing before seq 6",
    ]
    assert all(anomaly_messages.is_known(detail) for detail in details)


def test_roster_file_problems_are_translated(app):
    with app.test_request_context("/staff/roster"):
        said = roster_messages.file_problem("x.csv: line 1: header lacks required columns (...)")
    assert said == "找不到表头：前 10 行（从第 1 行起）都没有“编号”和“姓名”两列。"
