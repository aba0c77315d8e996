"""sync/tabular.py: exports that open in Excel with Chinese intact and no formula injection."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone

import pytest
from openpyxl import load_workbook

from sync import tabular
from sync.tabular import Table

HOSTILE = ["=1+2", "+1", "-1", "@SUM(A1)", "\t=cmd", "\r=cmd", '=HYPERLINK("http://x","y")']


def _csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "CSV must start with the UTF-8 BOM for Excel"
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_cells_are_defused_in_csv(value):
    rows = _csv_rows(tabular.to_bytes(Table(["name"], [[value]]), "csv"))
    assert rows[1] == ["'" + value]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_cells_are_stored_as_text_in_xlsx(value):
    data = tabular.to_bytes(Table(["name"], [[value]]), "xlsx")
    sheet = load_workbook(io.BytesIO(data)).active
    cell = sheet.cell(row=2, column=1)
    assert cell.data_type == "s", "a string beginning with = must not become a formula"
    # XML turns a bare carriage return into a line feed when the file is read back.
    assert cell.value == "'" + value.replace("\r", "\n")


def test_harmless_text_and_numbers_are_kept_as_they_are():
    table = Table(["name", "hours", "count"], [["宋昕", 9.2, -3], ["a=b", 0.0, 0]])
    rows = _csv_rows(tabular.to_bytes(table, "csv"))
    assert rows[1:] == [["宋昕", "9.2", "-3"], ["a=b", "0.0", "0"]]
    sheet = load_workbook(io.BytesIO(tabular.to_bytes(table, "xlsx"))).active
    assert [c.value for c in sheet[2]] == ["宋昕", 9.2, -3]
    assert sheet.cell(row=2, column=3).data_type == "n"


def test_header_cells_are_defused_too():
    rows = _csv_rows(tabular.to_bytes(Table(["=evil", "ok"], []), "csv"))
    assert rows == [["'=evil", "ok"]]


def test_times_keep_local_wall_time_in_xlsx_and_offset_in_csv():
    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2026, 11, 29, 5, 20, 7, tzinfo=shanghai)
    table = Table(["time"], [[moment]])
    rows = _csv_rows(tabular.to_bytes(table, "csv"))
    assert rows[1] == ["2026-11-29T05:20:07+08:00"]
    sheet = load_workbook(io.BytesIO(tabular.to_bytes(table, "xlsx"))).active
    assert sheet.cell(row=2, column=1).value == datetime(2026, 11, 29, 5, 20, 7)


def test_control_characters_do_not_break_the_workbook():
    data = tabular.to_bytes(Table(["name"], [["bad\x01name\x1f"]]), "xlsx")
    assert load_workbook(io.BytesIO(data)).active.cell(row=2, column=1).value == "badname"


def test_rows_may_be_a_generator_and_are_counted():
    out = io.BytesIO()
    count = tabular.write(Table(["n"], ([i] for i in range(5))), out, "csv")
    assert count == 5
    assert len(_csv_rows(out.getvalue())) == 6


def test_csv_rows_end_with_crlf_and_quote_commas_and_newlines():
    data = tabular.to_bytes(Table(["a", "b"], [["x,y", "line1\nline2"]]), "csv")
    assert data.endswith(b"\r\n")
    assert _csv_rows(data)[1] == ["x,y", "line1\nline2"]


def test_write_file_is_atomic_and_leaves_a_good_file_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    tabular.write_file(Table(["n"], [[1]]), target)
    good = target.read_bytes()

    def broken_rows():
        yield [2]
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        tabular.write_file(Table(["n"], broken_rows()), target)
    assert target.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_format_is_taken_from_the_file_name_or_refused(tmp_path):
    assert tabular.format_for(tmp_path / "a.XLSX") == "xlsx"
    with pytest.raises(ValueError, match=r"\.csv or \.xlsx"):
        tabular.format_for(tmp_path / "a.pdf")


def test_sheet_title_drops_characters_excel_refuses():
    data = tabular.to_bytes(Table(["n"], [[1]], title="stays 2026/11/29 [all]"), "xlsx")
    title = load_workbook(io.BytesIO(data)).active.title
    assert "/" not in title and "[" not in title
    assert len(title) <= 31


def test_utc_datetimes_are_written_without_zone_in_xlsx():
    moment = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    sheet = load_workbook(io.BytesIO(tabular.to_bytes(Table(["t"], [[moment]]), "xlsx"))).active
    assert sheet.cell(row=2, column=1).value == datetime(2026, 1, 1, 0, 0)
