"""Roster import: encodings, headers, validation of every row, all-or-nothing, re-import."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import Engine

from central import roster, roster_file
from central.db import schema

HEADER_ZH = "编号,姓名,单位,站点"


def write_csv(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def import_file(engine: Engine, path: Path) -> roster.ImportResult:
    return roster.import_parsed(engine, roster_file.read_roster_file(path))


def snapshot(engine: Engine) -> tuple[list[dict], list[dict], int]:
    """Everything a roster change could touch: sites, cadres and the version counter."""
    with engine.connect() as conn:
        changes = roster.changes_since(conn, 0)
        every_cadre = [
            dict(r._mapping)
            for r in conn.execute(schema.cadres.select().order_by(schema.cadres.c.cadre_id))
        ]
    return changes.sites, every_cadre, changes.version


def cadre(engine: Engine, cadre_id: str) -> dict:
    with engine.connect() as conn:
        row = roster.get_cadre(conn, cadre_id)
    assert row is not None, cadre_id
    return row


def test_gb18030_csv_with_chinese_headers(central_engine, tmp_path):
    # What Chinese Excel writes for "CSV (逗号分隔)": GBK bytes, no BOM, CRLF.
    path = write_csv(
        tmp_path / "名单.csv",
        [HEADER_ZH, "SZ0001,宋昕,东城区卫生健康委员会,东城一站", "SZ0002,欧阳娜娜,西城区,西城二站"],
        encoding="gb18030",
    )
    result = import_file(central_engine, path)
    assert (result.inserted, result.sites_added) == (2, 2)
    assert cadre(central_engine, "SZ0001")["name"] == "宋昕"
    assert cadre(central_engine, "SZ0002")["unit"] == "西城区"
    assert cadre(central_engine, "SZ0002")["site_id"] == "西城二站"


def test_utf8_bom_csv_with_padded_english_headers(central_engine, tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes("\ufeff ID ,Name,  Unit ,SITE\nA-1,宋昕,Health,S1\n".encode())
    import_file(central_engine, path)
    row = cadre(central_engine, "A-1")
    assert (row["name"], row["unit"], row["site_id"]) == ("宋昕", "Health", "S1")


def test_utf8_without_bom_and_unknown_columns_ignored(central_engine, tmp_path):
    path = write_csv(tmp_path / "r.csv", ["姓名,电话,编号", "宋昕,13800000000,X1"])
    parsed = roster_file.read_roster_file(path)
    assert parsed.ignored_columns == ["电话"]
    roster.import_roster(central_engine, parsed.rows)
    assert cadre(central_engine, "X1")["name"] == "宋昕"


def test_xlsx_with_chinese_headers_and_numeric_ids(central_engine, tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append([" 编号 ", "姓名", "单位", "站点", "站点名称"])
    sheet.append([10023, "宋昕", "东城区", "S1", "东城一站"])
    sheet.append([10024.0, "欧阳娜娜", None, "S1", None])
    sheet.append([None, None, None, None, None])  # blank rows are skipped, not errors
    sheet.append(["C-7", "王五", "西城区", None, None])
    path = tmp_path / "roster.xlsx"
    workbook.save(path)
    result = import_file(central_engine, path)
    assert result.inserted == 3
    assert cadre(central_engine, "10023")["name"] == "宋昕"
    assert cadre(central_engine, "10024")["unit"] == ""
    assert cadre(central_engine, "C-7")["site_id"] is None
    sites, _, _ = snapshot(central_engine)
    assert [(s["site_id"], s["name"]) for s in sites] == [("S1", "东城一站")]


def test_xlsx_with_a_title_row_above_the_headers(central_engine, tmp_path):
    """Defect 10: the layout most Chinese office files have was refused."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["2026年冬季值守干部名单"])
    sheet.merge_cells("A1:D1")
    sheet.append(["制表：东城区组织部", None, None, "2026-11-20"])
    sheet.append([None])
    sheet.append(["序号", "编号", "姓名", "单位", "站点"])
    sheet.append([1, "SZ0001", "宋昕", "东城区卫生健康委员会", "S1"])
    sheet.append([2, "SZ0002", "欧阳娜娜", "西城区", "S1"])
    path = tmp_path / "名单.xlsx"
    workbook.save(path)
    parsed = roster_file.read_roster_file(path)
    assert (parsed.header_line, parsed.skipped_lines) == (4, [1, 2])
    assert parsed.ignored_columns == ["序号"] and not parsed.problems
    assert [(row.line, row.cadre_id) for row in parsed.rows] == [(5, "SZ0001"), (6, "SZ0002")]
    assert import_file(central_engine, path).inserted == 2
    assert cadre(central_engine, "SZ0002")["name"] == "欧阳娜娜"


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_csv_with_title_lines_above_the_headers(tmp_path, delimiter):
    lines = ["干部名单（第一批）", "", "说明：请勿改动编号", delimiter.join(HEADER_ZH.split(","))]
    lines += [delimiter.join(["C1", "宋昕", "东城区", "S1"])]
    path = write_csv(tmp_path / "r.csv", lines, encoding="gb18030")
    parsed = roster_file.read_roster_file(path)
    assert (parsed.header_line, parsed.skipped_lines) == (4, [1, 3])
    assert [(row.cadre_id, row.name, row.unit) for row in parsed.rows] == [("C1", "宋昕", "东城区")]


