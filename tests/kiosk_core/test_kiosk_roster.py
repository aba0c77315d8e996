"""The kiosk's copy of the roster: validated, saved atomically, the previous one kept."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.roster import CadreEntry, RosterError, RosterSnapshot, RosterStore
from sync.badge_token import key_id_of, public_key_to_text


def snapshot(keyring, version: int = 1, **extra) -> RosterSnapshot:
    return RosterSnapshot(
        version=version,
        site_id="S01",
        cadres={"C0001": CadreEntry(name="宋昕", unit="一组", site_id="S01")},
        public_keys={kid: public_key_to_text(k) for kid, k in keyring.items()},
        revoked_through={"C0009": 2},
        **extra,
    )


def test_save_and_load_round_trip(tmp_path, keyring):
    store = RosterStore(tmp_path)
    assert store.current == RosterSnapshot() and store.problem is None
    store.save(snapshot(keyring))
    again = RosterStore(tmp_path)
    assert again.current == snapshot(keyring)
    assert set(again.current.keyring) == set(keyring)
    assert again.current.entry("C0001").name == "宋昕"
    assert again.current.on_site("C0001") and not again.current.on_site("C0404")
    assert "宋昕" in (tmp_path / "roster.json").read_text(encoding="utf-8")


def test_key_listed_under_the_wrong_id_is_refused(keyring):
    key_id, key = next(iter(keyring.items()))
    with pytest.raises(ValueError, match="has id"):
        RosterSnapshot(public_keys={key_id ^ 1: public_key_to_text(key)})
    with pytest.raises(ValueError, match="not a base64"):
        RosterSnapshot(public_keys={1: "not a key"})


def test_bad_roster_from_the_centre_leaves_the_current_one(tmp_path, keyring):
    store = RosterStore(tmp_path)
    store.save(snapshot(keyring))
    with pytest.raises(RosterError, match="refused"):
        store.replace_from_json(json.dumps({"version": 2, "cadres": {"C1": {"nom": "x"}}}))
    assert store.current.version == 1
    assert RosterStore(tmp_path).current.version == 1


def test_unreadable_newest_falls_back_to_the_previous(tmp_path, keyring):
    store = RosterStore(tmp_path)
    store.save(snapshot(keyring, version=1))
    store.save(snapshot(keyring, version=2))
    (tmp_path / "roster.json").write_text('{"version": 3, "cad')  # a damaged card
    again = RosterStore(tmp_path)
    assert again.current.version == 1
    assert "roster.json" in again.problem and "roster.prev.json" in again.problem


def test_nothing_readable_means_an_empty_roster_and_a_problem(tmp_path):
    (tmp_path / "roster.json").write_text("garbage")
    store = RosterStore(tmp_path)
    assert store.current.keyring == {}
    assert "every badge is refused" in store.problem


def test_a_cadre_of_another_site_is_known_but_not_on_site(keyring):
    roster = snapshot(keyring).model_copy(
        update={"cadres": {"C0002": CadreEntry(name="李娜", site_id="S02")}}
    )
    assert roster.entry("C0002").name == "李娜"
    assert not roster.on_site("C0002")


def test_new_key_added_by_rotation_is_usable(tmp_path, keyring):
    rotated = Ed25519PrivateKey.generate().public_key()
    ring = keyring | {key_id_of(rotated): rotated}
    store = RosterStore(tmp_path)
    store.save(snapshot(ring, version=5))
    assert set(RosterStore(tmp_path).current.keyring) == set(ring)
