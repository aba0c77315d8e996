from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from sync.events import GENESIS_HASH, Event, canonical_bytes, is_chained, seal

CST = timezone(timedelta(hours=8))


def fields(seq: int, prev: str, **extra):
    base = dict(
        event_id=uuid.uuid4(),
        kiosk_id="k1",
        site_id="S01",
        seq=seq,
        cadre_id="C0001",
        badge_serial=1,
        kind="arrival",
        source="camera",
        device_time=datetime(2026, 11, 29, 5, 20, tzinfo=CST),
        boot_id="boot-a",
        monotonic_ns=123,
        clock_trusted=True,
        prev_hash=prev,
    )
    base.update(extra)
    return base


def test_seal_chain_and_tamper():
    first = seal(fields(1, GENESIS_HASH))
    second = seal(fields(2, first.hash, kind="departure"))
    assert first.hash_is_valid() and second.hash_is_valid()
    assert is_chained(None, first) and is_chained(first, second)
    assert not is_chained(second, first)
    tampered = Event.model_validate(dict(second.wire(), cadre_id="C0002"))
    assert not tampered.hash_is_valid()


def test_round_trip_through_json():
    event = seal(fields(1, GENESIS_HASH, cadre_id="C0009"))
    again = Event.model_validate_json(event.model_dump_json())
    assert again == event and again.hash_is_valid()


def test_naive_time_refused():
    with pytest.raises(ValidationError, match="offset"):
        seal(fields(1, GENESIS_HASH, device_time=datetime(2026, 11, 29, 5, 20)))


def test_manual_needs_operator_and_reason():
    with pytest.raises(ValidationError, match="operator and reason"):
        seal(fields(1, GENESIS_HASH, source="manual"))
    ok = seal(fields(1, GENESIS_HASH, source="manual", operator="lead", reason="forgot badge"))
    assert ok.operator == "lead"


def test_void_names_its_target():
    with pytest.raises(ValidationError, match="names the event"):
        seal(fields(1, GENESIS_HASH, kind="void", operator="lead", reason="mistake"))


def test_unknown_field_refused():
    with pytest.raises(ValidationError):
        Event.model_validate(dict(seal(fields(1, GENESIS_HASH)).wire(), extra_field=1))


def test_a_log_line_from_before_the_badge_proof_keeps_its_hash():
    """Old logs load and verify: the hash leaves out later fields that are not set."""
    old = seal(fields(1, GENESIS_HASH)).wire()
    assert "badge_token" not in old
    line = json.dumps(old)  # as a log written before the field existed holds it
    again = Event.model_validate_json(line)
    assert again.badge_token is None and again.hash_is_valid()
    assert (
        again.hash
        == hashlib.sha256(
            canonical_bytes({k: v for k, v in old.items() if k != "hash"})
        ).hexdigest()
    )
    assert json.loads(again.wire_json()) == old


def test_the_badge_proof_is_covered_by_the_hash():
    proven = seal(fields(1, GENESIS_HASH, badge_token="CB1AAAA"))
    assert proven.wire()["badge_token"] == "CB1AAAA" and proven.hash_is_valid()
    assert json.loads(proven.wire_json()) == proven.wire()
    swapped = Event.model_validate(dict(proven.wire(), badge_token="CB1BBBB"))
    assert not swapped.hash_is_valid()
    dropped = Event.model_validate({k: v for k, v in proven.wire().items() if k != "badge_token"})
    assert not dropped.hash_is_valid()
