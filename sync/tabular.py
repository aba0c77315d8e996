"""Tables of records written as CSV or XLSX files that open cleanly in Excel and WPS.

Shared by the kiosk (the site lead's export) and the centre (staff exports), which may not import
each other. CSV is UTF-8 with a byte-order mark because Excel otherwise reads it as the local ANSI
code page and garbles Chinese names. Any text cell beginning with = + - @ (or a tab or carriage
return, which some spreadsheets skip before looking for a formula) gets a leading single quote so
a crafted name or reason cannot run as a formula ("CSV injection"). XLSX needs the same: openpyxl
stores a string starting with "=" as a formula.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, BinaryIO, Literal

Cell = str | int | float | bool | datetime | date | time | None
Format = Literal["csv", "xlsx"]
FORMATS: tuple[Format, ...] = ("csv", "xlsx")

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
UTF8_BOM = "\ufeff"
# Control characters XLSX (XML 1.0) cannot hold; openpyxl raises on them instead of writing.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class Table:
    """A header row and the data rows under it. `rows` may be a one-pass iterator.

    In XLSX, dates, times and datetimes are real Excel values (sortable, filterable) shown as
    `2026-11-29`, `05:20:00`, `2026-11-29 05:20:00`; the header row is frozen and filterable;
    each column is as wide as its header and its first WIDTH_SAMPLE rows need (Chinese
    characters count double), unless `widths` says otherwise."""

    columns: Sequence[str]
    rows: Iterable[Sequence[Cell]]
    title: str = "export"
    widths: Sequence[float] | None = None


# How many rows the XLSX writer reads ahead to size its columns (rows stream after them).
WIDTH_SAMPLE = 200
MIN_WIDTH, MAX_WIDTH = 6.0, 60.0
NUMBER_FORMATS = {
    datetime: "yyyy-mm-dd hh:mm:ss",
    date: "yyyy-mm-dd",
    time: "hh:mm:ss",
}


_NOT_FOR_FILE_NAMES = re.compile(r"[^\w.-]+")


def file_name_part(text: str) -> str:
    """`text` (a site id, say) fit for a downloaded file's name: letters of any script, digits,
    . _ - only. Anything else (quotes, <, /, \\, spaces) becomes _, and no dot-only part or
    leading dot is left, so the name cannot climb or hide whatever a browser or tool does."""
    cleaned = _NOT_FOR_FILE_NAMES.sub("_", text)
    cleaned = re.sub(r"\.{2,}", "_", cleaned).strip(".")
    return cleaned or "_"


def defuse(value: str) -> str:
    """`value` with a leading quote when a spreadsheet would read it as a formula."""
    if value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _text_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime) and value.tzinfo is None:
        # A wall time in the zone the header names: the form Excel and WPS read as a time.
        return value.isoformat(sep=" ")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, str):
        return defuse(value)
    return str(value)


def _xlsx_cell(value: Cell) -> Cell:
    if isinstance(value, str):
        return defuse(_XML_ILLEGAL.sub("", value))
    if isinstance(value, datetime) and value.tzinfo is not None:
        # Excel has no time zones: the wall time of the zone the caller chose is what people read.
        return value.replace(tzinfo=None)
    return value


def write_csv(table: Table, out: BinaryIO) -> int:
    """Write `table` as CSV (UTF-8 with BOM, CRLF rows) to a binary stream. Returns data rows."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    try:
        text.write(UTF8_BOM)
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow([_text_cell(c) for c in table.columns])
        count = 0
        for row in table.rows:
            writer.writerow([_text_cell(c) for c in row])
            count += 1
        text.flush()
    finally:
        # Leave the caller's stream open: detaching stops the wrapper from closing it.
        text.detach()
    return count


def display_width(value: Cell) -> float:
    """Columns a cell's text takes in a spreadsheet: wide (CJK) characters count two."""
    if value is None:
        return 0.0
    if isinstance(value, datetime):
        return 19.0
    if isinstance(value, date | time):
        return 10.0 if isinstance(value, date) else 8.0
    text = str(value)
    return float(sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text))


