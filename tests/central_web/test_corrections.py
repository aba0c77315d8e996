"""central/corrections.py: staff corrections applied to a cadre's records of one day."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from central import corrections
from central.corrections import CorrectionError, NewCorrection

DAY = date(2026, 11, 29)


def record(event_id: str, kind: str, hour: int) -> dict:
    return {
        "event_id": event_id,
        "kind": kind,
        "corrected_time": datetime(2026, 11, 28, hour),
        "site_id": "S01",
        "kiosk_id": "K1",
    }


def correction(number: int, action: str, **values) -> dict:
    return {
        "correction_id": number,
        "action": action,
        "target_event_id": values.get("target"),
        "new_event_id": values.get("new"),
        "cadre_id": "C1",
        "site_id": "S01",
        "kind": values.get("kind"),
        "event_time": values.get("time"),
    }


def test_void_drops_replace_changes_add_inserts_in_time_order():
    records = [record("a", "arrival", 22), record("b", "arrival", 23)]
    result = corrections.effective_records(
        records,
        [
            correction(1, "void", target="a"),
            correction(2, "replace", target="b", kind="departure", time=datetime(2026, 11, 29, 1)),
            correction(3, "add", new="n", kind="arrival", time=datetime(2026, 11, 28, 21)),
        ],
    )
    assert [(r["event_id"], r["kind"]) for r in result] == [("n", "arrival"), ("b", "departure")]
    assert result[0]["kiosk_id"] is None and result[0]["source"] == "staff"
    assert result[1]["corrected_by"] == 2
    assert records[1]["kind"] == "arrival", "the caller's records are not changed"


def test_the_newest_correction_of_a_record_wins_and_can_restore_it():
    records = [record("a", "arrival", 22)]
    result = corrections.effective_records(
        records,
        [
            correction(1, "void", target="a"),
            correction(
                2, "replace", target="a", kind="arrival", time=datetime(2026, 11, 28, 22, 5)
            ),
        ],
    )
    assert [r["corrected_time"].minute for r in result] == [5]


def test_a_later_correction_may_void_a_record_staff_added():
    result = corrections.effective_records(
        [],
        [
            correction(1, "add", new="n", kind="arrival", time=datetime(2026, 11, 28, 21)),
            correction(2, "void", target="n"),
        ],
    )
    assert result == []


def test_corrections_of_records_not_in_the_day_change_nothing():
    records = [record("a", "arrival", 22)]
    assert corrections.effective_records(records, [correction(1, "void", target="zzz")]) == records


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"reason": "  "}, "reason"),
        ({"action": "void", "target_event_id": None}, "name the record"),
        ({"action": "add", "kind": "void"}, "arrival or departure"),
        ({"action": "add", "event_time": None}, "time"),
        ({"action": "add", "target_event_id": "a"}, "does not name"),
        ({"action": "erase"}, "unknown"),
    ],
)
def test_incomplete_corrections_are_refused(changes, message):
    base = {
        "action": "add",
        "cadre_id": "C1",
        "site_id": "S01",
        "service_day": DAY,
        "reason": "forgot to scan",
        "staff_user": "lin",
        "kind": "departure",
        "event_time": datetime(2026, 11, 29, 9),
    }
    with pytest.raises(CorrectionError, match=message):
        NewCorrection(**{**base, **changes}).check()
