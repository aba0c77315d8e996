"""Power cuts modelled at the store's disk seam: the models themselves, and that the check finds a
store that skips its journal fsync. bench/powercut.py runs every crash point."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kiosk.store import DiskIO, EventLog, StoreConfig, StoreWriteError
from kiosk.store.diskio import atomic_write_bytes
from kiosk.store.journal import Journal
from tests.kiosk_core.crashstates import (
    WORKLOADS,
    Ext4Model,
    PosixModel,
    RecordingDisk,
    Trace,
    Tree,
    describe_failure,
    explore,
    first_start,
    record,
)


def _trace(disk: RecordingDisk) -> Trace:
    return Trace("unit", disk.initial, disk.ops, {}, ("log",), StoreConfig())


def _contents(disk: RecordingDisk, model_cls, k: int) -> set[bytes | None]:
    """What a.txt may hold after a power cut at crash point k (None: not there)."""
    model = model_cls(_trace(disk))
    found: set[bytes | None] = set()
    for state in model.states(k, random.Random(1)):
        ino = state.tree.lookup(("a.txt",))
        found.add(None if ino is None else bytes(state.tree.files[ino]))
    return found


def test_posix_keeps_only_what_was_synced(tmp_path):
    disk = RecordingDisk(tmp_path)
    fd = disk.open_append(tmp_path / "a.txt")
    disk.write_all(fd, b"x" * 600)
    after_write = len(disk.ops)
    disk.fsync(fd)
    after_file_sync = len(disk.ops)
    disk.close(fd)
    disk.fsync_dir(tmp_path)
    synced = len(disk.ops)
    # Nothing synced: not there, empty, torn at the 512-byte boundary, zero-filled, or whole.
    before = _contents(disk, PosixModel, after_write)
    assert {None, b"", b"x" * 512, bytes(600), b"x" * 600} <= before
    # The data is synced but not the folder: the name itself may be gone.
    assert _contents(disk, PosixModel, after_file_sync) == {None, b"x" * 600}
    assert _contents(disk, PosixModel, synced) == {b"x" * 600}


def test_ext4_keeps_folder_operations_in_order_and_tears_but_never_zero_fills(tmp_path):
    disk = RecordingDisk(tmp_path)
    atomic_write_bytes(disk, tmp_path / "a.txt", b"old")
    fd = disk.open_append(tmp_path / "a.txt")
    disk.write_all(fd, b"y" * 5000)
    end = len(disk.ops)
    found = _contents(disk, Ext4Model, end)
    assert b"old" in found and b"old" + b"y" * 5000 in found
    assert b"old" + b"y" * 4093 in found  # torn at the file's 4096-byte boundary
    assert None not in found  # the rename was committed by the fsync of the folder
    assert not any(content and b"\0" in content for content in found)
    # A rename no fsync followed yet may be lost; the one after it commits it.
    rename = next(i for i, op in enumerate(disk.ops) if op.kind == "rename")
    assert _contents(disk, Ext4Model, rename + 1) == {None, b"old"}
    assert _contents(disk, Ext4Model, rename + 2) == {b"old"}


def test_recorded_operations_replay_to_what_is_on_disk(tmp_path):
    trace = record("first-start", tmp_path / "root", first_start)
    replayed = trace.initial.copy()
    for op in trace.ops:
        replayed.apply(op)
    on_disk = Tree.scan(tmp_path / "root", iter(range(10_000, 20_000)).__next__)
    kept = {p: bytes(replayed.files[i]) for p, i, d in replayed.reachable() if not d}
    actual = {p: bytes(on_disk.files[i]) for p, i, d in on_disk.reachable() if not d}
    actual.pop(("instance", "log", "LOCK"))  # flock'd, never part of the log's content
    assert kept == actual
    kinds = {op.kind for op in trace.ops}
    assert {"mkdir", "creat", "write", "fsync", "rename", "fsyncdir", "unlink"} <= kinds


def test_the_check_finds_a_store_that_skips_its_journal_fsync(tmp_path, monkeypatch):
    def append_without_fsync(self: Journal, line: bytes) -> None:
        try:
            self._disk.write_all(self._fd, line)
        except OSError as exc:
            raise StoreWriteError("could not store the event", exc) from exc
        self._length += len(line)

    monkeypatch.setattr(Journal, "append", append_without_fsync)
    trace = record("no-fsync", tmp_path / "root", first_start)
    # Just after an append returned: its event is in the journal only, not yet in a segment.
    confirmed = [i + 1 for i, op in enumerate(trace.ops) if op.label == "confirmed"]
    tally = explore(trace, points=confirmed[::4], workdir=tmp_path)
    assert tally.failures("ext4", "lost-confirmed") > 0
    assert tally.failures("posix", "lost-confirmed") > 0


@pytest.mark.parametrize("kind", ["write", "fsync"])
def test_a_recording_disk_that_fails_records_nothing(tmp_path, kind):
    class Failing(RecordingDisk):
        def write(self, fd: int, data: bytes) -> int:
            if kind == "write":
                raise OSError(28, "full")
            return super().write(fd, data)

        def fsync(self, fd: int) -> None:
            if kind == "fsync":
                raise OSError(5, "EIO")
            super().fsync(fd)

    disk = Failing(tmp_path)
    fd = disk.open_append(tmp_path / "a.txt")
    with pytest.raises(OSError):
        disk.write_all(fd, b"abc")
        disk.fsync(fd)
    assert [op.kind for op in disk.ops] == ["creat"] + (["write"] if kind == "fsync" else [])
    assert isinstance(disk, DiskIO)
    assert Path(tmp_path / "a.txt").exists()


def _state_after(trace: Trace, label: str, model_cls=PosixModel, kind: str = "minimal"):
    """The state a power cut leaves just after the last mark `label`."""
    k = max(i for i, op in enumerate(trace.ops) if op.kind == "mark" and op.label == label) + 1
    states = {s.kind: s for s in model_cls(trace).states(k, random.Random(1))}
    return states.get(kind, states["all"])  # nothing loose: every state is the whole one


def test_folders_made_at_first_start_survive_a_power_cut(tmp_path):
    """POSIX promises a folder's name only once its parent is synced: the instance folder, log/
    and journal/ made at first start must be, before the first event is confirmed."""

    def run(w):
        w.open()
        w.append(3)
        w.acknowledge(2)

    trace = record("first", tmp_path / "root", run, config=StoreConfig())
    state = _state_after(trace, "cursor")
    state.tree.materialize(tmp_path / "state")
    with EventLog(tmp_path / "state" / "instance" / "log") as log:
        assert [e.seq for e in log.iter_events()] == [1, 2, 3]
        assert log.acknowledged_seq == 2
        assert log.recovery.clean, log.recovery.summary()


@pytest.mark.parametrize(
    ("workload", "every"), [("first-start", 7), ("burst", 9), ("restart-after-crash", 11)]
)
def test_power_cuts_lose_nothing_confirmed_and_recovery_holds(tmp_path, workload, every):
    """A sample of bench/powercut.py: every `every`-th crash point, both disk models, every
    check. The bench runs them all."""
    run, prepare = WORKLOADS[workload]
    trace = record(workload, tmp_path / "root", run, prepare=prepare)
    tally = explore(trace, every=every, seed=every)
    assert tally.tried["ext4"] > 10 and tally.tried["posix"] > 10
    problems = [describe_failure(t, f) for t, f in tally.examples]
    assert sum(tally.failed.values()) == 0, "\n".join(problems)
