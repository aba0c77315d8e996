"""Reading a roster file: CSV or XLSX as central staff keep it, checked row by row.

A file is read and validated whole before anything is stored (central/roster.py stores it): every
bad row is reported with its line and reason, and a file with any bad row changes nothing. Text is
normalised (NFC, trimmed); control and invisible characters, over-long cells, duplicate ids and
ids outside the badge alphabet are refused.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from central.db.schema import NAME_MAX, SITE_ID_MAX, SITE_NAME_MAX, UNIT_MAX
from sync.badge_token import CADRE_ID_PATTERN

# A roster bigger than this is a wrong file (a whole HR export), not a roster.
MAX_ROWS = 500_000
# Chinese office files put a title (and a date, a note) above the headers: the header is the first
# of this many non-blank rows that has the required columns; the rows above it are not read.
HEADER_SEARCH_ROWS = 10


class RosterFileError(Exception):
    """The file as a whole cannot be read as a roster (encoding, format, headers)."""


@dataclass(frozen=True)
class RosterRow:
    line: int  # line in the CSV file / row in the sheet, as the person who edits it sees it
    cadre_id: str
    name: str
    unit: str | None  # None: the file has no unit column, keep what is stored
    site_id: str | None  # None: no site column, or the cell is empty
    site_name: str | None


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ParsedRoster:
    source: str
    rows: list[RosterRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    header_line: int = 0  # where the header was found
    skipped_lines: list[int] = field(default_factory=list)  # non-blank rows above it (titles)


# Accepted spellings of each column, compared after stripping spaces and case-folding.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "cadre_id": ("编号", "id", "cadre_id", "工号"),
    "name": ("姓名", "name"),
    "unit": ("单位", "unit"),
    "site_id": ("站点", "site", "site_id"),
    "site_name": ("站点名称", "site_name"),
}
REQUIRED_COLUMNS = ("cadre_id", "name")
_HEADER_LOOKUP = {alias.casefold(): key for key, names in COLUMN_ALIASES.items() for alias in names}


def _normalise_header(cell: object) -> str:
    # Excel users pad headers with ordinary and ideographic spaces; BOM remnants are seen too.
    return str(cell if cell is not None else "").strip(" \t\r\n\u3000\ufeff").casefold()


def _cell_text(value: object) -> str:
    """A cell as text. Excel stores ids like 10023 as numbers (and 10023.0 as a float)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _refused_character(text: str) -> str | None:
    """The first character no roster text may hold: controls, format marks, line separators.

    Format marks (Cf) include bidi overrides that make a name display as something else.
    Private-use characters stay allowed: older systems encode rare name characters there.
    """
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            return f"U+{ord(char):04X}"
    return None


def _clean_text(raw: str, label: str, limit: int, problems: list[str]) -> str:
    text = unicodedata.normalize("NFC", raw.strip(" \t\u3000"))
    bad = _refused_character(text)
    if bad:
        problems.append(f"{label} contains a control or invisible character ({bad})")
    if len(text) > limit:
        problems.append(f"{label} is {len(text)} characters long (at most {limit})")
    return text


def _validate(
    line: int, cells: dict[str, str], seen: dict[str, int]
) -> tuple[RosterRow | None, list[str]]:
    problems: list[str] = []
    cadre_id = cells.get("cadre_id", "").strip(" \t\u3000")
    if not cadre_id:
        problems.append("missing id")
    elif not CADRE_ID_PATTERN.fullmatch(cadre_id):
        shown = cadre_id if len(cadre_id) <= 40 else cadre_id[:40] + "…"
        problems.append(f"id {shown!r} must be 1-32 characters of A-Z a-z 0-9 . _ -")
    elif cadre_id in seen:
        problems.append(f"duplicate id {cadre_id} (first on line {seen[cadre_id]})")
    else:
        seen[cadre_id] = line
    name = _clean_text(cells.get("name", ""), "name", NAME_MAX, problems)
    if not name:
        problems.append("missing name")
    unit = _clean_text(cells["unit"], "unit", UNIT_MAX, problems) if "unit" in cells else None
    site_id = _clean_text(cells.get("site_id", ""), "site", SITE_ID_MAX, problems) or None
    site_name = (
        _clean_text(cells.get("site_name", ""), "site name", SITE_NAME_MAX, problems) or None
    )
    if site_name and not site_id:
        problems.append("site name given without a site")
    # A site id is a path segment of the staff pages (/staff/sites/<id>): with a slash, or as
    # "." or "..", its page could never be opened (browsers resolve "../" away).
    if site_id and (any(char in site_id for char in "/\\") or not site_id.strip(".")):
        problems.append(f"site {site_id!r} may not hold / or \\ or be only dots")
    if problems:
        return None, problems
    return RosterRow(line, cadre_id, name, unit, site_id, site_name), []


