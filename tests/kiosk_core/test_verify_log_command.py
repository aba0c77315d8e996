"""`kiosk verify-log`: a flipped bit that leaves a record readable is found, and said."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kiosk.cli import main as kiosk_cli
from kiosk.store import EventLog, StoreConfig
from tests.kiosk_core.support import event_fields


def write_log(instance, count: int) -> None:
    (instance / "kiosk.toml").write_text('kiosk_id = "k1"\nsite_id = "S01"\n')
    log = EventLog(instance / "log", StoreConfig(segment_events=10, checkpoint_events=4))
    try:
        for n in range(count):
            log.append(event_fields(n))
    finally:
        log.close()


def verify(instance):
    return CliRunner().invoke(kiosk_cli, ["--instance", str(instance), "verify-log"])


def test_a_sound_log_is_said_to_be_sound(tmp_path):
    write_log(tmp_path, 25)
    result = verify(tmp_path)
    assert result.exit_code == 0, result.output
    assert "25 records, last seq 25" in result.output and "log OK" in result.output


def test_a_record_changed_on_the_card_is_found(tmp_path):
    write_log(tmp_path, 25)
    [segment] = sorted((tmp_path / "log" / "segments").glob("seg-*.json"))[:1]
    docs = json.loads(segment.read_text())
    table = next(iter(docs.values()))
    record = table["3"]
    # One letter of a cadre id flipped: still JSON, still a well-formed event.
    record["cadre_id"] = record["cadre_id"][:-1] + ("9" if record["cadre_id"][-1] != "9" else "8")
    segment.write_text(json.dumps(docs))
    result = verify(tmp_path)
    assert result.exit_code == 1, result.output
    assert "FAULT" in result.output and "log OK" not in result.output


def test_a_running_kiosk_keeps_its_log_and_is_named(tmp_path):
    write_log(tmp_path, 3)
    running = EventLog(tmp_path / "log")
    try:
        result = verify(tmp_path)
        assert result.exit_code == 1 and "stop the kiosk first" in result.output
    finally:
        running.close()
