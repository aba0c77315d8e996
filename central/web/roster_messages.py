"""The roster reader's problems (central/roster_file.py, English for the command line) in the
page's language.

Each reason the reader writes is matched by a pattern and said again through gettext, with the
values it carries. A reason no pattern knows is shown as it is rather than hidden; a test feeds
the reader a file with every kind of bad row and checks each one is translated.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from flask_babel import gettext

from central.roster_file import HEADER_SEARCH_ROWS

_FIELD_NAMES: dict[str, Callable[[], str]] = {
    "name": lambda: gettext("name"),
    "unit": lambda: gettext("unit"),
    "site": lambda: gettext("site"),
    "site name": lambda: gettext("site name"),
    "id": lambda: gettext("id"),
}


def _field(label: str) -> str:
    known = _FIELD_NAMES.get(label)
    return known() if known else label


_ROW_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"missing id$"), lambda m: gettext("the id is missing")),
    (re.compile(r"missing name$"), lambda m: gettext("the name is missing")),
    (
        re.compile(r"id (?P<id>.+) must be 1-32 characters of A-Z a-z 0-9 \. _ -$"),
        lambda m: gettext("id %(id)s: use 1-32 characters of A-Z a-z 0-9 . _ -", id=m.group("id")),
    ),
    (
        re.compile(r"duplicate id (?P<id>\S+) \(first on line (?P<line>\d+)\)$"),
        lambda m: gettext(
            "id %(id)s appears twice (first on line %(line)s)",
            id=m.group("id"),
            line=m.group("line"),
        ),
    ),
    (
        re.compile(
            r"(?P<label>.+) contains a control or invisible character \((?P<char>U\+[0-9A-F]+)\)$"
        ),
        lambda m: gettext(
            "%(field)s contains a control or invisible character (%(char)s)",
            field=_field(m.group("label")),
            char=m.group("char"),
        ),
    ),
    (
        re.compile(r"(?P<label>.+) is (?P<n>\d+) characters long \(at most (?P<limit>\d+)\)$"),
        lambda m: gettext(
            "%(field)s is %(n)s characters long (at most %(limit)s)",
            field=_field(m.group("label")),
            n=m.group("n"),
            limit=m.group("limit"),
        ),
    ),
    (
        re.compile(r"site name given without a site$"),
        lambda m: gettext("a site name is given without a site"),
    ),
    (
        re.compile(r"site (?P<id>.+) may not hold / or \\ or be only dots$"),
        lambda m: gettext(
            "site %(id)s: a site id may not hold / or \\ or be only dots", id=m.group("id")
        ),
    ),
    (
        re.compile(r"more cells than headers"),
        lambda m: gettext("more cells than headers (an unquoted comma in a cell?)"),
    ),
]

_FILE_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"neither UTF-8 nor GB18030"),
        lambda m: gettext(
            "The file is neither UTF-8 nor GB18030 text: save it from Excel as CSV UTF-8 or XLSX."
        ),
    ),
    (
        re.compile(r"line (?P<line>\d+): not valid CSV"),
        lambda m: gettext("Line %(line)s is not valid CSV.", line=m.group("line")),
    ),
    (
        re.compile(r"(not a readable|damaged) XLSX workbook"),
        lambda m: gettext("The file is not a readable XLSX workbook."),
    ),
    (
        re.compile(r"old \.xls workbooks"),
        lambda m: gettext("Old .xls workbooks are not read: save it as .xlsx or CSV."),
    ),
    (
        re.compile(r"the file is empty"),
        lambda m: gettext("The file is empty."),
    ),
    (
        re.compile(r"more than (?P<n>\d+) rows"),
        lambda m: gettext("More than %(n)s rows: is this the right file?", n=m.group("n")),
    ),
    (
        re.compile(r"line (?P<line>\d+): two columns for (?P<key>\S+)"),
        lambda m: gettext(
            "Line %(line)s: two columns for %(key)s.", line=m.group("line"), key=m.group("key")
        ),
    ),
    (
        re.compile(r"line (?P<line>\d+): header lacks required columns"),
        lambda m: gettext(
            "No header found: none of the first %(rows)d rows (from line %(line)s) has the "
            "columns 编号/id and 姓名/name.",
            rows=HEADER_SEARCH_ROWS,
            line=m.group("line"),
        ),
    ),
]


def _translate(
    text: str, patterns: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]
) -> str | None:
    for pattern, say in patterns:
        found = pattern.search(text)
        if found:
            return say(found)
    return None


def row_problem(reason: str) -> str:
    """One bad row's reason, translated; the original when no pattern knows it."""
    return _translate(reason, _ROW_PATTERNS) or reason


def file_problem(message: str) -> str:
    """Why a whole file could not be read, translated; the original when unknown."""
    return _translate(message, _FILE_PATTERNS) or message


def is_known_row_problem(reason: str) -> bool:
    return _translate(reason, _ROW_PATTERNS) is not None
