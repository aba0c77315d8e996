from __future__ import annotations

import json

import cv2
from click.testing import CliRunner

from kiosk.cli import main
from scanner import decode as decode_module
from tests.scanner.frames import BADGE_A, badge_frame, empty_frame


def test_kiosk_decode_prints_a_json_line_per_file_and_fails_on_an_unreadable_one(tmp_path):
    good = tmp_path / "badge.png"
    cv2.imwrite(str(good), badge_frame(BADGE_A))
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), empty_frame())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    missing = tmp_path / "missing.png"

    result = CliRunner().invoke(
        main,
        ["--instance", str(tmp_path), "decode", str(good), str(broken), str(blank), str(missing)],
    )
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(broken), str(blank), str(missing)]
    assert lines[0]["texts"] == [BADGE_A] and lines[0]["ms"] >= 0
    assert "error" in lines[1] and "not a readable image" in lines[1]["error"]
    assert lines[2]["texts"] == [] and "error" not in lines[2]
    assert "cannot read" in lines[3]["error"]


def test_kiosk_decode_exits_zero_when_every_file_is_read(tmp_path):
    good = tmp_path / "badge.png"
    cv2.imwrite(str(good), badge_frame(BADGE_A))
    result = CliRunner().invoke(main, ["decode", str(good)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["texts"] == [BADGE_A]


def test_kiosk_decode_runs_the_scan_loops_pipeline(tmp_path, monkeypatch):
    from scanner.loop import ScanLoop

    # The scan loop's default decode function is the module's pipeline ...
    assert ScanLoop.__init__.__kwdefaults__["decode"] is decode_module.decode_frame
    seen = []

    def spy(frame):
        seen.append(frame.shape)
        return ["spied"]

    import scanner

    monkeypatch.setattr(scanner, "decode_frame", spy)
    good = tmp_path / "badge.png"
    cv2.imwrite(str(good), badge_frame(BADGE_A))
    result = CliRunner().invoke(main, ["decode", str(good)])
    # ... and `kiosk decode` goes through that same function.
    assert json.loads(result.output)["texts"] == ["spied"] and seen == [(480, 640)]
