"""The centre's identity commands as an operator runs them: init, roster import, badges."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from click.testing import CliRunner

from central.cli import main

ROSTER = "编号,姓名,单位,站点\r\nC1,宋昕,东城区卫生健康委员会,S1\r\nC2,欧阳娜娜,西城区,S2\r\n"


@pytest.fixture
def central(tmp_path):
    instance = tmp_path / "central"
    # The settings loader reads CENTRAL_* from the environment: start every command clean.
    runner = CliRunner(env={"CENTRAL_INSTANCE": None, "CENTRAL_BADGE_FONT_FILE": None})

    def run(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(main, ["--instance", str(instance), *args], env=env)

    run.instance = instance
    return run


def first_payload(pdf: Path) -> str:
    document = pdfium.PdfDocument(str(pdf))
    image = document[0].render(scale=150 / 72).to_pil()
    document.close()
    return zxingcpp.read_barcodes(image)[0].text


def test_init_twice_keeps_the_key_private_and_unchanged(central):
    first = central("init")
    assert first.exit_code == 0, first.output
    key = central.instance / "issuing_key.pem"
    content = key.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    second = central("init")
    assert second.exit_code == 0, second.output
    assert "kept existing issuing key" in second.output
    assert key.read_bytes() == content
    assert (central.instance / "central.db").exists()


def test_commands_before_init_say_what_to_do(central):
    result = central("roster", "import", __file__)
    assert result.exit_code != 0
    assert "central --instance" in result.output and "init" in result.output


def test_import_print_revoke_check(central, tmp_path):
    central("init")
    roster_file = tmp_path / "名单.csv"
    roster_file.write_bytes(ROSTER.encode("gb18030"))
    imported = central("roster", "import", str(roster_file))
    assert imported.exit_code == 0, imported.output
    assert "2 new" in imported.output

    pdf = tmp_path / "out" / "badges.pdf"
    printed = central("badges", "print", "--out", str(pdf), "--site", "S1")
    assert printed.exit_code == 0, printed.output
    payload = first_payload(pdf)

    valid = central("badges", "check", payload)
    assert valid.exit_code == 0
    answer = json.loads(valid.output)
    assert {k: answer[k] for k in ("valid", "reason", "cadre_id", "serial", "name")} == {
        "valid": True,
        "reason": "ok",
        "cadre_id": "C1",
        "serial": 1,
        "name": "宋昕",
    }

    revoked = central("badges", "revoke", "C1")
    assert revoked.exit_code == 0, revoked.output
    after = central("badges", "check", payload)
    assert after.exit_code == 1
    assert json.loads(after.output)["reason"] == "revoked"

    reprinted = central("badges", "print", "--out", str(pdf), "--cadre", "C1")
    assert reprinted.exit_code == 0, reprinted.output
    renewed = json.loads(central("badges", "check", first_payload(pdf)).output)
    assert (renewed["valid"], renewed["serial"]) == (True, 2)


def test_check_prints_one_json_object_for_garbage(central):
    central("init")
    result = central("badges", "check", "https://example.com/not-a-badge")
    assert result.exit_code == 1
    answer = json.loads(result.output)
    assert answer["valid"] is False and answer["reason"] == "foreign"
    assert answer["cadre_id"] is None and answer["serial"] is None


def test_bad_roster_file_lists_every_bad_line_and_changes_nothing(central, tmp_path):
    central("init")
    good = tmp_path / "good.csv"
    good.write_text(ROSTER, encoding="utf-8-sig")
    central("roster", "import", str(good))
    bad = tmp_path / "bad.csv"
    bad.write_text(ROSTER.replace("C2,欧阳娜娜", "C2,") + "C1,重复,x,S1\r\n", encoding="utf-8")
    result = central("roster", "import", str(bad))
    assert result.exit_code == 1
    assert "line 3: missing name" in result.output
    assert "line 4: duplicate id C1 (first on line 2)" in result.output
    pdf = tmp_path / "all.pdf"
    central("badges", "print", "--all", "--out", str(pdf), "--layout", "54x90-2x5")
    # Both cadres of the good file are still there with their first names.
    document = pdfium.PdfDocument(str(pdf))
    text = document[0].get_textpage().get_text_range()
    document.close()
    assert "宋昕" in text and "欧阳娜娜" in text and "重复" not in text


def test_revoke_unknown_cadre_fails_clearly(central):
    central("init")
    result = central("badges", "revoke", "NOBODY")
    assert result.exit_code != 0
    assert "no cadre with id 'NOBODY'" in result.output


def test_missing_font_names_the_package(central, tmp_path):
    central("init")
    roster_file = tmp_path / "r.csv"
    roster_file.write_text(ROSTER, encoding="utf-8")
    central("roster", "import", str(roster_file))
    result = central(
        "badges",
        "print",
        "--all",
        "--out",
        str(tmp_path / "b.pdf"),
        env={"CENTRAL_BADGE_FONT_FILE": str(tmp_path / "wqy-zenhei.ttc")},
    )
    assert result.exit_code != 0
    assert "apt-get install fonts-wqy-zenhei" in result.output
    assert not (tmp_path / "b.pdf").exists()