def test_a_header_below_the_first_ten_rows_is_not_looked_for(tmp_path):
    lines = [f"说明第{n}行" for n in range(roster_file.HEADER_SEARCH_ROWS)] + [
        HEADER_ZH,
        "C1,宋昕,x,S1",
    ]
    with pytest.raises(roster_file.RosterFileError, match="line 1: header lacks required columns"):
        roster_file.read_roster_file(write_csv(tmp_path / "r.csv", lines))


def test_every_bad_row_is_reported_with_its_line_and_nothing_changes(central_engine, tmp_path):
    import_file(central_engine, write_csv(tmp_path / "first.csv", [HEADER_ZH, "C1,宋昕,东城区,S1"]))
    before = snapshot(central_engine)
    path = write_csv(
        tmp_path / "second.csv",
        [
            HEADER_ZH,
            "C1,宋昕改,新单位,S2",  # a good row that would update
            "C2,欧阳娜娜,西城区,S1",  # a good row that would insert
            ",无编号,西城区,S1",
            "C3,,西城区,S1",
            "bad id!,张三,西城区,S1",
            "C2,李四,西城区,S1",
            "C4,王五,西城区,S1,多余",
            "C5," + "长" * 65 + ",x,S1",
        ],
    )
    parsed = roster_file.read_roster_file(path)
    reasons = {(p.line, p.reason.split(" ")[0]) for p in parsed.problems}
    assert reasons == {
        (4, "missing"),
        (5, "missing"),
        (6, "id"),
        (7, "duplicate"),
        (8, "more"),
        (9, "name"),
    }
    assert "first on line 3" in next(p.reason for p in parsed.problems if p.line == 7)
    with pytest.raises(roster.RosterRejected, match="6 bad rows, nothing imported"):
        roster.import_parsed(central_engine, parsed)
    assert snapshot(central_engine) == before