def _decode_csv(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # What Chinese Excel writes for "CSV": GBK, a subset of GB18030.
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise RosterFileError(
            f"{source}: neither UTF-8 nor GB18030 text (byte {exc.start}); "
            "save it from Excel as CSV UTF-8 or as XLSX"
        ) from exc


def _csv_records(
    path: Path, on_total: Callable[[int], None] | None
) -> Iterator[tuple[int, Sequence[object]]]:
    text = _decode_csv(path.read_bytes(), str(path))
    if on_total:
        on_total(text.count("\n"))
    # Tab or comma, by the first lines that hold either (a title line above the header may hold
    # neither).
    head = text.split("\n", HEADER_SEARCH_ROWS + 1)[:HEADER_SEARCH_ROWS]
    tabbed = sum(1 for line in head if "\t" in line and "," not in line)
    commas = sum(1 for line in head if "," in line)
    delimiter = "\t" if tabbed > commas else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        for record in reader:
            yield start, record
            # A quoted cell may span lines: the next record starts after the lines just read.
            start = reader.line_num + 1
    except csv.Error as exc:
        raise RosterFileError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from exc


def _xlsx_records(
    path: Path, on_total: Callable[[int], None] | None
) -> Iterator[tuple[int, Sequence[object]]]:
    import zipfile
    from xml.etree.ElementTree import ParseError

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    damaged = (zipfile.BadZipFile, KeyError, ValueError, OSError, ParseError, InvalidFileException)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except damaged as exc:
        raise RosterFileError(f"{path}: not a readable XLSX workbook ({exc})") from exc
    try:
        sheet = workbook.worksheets[0]
        if on_total and sheet.max_row:  # from the sheet's dimension; some writers leave it out
            on_total(sheet.max_row)
        yield from enumerate(sheet.iter_rows(values_only=True), start=1)
    except damaged as exc:
        raise RosterFileError(f"{path}: damaged XLSX workbook ({exc})") from exc
    finally:
        workbook.close()


def read_roster_file(
    path: Path,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ParsedRoster:
    """Read and validate a CSV or XLSX roster. Bad rows become problems; nothing is stored.

    `on_total` hears about how many rows the file has once it is open; `progress` hears of each
    row checked. Raises RosterFileError when the file as a whole is unusable (format, encoding,
    headers).
    """
    suffix = path.suffix.casefold()
    if not path.is_file():
        raise RosterFileError(f"{path}: no such file")
    if suffix in (".xlsx", ".xlsm"):
        records = _xlsx_records(path, on_total)
    elif suffix in (".csv", ".txt", ".tsv"):
        records = _csv_records(path, on_total)
    elif suffix == ".xls":
        raise RosterFileError(f"{path}: old .xls workbooks are not read; save it as .xlsx or CSV")
    else:
        raise RosterFileError(f"{path}: expected a .csv or .xlsx file")
    return parse_records(records, str(path), progress)


def parse_records(
    records: Iterable[tuple[int, Sequence[object]]],
    source: str,
    progress: Callable[[int], None] | None = None,
) -> ParsedRoster:
    """Validate (line, cells) records below the header: the first of the first
    HEADER_SEARCH_ROWS non-blank records that has the required columns."""
    parsed = ParsedRoster(source)
    header: _Header | None = None
    first_row: tuple[int, list[str]] | None = None
    seen: dict[str, int] = {}
    for line, record in records:
        texts = [_cell_text(value) for value in record]
        if not any(text.strip() for text in texts):
            continue  # blank rows: spreadsheets are full of them
        if header is None:
            first_row = first_row or (line, texts)
            header = _read_header(texts, line, source, parsed)
            if header is None:
                parsed.skipped_lines.append(line)
                if len(parsed.skipped_lines) >= HEADER_SEARCH_ROWS:
                    _no_header(source, *first_row)
            else:
                parsed.header_line = line
            continue
        if len(parsed.rows) + len(parsed.problems) >= MAX_ROWS:
            raise RosterFileError(f"{source}: more than {MAX_ROWS} rows; is this the right file?")
        cells = {key: texts[i] if i < len(texts) else "" for i, key in header.columns.items()}
        row, problems = _validate(line, cells, seen)
        if any(text.strip() for text in texts[header.width :]):
            problems.append("more cells than headers (an unquoted comma in a cell?)")
        if problems:
            parsed.problems.extend(RowProblem(line, reason) for reason in problems)
        elif row is not None:
            parsed.rows.append(row)
        if progress:
            progress(1)
    if first_row is None:
        raise RosterFileError(f"{source}: the file is empty")
    if header is None:
        _no_header(source, *first_row)
    return parsed


@dataclass(frozen=True)
class _Header:
    columns: dict[int, str]  # cell index -> field name
    width: int  # cells in the header row up to the last non-blank one


def _read_header(texts: list[str], line: int, source: str, parsed: ParsedRoster) -> _Header | None:
    """The row as the header, or None when it lacks a required column (a title row)."""
    columns: dict[int, str] = {}
    ignored: list[str] = []
    duplicate: str | None = None
    for index, text in enumerate(texts):
        header = _normalise_header(text)
        key = _HEADER_LOOKUP.get(header)
        if key is None:
            if header:
                ignored.append(text.strip())
            continue
        if key in columns.values():
            duplicate = duplicate or f"line {line}: two columns for {key} ({text.strip()!r})"
            continue
        columns[index] = key
    if any(key not in columns.values() for key in REQUIRED_COLUMNS):
        return None
    if duplicate:
        raise RosterFileError(f"{source}: {duplicate}")
    parsed.ignored_columns.extend(ignored)
    width = len(texts)
    while width and not texts[width - 1].strip():
        width -= 1
    return _Header(columns, width)


def _no_header(source: str, line: int, texts: list[str]) -> NoReturn:
    wanted = "; ".join(f"{key}: {' / '.join(COLUMN_ALIASES[key])}" for key in REQUIRED_COLUMNS)
    found = ", ".join(repr(t.strip()) for t in texts if t.strip()) or "nothing"
    raise RosterFileError(
        f"{source}: line {line}: header lacks required columns ({wanted}); found {found}; "
        f"no row of the first {HEADER_SEARCH_ROWS} has them"
    )
