"""Exports from the browser and from `central export`, and `central user add`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from central import users
from central.cli import main as central_cli
from tests.central_web.seed import local, push, seed

DAY = "2026-11-29"


@pytest.fixture
def seeded(app):
    return seed(app)


def _csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline="")))


def test_stays_as_csv_for_one_site(seeded, viewer):
    response = viewer.get(f"/staff/exports/download?from={DAY}&to={DAY}&site=S01&format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert f"stays-{DAY}-{DAY}-S01.csv" in response.headers["Content-Disposition"]
    rows = _csv(response.data)
    assert rows[0][:5] == ["日期", "站点", "站点名称", "编号", "姓名"]
    by_cadre = {row[3]: row for row in rows[1:]}
    assert sorted(by_cadre) == ["C001", "C002", "C004"]
    # Wall times of the sites' zone, its offset said once in the headers; the state in words.
    assert rows[0][6:8] == ["到达 (UTC+08:00)", "离开 (UTC+08:00)"]
    assert by_cadre["C001"][6:10] == [
        "2026-11-29 06:00:00",
        "2026-11-29 11:30:00",
        "5.5",
        "完整",
    ]


def test_events_as_xlsx_defuse_formula_names_and_keep_both_times(app, seeded, viewer):
    west = seeded.kiosks["S02"]
    central = app.extensions["central"]
    push(central.engine, west, [west.event("C005", "arrival", local(8, 5))], central.now(), app)
    response = viewer.get(
        f"/staff/exports/download?from={DAY}&to={DAY}&what=events&format=xlsx",
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:6] == ("day", "site", "id", "name", "kind", "corrected time (UTC+08:00)")
    c5 = next(row for row in rows if row[2] == "C005")
    assert c5[3] == '\'=HYPERLINK("x")'
    cells = {cell.value: cell.data_type for cell in sheet[rows.index(c5) + 1]}
    assert cells['\'=HYPERLINK("x")'] == "s"
    assert len(rows) == 1 + 5


def test_bad_export_requests_are_refused_with_the_form(seeded, viewer):
    response = viewer.get(f"/staff/exports/download?from={DAY}&to={DAY}&site=NOPE&format=csv")
    assert response.status_code == 400
    assert "所选日期或站点无效" in response.get_data(as_text=True)
    response = viewer.get(f"/staff/exports/download?from={DAY}&to={DAY}&format=pdf")
    assert response.status_code == 400


def _instance_of(app) -> Path:
    return app.extensions["central"].instance


def test_central_export_writes_the_same_table(app, seeded, tmp_path):
    out = tmp_path / "stays.csv"
    result = CliRunner().invoke(
        central_cli,
        [
            "--instance",
            str(_instance_of(app)),
            "export",
            "--from",
            DAY,
            "--to",
            DAY,
            "--site",
            "S01",
            "--site",
            "S02",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 3 rows" in result.output
    rows = _csv(out.read_bytes())
    assert {row[3] for row in rows[1:]} == {"C001", "C002", "C004"}


def test_central_export_refuses_unknown_sites_and_reversed_ranges(app, seeded, tmp_path):
    out = tmp_path / "x.xlsx"
    runner = CliRunner()
    base = ["--instance", str(_instance_of(app)), "export", "--out", str(out)]
    result = runner.invoke(central_cli, [*base, "--from", DAY, "--to", DAY, "--site", "NOPE"])
    assert result.exit_code != 0 and "NOPE" in result.output
    result = runner.invoke(central_cli, [*base, "--from", DAY, "--to", "2026-11-01"])
    assert result.exit_code != 0 and "before it starts" in result.output
    assert not out.exists()


def _user_add(instance: Path) -> list[str]:
    return ["--instance", str(instance), "user", "add", "zhang"]


def test_central_user_add_reads_the_password_from_stdin(app, tmp_path):
    instance = _instance_of(app)
    runner = CliRunner()
    result = runner.invoke(
        central_cli,
        [
            "--instance",
            str(instance),
            "user",
            "add",
            "zhang",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    engine = app.extensions["central"].engine
    assert users.authenticate(engine, "zhang", "a long enough password").role == "viewer"
    again = runner.invoke(
        central_cli,
        [
            "--instance",
            str(instance),
            "user",
            "add",
            "zhang",
            "--role",
            "admin",
            "--password-stdin",
        ],
        input="another long password\n",
    )
    assert again.exit_code != 0 and "already exists" in again.output