def test_failure_while_writing_rolls_everything_back(central_engine, tmp_path):
    import_file(central_engine, write_csv(tmp_path / "a.csv", [HEADER_ZH, "C1,宋昕,东城区,S1"]))
    before = snapshot(central_engine)
    rows = [f"N{i:05d},姓名{i},单位,S{i % 3}" for i in range(5000)]
    parsed = roster_file.read_roster_file(
        write_csv(tmp_path / "b.csv", [HEADER_ZH, "C1,改名,x,S9", *rows])
    )

    def fail_midway(done: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        roster.import_roster(central_engine, parsed.rows, progress=fail_midway)
    assert snapshot(central_engine) == before


def test_reimport_updates_and_never_duplicates(central_engine, tmp_path):
    first = import_file(
        central_engine,
        write_csv(tmp_path / "a.csv", [HEADER_ZH, "C1,宋昕,东城区,S1", "C2,欧阳娜娜,西城区,S1"]),
    )
    second = import_file(
        central_engine,
        write_csv(tmp_path / "b.csv", [HEADER_ZH, "C1,宋昕,东城区,S1", "C2,欧阳娜娜,朝阳区,S2"]),
    )
    assert (second.inserted, second.updated, second.unchanged) == (0, 1, 1)
    _, cadres, version = snapshot(central_engine)
    assert [c["cadre_id"] for c in cadres] == ["C1", "C2"]
    assert cadres[1]["unit"] == "朝阳区" and cadres[1]["site_id"] == "S2"
    assert version == second.version > first.version
    with central_engine.connect() as conn:
        changed = roster.changes_since(conn, first.version)
    assert [c["cadre_id"] for c in changed.cadres] == ["C2"]
    assert [s["site_id"] for s in changed.sites] == ["S2"]


def test_import_that_changes_nothing_keeps_the_version(central_engine, tmp_path):
    path = write_csv(tmp_path / "a.csv", [HEADER_ZH, "C1,宋昕,东城区,S1"])
    first = import_file(central_engine, path)
    again = import_file(central_engine, path)
    assert again.version == first.version and again.unchanged == 1


def test_file_without_unit_column_keeps_stored_units(central_engine, tmp_path):
    import_file(central_engine, write_csv(tmp_path / "a.csv", [HEADER_ZH, "C1,宋昕,东城区,S1"]))
    import_file(central_engine, write_csv(tmp_path / "b.csv", ["编号,姓名,站点", "C1,宋昕,S1"]))
    assert cadre(central_engine, "C1")["unit"] == "东城区"


def test_untrusted_text_is_stored_literally_or_refused_with_a_reason(central_engine, tmp_path):
    path = write_csv(
        tmp_path / "a.csv",
        [
            HEADER_ZH,
            'C1,<script>alert(1)</script>,"=HYPERLINK(""x"")",S1',
            "C2,宋\u202easdf,东城区,S1",  # right-to-left override: displays as something else
            "C3,宋昕,东\x07城区,S1",
            "C4,宋昕,东城区," + "站" * 65,
        ],
    )
    parsed = roster_file.read_roster_file(path)
    assert {p.line: p.reason for p in parsed.problems} == {
        3: "name contains a control or invisible character (U+202E)",
        4: "unit contains a control or invisible character (U+0007)",
        5: "site is 65 characters long (at most 64)",
    }
    roster.import_roster(central_engine, parsed.rows)
    row = cadre(central_engine, "C1")
    assert row["name"] == "<script>alert(1)</script>"
    assert row["unit"] == '=HYPERLINK("x")'


def test_file_level_problems(tmp_path):
    with pytest.raises(roster_file.RosterFileError, match="required columns"):
        roster_file.read_roster_file(write_csv(tmp_path / "a.csv", ["单位,站点", "x,y"]))
    with pytest.raises(roster_file.RosterFileError, match="two columns for name"):
        roster_file.read_roster_file(write_csv(tmp_path / "b.csv", ["编号,姓名,name", "1,a,b"]))
    invalid = tmp_path / "c.csv"
    invalid.write_bytes(b"id,name\n1,\xff\xfe\xff\n")
    with pytest.raises(roster_file.RosterFileError, match="neither UTF-8 nor GB18030"):
        roster_file.read_roster_file(invalid)
    empty = tmp_path / "d.csv"
    empty.write_bytes(b"\n\n")
    with pytest.raises(roster_file.RosterFileError, match="empty"):
        roster_file.read_roster_file(empty)
    not_a_workbook = tmp_path / "e.xlsx"
    not_a_workbook.write_bytes(b"id,name\n")
    with pytest.raises(roster_file.RosterFileError, match="XLSX"):
        roster_file.read_roster_file(not_a_workbook)


def test_multiline_cell_reports_the_line_the_record_starts_on(tmp_path):
    path = write_csv(tmp_path / "a.csv", [HEADER_ZH, 'C1,"宋', '昕",x,S1', ",无编号,x,S1"])
    problems = roster_file.read_roster_file(path).problems
    assert [(p.line, p.reason) for p in problems] == [
        (2, "name contains a control or invisible character (U+000D)"),  # CR of the CRLF
        (4, "missing id"),
    ]


def test_revoke_bumps_change_version_and_lists_revocation(central_engine, tmp_path):
    import_file(central_engine, write_csv(tmp_path / "a.csv", [HEADER_ZH, "C1,宋昕,东城区,S1"]))
    with central_engine.connect() as conn:
        conn.execute(schema.cadres.update().values(badge_serial=2))
        conn.commit()
        version = roster.current_version(conn)
    assert roster.revoke_badge(central_engine, "C1", now=datetime(2026, 11, 29, tzinfo=UTC)) == 2
    with central_engine.connect() as conn:
        changes = roster.changes_since(conn, version)
        assert roster.revocations(conn) == {"C1": 2}
    assert [(c["cadre_id"], c["revoked_through"]) for c in changes.cadres] == [("C1", 2)]
    with pytest.raises(roster.UnknownCadre):
        roster.revoke_badge(central_engine, "nobody")


def test_revoke_without_a_badge_is_refused(central_engine, tmp_path):
    import_file(central_engine, write_csv(tmp_path / "a.csv", [HEADER_ZH, "C1,宋昕,东城区,S1"]))
    before = snapshot(central_engine)
    with pytest.raises(roster.NoBadgeIssued):
        roster.revoke_badge(central_engine, "C1")
    assert snapshot(central_engine) == before
