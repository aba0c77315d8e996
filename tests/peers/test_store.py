"""The peers' store: bounded to its window, its chain going on after pruning and a restart, a
torn line dropped, conflicts flagged once."""

from __future__ import annotations

from datetime import timedelta

from kiosk.peers.check import check_records
from kiosk.peers.store import PeerRow, PeerStore
from kiosk.store import EventSummary
from tests.sync.helpers import T0, MemoryLog


def open_store(folder, window: list, own: dict | None = None) -> PeerStore:
    def own_rows(cadre_id: str) -> list[PeerRow]:
        return [
            PeerRow("me", EventSummary.of(e), e.device_time) for e in (own or {}).get(cadre_id, [])
        ]

    return PeerStore(
        folder,
        when=lambda e: e.device_time,
        window_start=lambda: window[0],
        own_rows=own_rows,
        conflict_window=timedelta(hours=16),
    )


def test_the_store_keeps_its_window_and_its_chain_across_pruning_and_restarts(tmp_path):
    origin = MemoryLog("a", "S01")
    old = [origin.record(f"C{i}", "arrival", T0 - timedelta(days=3)) for i in range(3)]
    new = [origin.record(f"C{i}", "arrival", T0) for i in range(3)]
    window = [T0 - timedelta(days=1)]
    store = open_store(tmp_path, window)
    store.add("a", old + new)
    assert store.prune() == 3
    assert [e.seq for e in store.events("a")] == [4, 5, 6]
    assert store.cadre_ids() and store.latest("C0").summary.seq == 4

    # A power cut tore the last line: it and nothing else is dropped, and fetched again.
    path = tmp_path / "a.jsonl"
    path.write_bytes(path.read_bytes()[:-20])
    reopened = open_store(tmp_path, window)
    assert [e.seq for e in reopened.events("a")] == [4, 5]
    assert reopened.head("a") == (5, new[1].hash)
    more = origin.record("C9", "departure", T0 + timedelta(hours=1))
    again = check_records([e.wire() for e in [new[2], more]], "a", "S01", reopened.head("a"), {})
    # No keyring: the proofs do not verify, so nothing past the chain's head is taken.
    assert again.problem == "bad_proof" and again.events == []


def test_a_late_record_flags_a_conflict_once_and_rewrites_nothing(tmp_path):
    me = MemoryLog("me", "S01")
    mine = me.record("C1", "arrival", T0 + timedelta(minutes=40))
    peer = MemoryLog("a", "S01")
    theirs = peer.record("C1", "arrival", T0)
    store = open_store(tmp_path, [T0 - timedelta(days=1)], {"C1": [mine]})
    found = store.add("a", [theirs])
    assert [(c.first_kiosk, c.second_kiosk, c.kind) for c in found] == [("a", "me", "arrival")]
    assert store.add("a", [theirs]) == []  # the same record again is no news
    assert len(open_store(tmp_path, [T0 - timedelta(days=1)], {"C1": [mine]}).conflicts()) == 1
    # A departure between them is no conflict.
    other = MemoryLog("b", "S01")
    store_b = open_store(
        tmp_path / "b",
        [T0 - timedelta(days=1)],
        {"C2": [me.record("C2", "departure", T0 + timedelta(hours=2))]},
    )
    assert store_b.add("b", [other.record("C2", "arrival", T0)]) == []