def column_widths(columns: Sequence[str], sample: Sequence[Sequence[Cell]]) -> list[float]:
    widths = []
    for index, title in enumerate(columns):
        widest = max(
            [display_width(title) + 2]  # room for the filter's arrow
            + [display_width(row[index]) for row in sample if index < len(row)]
        )
        widths.append(min(MAX_WIDTH, max(MIN_WIDTH, widest + 1)))
    return widths


def write_xlsx(table: Table, out: BinaryIO) -> int:
    """Write `table` as a one-sheet XLSX workbook to a binary stream. Returns data rows."""
    return write_xlsx_book([table], out)


def write_xlsx_book(tables: Sequence[Table], out: BinaryIO) -> int:
    """Write each table as a sheet of one XLSX workbook to a binary stream (header frozen and
    filtered, columns as wide as their first rows, dates formatted). Returns the data rows of
    all sheets."""
    from openpyxl import Workbook

    # write_only streams rows to disk-backed XML: memory stays flat for a month of a whole city.
    workbook = Workbook(write_only=True)
    count = sum(_write_sheet(workbook, table) for table in tables)
    workbook.save(out)
    return count


def _write_sheet(workbook: Any, table: Table) -> int:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet = workbook.create_sheet(title=_sheet_title(table.title))
    rows: Iterator[Sequence[Cell]] = iter(table.rows)
    sample = list(itertools.islice(rows, WIDTH_SAMPLE))
    widths = table.widths or column_widths(table.columns, sample)
    # Sheet properties come before the rows in the file: set them before the first append.
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    header = []
    for name in table.columns:
        cell = WriteOnlyCell(sheet, value=str(_xlsx_cell(name)))
        cell.font = Font(bold=True)
        header.append(cell)
    sheet.append(header)
    count = 0
    for row in itertools.chain(sample, rows):
        sheet.append([_xlsx_value(sheet, c) for c in row])
        count += 1
    if table.columns:
        last = get_column_letter(len(table.columns))
        sheet.auto_filter.ref = f"A1:{last}{count + 1}"
    return count


def _xlsx_value(sheet: object, value: Cell) -> object:
    """A dated cell with its display format (Excel otherwise shows a date as a serial number)."""
    cleaned = _xlsx_cell(value)
    number_format = next(
        (f for kind, f in NUMBER_FORMATS.items() if isinstance(cleaned, kind)), None
    )
    if number_format is None:
        return cleaned
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=cleaned)  # type: ignore[arg-type]
    cell.number_format = number_format
    return cell


def _sheet_title(title: str) -> str:
    cleaned = re.sub(r"[\\/*?:\[\]]", "_", title).strip("'") or "export"
    return cleaned[:31]


def write_tables(tables: Sequence[Table], out: BinaryIO, fmt: Format) -> int:
    """Several tables: sheets of one workbook in XLSX; the first table alone in CSV (a CSV
    file holds one table)."""
    if fmt == "xlsx":
        return write_xlsx_book(tables, out)
    return write(tables[0], out, fmt)


def write(table: Table, out: BinaryIO, fmt: Format) -> int:
    if fmt == "csv":
        return write_csv(table, out)
    if fmt == "xlsx":
        return write_xlsx(table, out)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def to_bytes(table: Table, fmt: Format) -> bytes:
    buffer = io.BytesIO()
    write(table, buffer, fmt)
    return buffer.getvalue()


def write_file(table: Table, path: Path, fmt: Format | None = None) -> int:
    """Write `table` to `path` atomically: a half-written export never replaces a good one."""
    chosen = fmt or format_for(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with tmp.open("wb") as out:
            count = write(table, out, chosen)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def format_for(path: Path) -> Format:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise ValueError(f"cannot tell the format from {path.name!r}; name it .csv or .xlsx")


MEDIA_TYPES: dict[Format, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
