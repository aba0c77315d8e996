"""The local event log: durable, chained, recoverable, shared safely between threads."""

from __future__ import annotations

import errno
import itertools
import json
import random
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from kiosk.store import (
    DiskIO,
    EventLog,
    EventSummary,
    StoreConfig,
    StoreLocked,
    StoreWriteError,
    verify_log,
)
from kiosk.store.journal import iter_journal_files
from kiosk.store.segments import iter_segment_files
from sync.events import GENESIS_HASH
from tests.kiosk_core.support import BASE_TIME, FaultyDisk, event_fields

SMALL = StoreConfig(segment_events=10, checkpoint_events=4)


def fill(log: EventLog, count: int, start: int = 0, **extra) -> list:
    return [log.append(event_fields(start + i, **extra)) for i in range(count)]


def crash_copy(source: Path, target: Path) -> Path:
    """The files as a power cut would leave them: whatever is on disk right now."""
    shutil.copytree(source, target)
    return target


def test_events_chain_and_survive_reopen(tmp_path):
    with EventLog(tmp_path / "log", SMALL) as log:
        written = fill(log, 33)
    assert [e.seq for e in written] == list(range(1, 34))
    assert written[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(written))
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.recovery.clean, log.recovery.summary()
        assert list(log.iter_events()) == written
        assert log.segment_count == 4  # 10 + 10 + 10 + 3
        assert verify_log(log).ok


def test_seq_continues_after_a_crash_without_close(tmp_path):
    log = EventLog(tmp_path / "log", SMALL)
    first = fill(log, 4)  # a checkpoint (in the background)
    log.wait_idle()
    first += fill(log, 3, start=4)  # three in the journal only
    crashed = crash_copy(tmp_path / "log", tmp_path / "crashed")
    log.close()
    with EventLog(crashed, SMALL) as reopened:
        assert reopened.recovery.replayed == 3
        assert reopened.last_seq == 7
        nxt = reopened.append(event_fields(99))
        assert nxt.seq == 8 and nxt.prev_hash == first[-1].hash
        assert verify_log(reopened).ok


def test_pending_acknowledge_and_cursor_durability(tmp_path):
    with EventLog(tmp_path / "log", SMALL) as log:
        fill(log, 25)
        assert log.pending_count() == 25
        assert [e.seq for e in log.pending(5)] == [1, 2, 3, 4, 5]
        log.acknowledge(12)
        assert [e.seq for e in log.pending(100)] == list(range(13, 26))
        log.acknowledge(5)  # an old answer arriving late never moves the cursor back
        assert log.acknowledged_seq == 12
        with pytest.raises(ValueError, match="ends at 25"):
            log.acknowledge(26)
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.acknowledged_seq == 12
        assert log.pending_count() == 13
        assert log.pending(3)[0].seq == 13


def test_stale_temp_files_are_removed_at_open(tmp_path):
    folder = tmp_path / "log"
    with EventLog(folder, SMALL) as log:
        fill(log, 12)
    leftovers = [
        folder / "manifest.json.tmp",
        folder / "segments" / "seg-000000000011.json.tmp",
        folder / "cursor.json.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b'{"half a wri')
    with EventLog(folder, SMALL) as log:
        assert sorted(log.recovery.stale_temp_files) == sorted(str(p) for p in leftovers)
        assert not any(path.exists() for path in leftovers)
        assert log.last_seq == 12 and verify_log(log).ok


def test_a_second_process_cannot_open_the_same_log(tmp_path):
    with EventLog(tmp_path / "log", SMALL), pytest.raises(StoreLocked):
        EventLog(tmp_path / "log", SMALL)


def _doc_end(content: bytes, doc: dict) -> int:
    """Byte offset just after `doc`'s JSON text in a segment or journal file."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    position = content.find(text)
    if position < 0:  # journal lines are pydantic's JSON: same content, maybe other spacing
        position = content.find(f'"event_id":"{doc["event_id"]}"'.encode())
        return content.index(b"\n", position)
    return position + len(text)


def test_torn_journal_tail_is_cut_and_reported(tmp_path):
    config = StoreConfig(segment_events=100, checkpoint_events=1000)  # all in the journal
    source = tmp_path / "log"
    with EventLog(source, config) as log:
        events = fill(log, 20)
        journal = next(iter_journal_files(log.journal_dir))[2]
        crashed = crash_copy(source, tmp_path / "base")  # copied while open: no checkpoint
    content = (crashed / "journal" / journal.name).read_bytes()
    ends = {e.seq: _doc_end(content, e.wire()) for e in events}
    rng = random.Random(4)
    for trial in range(25):
        copy = crash_copy(crashed, tmp_path / f"cut{trial}")
        cut = rng.randrange(len(content))
        target = copy / "journal" / journal.name
        target.write_bytes(content[:cut])
        with EventLog(copy, config) as log:
            kept = [e.seq for e in log.iter_events()]
            expected = [seq for seq, end in ends.items() if end <= cut]
            assert kept == expected, f"cut at {cut}"
            whole = max((ends[s] + 1 for s in expected), default=0)
            assert log.recovery.torn_journal_bytes == max(0, cut - whole)
            if log.recovery.torn_journal_bytes:
                kept_bytes = [p for p in log.recovery.quarantined if p.endswith(".torn")]
                assert Path(kept_bytes[0]).read_bytes() == content[whole:cut]
            # The log goes on after the torn line without gluing onto it.
            nxt = log.append(event_fields(500))
            assert nxt.seq == len(expected) + 1
        with EventLog(copy, config) as log:
            assert verify_log(log).ok and log.last_seq == len(expected) + 1


def test_cut_files_keep_every_complete_event_and_report_the_rest(tmp_path):
    source = tmp_path / "log"
    with EventLog(source, SMALL) as log:
        events = fill(log, 37)
        log.acknowledge(20)
        by_seq = {e.seq: e for e in events}
        log.wait_idle()
        crashed = crash_copy(source, tmp_path / "base")
    files = sorted(p for p in crashed.rglob("*") if p.is_file() and p.name != "LOCK")
    rng = random.Random(11)
    segment_losses = 0
    for trial in range(60):
        victim = files[trial % len(files)]
        relative = victim.relative_to(crashed)
        content = victim.read_bytes()
        cut = rng.randrange(len(content)) if content else 0
        copy = crash_copy(crashed, tmp_path / f"t{trial}")
        (copy / relative).write_bytes(content[:cut])
        lost: set[int] = set()
        if relative.parts[0] in ("segments", "journal"):
            for seq, event in by_seq.items():
                position = content.find(f'"event_id":"{event.event_id}"'.encode())
                if position >= 0 and _doc_end(content, event.wire()) > cut:
                    lost.add(seq)
        with EventLog(copy, SMALL) as log:
            kept = {e.seq for e in log.iter_events()}
            assert kept == set(by_seq) - lost, f"{relative} cut at {cut}"
            reported = {s for a, b in log.recovery.dropped_seqs for s in range(a, b + 1)}
            if relative.parts[0] == "segments":
                assert reported == lost, f"{relative} cut at {cut}: {log.recovery.summary()}"
                assert (not lost) or relative.name in log.recovery.damaged_segments
                segment_losses += bool(lost)
            if relative.name == "manifest.json":
                assert log.recovery.manifest_rebuilt
                assert log.recent("C0001") == _recent_of(events, "C0001", SMALL)
            if relative.name == "cursor.json":
                assert log.recovery.cursor_reset and log.acknowledged_seq == 0
            elif relative.parts[0] != "journal":
                assert log.acknowledged_seq == 20
            for event in log.iter_events():
                assert event == by_seq[event.seq]
            # A journal cut at its end loses the newest events without a trace to report; seqs
            # reported lost are not used again.
            added = log.append(event_fields(900)).seq
            assert added == max(kept | reported) + 1
        with EventLog(copy, SMALL) as log:  # the repair itself was stored
            assert {e.seq for e in log.iter_events()} == (set(by_seq) - lost) | {added}
    assert segment_losses >= 5  # the trial did cut into segments, not only around them


def _recent_of(events, cadre: str, config: StoreConfig):
    rows = [EventSummary.of(e) for e in events if e.cadre_id == cadre]
    return rows[-config.recent_per_cadre :]


def test_lost_manifest_is_rebuilt_from_the_segments(tmp_path):
    with EventLog(tmp_path / "log", SMALL) as log:
        events = fill(log, 29)
        index_before = {c: log.recent(c) for c in log.cadre_ids()}
    (tmp_path / "log" / "manifest.json").unlink()
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.recovery.manifest_rebuilt
        assert list(log.iter_events()) == events
        assert {c: log.recent(c) for c in log.cadre_ids()} == index_before
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.recovery.clean


def test_lost_manifest_and_a_cut_segment_report_the_gap(tmp_path):
    with EventLog(tmp_path / "log", SMALL) as log:
        fill(log, 30)
    (tmp_path / "log" / "manifest.json").write_text('{"format": 1, "segments": []}')
    middle = tmp_path / "log" / "segments" / "seg-000000000011.json"
    content = middle.read_bytes()
    middle.write_bytes(content[: content.index(b'"15":{')])  # 11-14 whole, 15-20 cut away
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.recovery.manifest_rebuilt
        assert log.recovery.dropped_seqs == [(15, 20)]
        assert "seg-000000000011.json" in log.recovery.damaged_segments
        assert [e.seq for e in log.iter_events()] == [*range(1, 15), *range(21, 31)]
        assert log.append(event_fields(77)).seq == 31


def test_eight_threads_appending_at_once_lose_nothing(tmp_path):
    log = EventLog(tmp_path / "log", StoreConfig(segment_events=50, checkpoint_events=16))
    results: dict[int, list] = {}
    barrier = threading.Barrier(8)

    def writer(number: int) -> None:
        barrier.wait()
        results[number] = [
            log.append(event_fields(i, cadre=f"T{number}-{i % 5}")) for i in range(120)
        ]

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    confirmed = [e for events in results.values() for e in events]
    assert sorted(e.seq for e in confirmed) == list(range(1, 961))
    with EventLog(tmp_path / "log") as reopened:
        report = verify_log(reopened)
        assert report.ok and report.count == 960
        stored = {e.event_id: e for e in reopened.iter_events()}
        assert all(stored[e.event_id] == e for e in confirmed)
        # every thread's events in the order that thread made them
        for events in results.values():
            assert [e.seq for e in events] == sorted(e.seq for e in events)


def test_disk_full_mid_line_refuses_cleanly_and_recovers(tmp_path):
    disk = FaultyDisk()
    with EventLog(tmp_path / "log", SMALL, disk=disk) as log:
        before = fill(log, 6)
        disk.fill_up(partial_bytes=40)  # ENOSPC after part of the line reached the disk
        with pytest.raises(StoreWriteError, match="disk is full"):
            log.append(event_fields(50))
        assert log.last_seq == 6 and log.head_hash == before[-1].hash
        assert len(log.pending(100)) == 6
        disk.recover()
        after = log.append(event_fields(51))
        assert after.seq == 7 and after.prev_hash == before[-1].hash
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.recovery.clean, log.recovery.summary()
        assert verify_log(log).ok and log.last_seq == 7


def test_read_only_disk_refuses_even_the_repair_then_recovers(tmp_path):
    disk = FaultyDisk()
    with EventLog(tmp_path / "log", SMALL, disk=disk) as log:
        fill(log, 3)
        disk.fill_up(partial_bytes=25)
        disk.fail_on = {"write", "ftruncate"}  # the partial line cannot be cut off yet
        with pytest.raises(StoreWriteError):
            log.append(event_fields(60))
        disk.make_read_only()
        with pytest.raises(StoreWriteError, match="read-only"):
            log.append(event_fields(61))
        disk.recover()
        assert log.append(event_fields(62)).seq == 4
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.recovery.clean and verify_log(log).ok and log.last_seq == 4


def test_log_opened_on_a_full_disk_reads_and_starts_recording_when_space_returns(tmp_path):
    with EventLog(tmp_path / "log", SMALL) as log:
        events = fill(log, 6)
    disk = FaultyDisk()
    disk.fill_up()
    with EventLog(tmp_path / "log", SMALL, disk=disk) as log:
        assert list(log.iter_events()) == events
        with pytest.raises(StoreWriteError, match="disk is full"):
            log.append(event_fields(40))
        disk.recover()
        assert log.append(event_fields(41)).seq == 7
    with EventLog(tmp_path / "log", SMALL) as log:
        assert verify_log(log).ok and log.last_seq == 7


def test_checkpoints_put_off_while_the_disk_is_full_events_still_durable(tmp_path):
    disk = FaultyDisk()
    with EventLog(tmp_path / "log", SMALL, disk=disk) as log:
        fill(log, 3)
        disk.fill_up()
        disk.fail_on = {"open"}  # new files (segment temp files) fail, the journal appends work
        fill(log, 6, start=3)  # crosses a checkpoint that cannot be written
        log.wait_idle()
        assert log.segment_count == 0
        crashed = crash_copy(tmp_path / "log", tmp_path / "crashed")
        disk.recover()
        fill(log, 4, start=9)  # the next due checkpoint works
        log.wait_idle()
        assert log.segment_count >= 1
    with EventLog(crashed, SMALL) as log:
        assert log.last_seq == 9 and verify_log(log).ok
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.last_seq == 13 and verify_log(log).ok


def test_cursor_write_refused_keeps_the_old_cursor(tmp_path):
    disk = FaultyDisk()
    with EventLog(tmp_path / "log", SMALL, disk=disk) as log:
        fill(log, 5)
        log.acknowledge(2)
        disk.make_read_only()
        with pytest.raises(StoreWriteError):
            log.acknowledge(4)
        assert log.acknowledged_seq == 2
        disk.recover()
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.acknowledged_seq == 2


def test_retention_archives_only_acknowledged_old_segments(tmp_path):
    with EventLog(tmp_path / "log", SMALL) as log:
        old = [
            log.append(event_fields(i, device_time=BASE_TIME - timedelta(days=200)))
            for i in range(25)
        ]
        fill(log, 10, start=100)
        log.acknowledge(15)
        moved = log.archive_old(BASE_TIME - timedelta(days=90))
        assert moved == 1  # seg 1-10 only: 11-20 holds unacknowledged events
        assert [p.name for p in (tmp_path / "log" / "archive").iterdir()] == [
            "seg-000000000001.json"
        ]
        log.acknowledge(35)
        assert log.archive_old(BASE_TIME - timedelta(days=90)) == 1  # 11-20; 21-30 has new ones
        assert log.pending_count() == 0
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.archived_count == 20
        assert [e for e in log.iter_events() if e.seq <= 25] == old
        assert log.event(3) == old[2]
        assert verify_log(log).ok


def test_retention_setting_archives_at_checkpoints(tmp_path):
    config = StoreConfig(segment_events=10, checkpoint_events=4, retention_days=30)
    with EventLog(tmp_path / "log", config) as log:
        old = BASE_TIME - timedelta(days=40)
        fill(log, 20, device_time=old)
        log.wait_idle()
        # The background fold takes whatever the journal holds when it runs, so under load the
        # batches need not end at multiples of 4: fold the rest now for a known starting point.
        log.checkpoint()
        log.acknowledge(20)
        fill(log, 3, start=20)  # recent, not yet at a checkpoint: nothing moves
        log.wait_idle()
        assert log.archived_count == 0
        fill(log, 1, start=23)  # checkpoint: both sealed old segments are acknowledged
        log.wait_idle()
        assert log.archived_count == 20 and log.segment_count == 1
        assert log.pending_count() == 4


def test_index_follows_voids_and_corrections_across_reopen(tmp_path):
    with EventLog(tmp_path / "log", SMALL) as log:
        arrival = log.append(event_fields(0, cadre="C9"))
        departure = log.append(event_fields(1, cadre="C9", kind="departure"))
        manual = {"source": "manual", "operator": "lead", "reason": "mistake"}
        log.append(event_fields(2, cadre="C9", kind="void", corrects=departure.event_id, **manual))
        assert [r.event_id for r in log.recent("C9")] == [str(arrival.event_id)]
        fixed = log.append(event_fields(3, cadre="C9", corrects=arrival.event_id, **manual))
        assert [r.seq for r in log.recent("C9")] == [fixed.seq]
        assert log.last_event("C9") == fixed
        assert log.find(departure.event_id) == departure
    with EventLog(tmp_path / "log", SMALL) as log:
        assert [r.seq for r in log.recent("C9")] == [fixed.seq]


def test_events_between_uses_segments_and_journal(tmp_path):
    with EventLog(tmp_path / "log", SMALL) as log:
        events = fill(log, 30)  # one minute apart
        window = log.events_between(
            BASE_TIME + timedelta(minutes=5), BASE_TIME + timedelta(minutes=27)
        )
        assert window == events[5:27]


def test_bad_fields_are_refused_before_anything_is_written(tmp_path):
    with EventLog(tmp_path / "log", SMALL) as log:
        fill(log, 2)
        with pytest.raises(ValueError):
            log.append(event_fields(5, cadre="bad id with spaces"))
        assert log.last_seq == 2
        assert log.append(event_fields(6)).seq == 3
    with EventLog(tmp_path / "log", SMALL) as log:
        assert verify_log(log).ok


def test_segment_files_are_tinydb_files(tmp_path):
    from tinydb import TinyDB

    with EventLog(tmp_path / "log", SMALL) as log:
        events = fill(log, 12)
    _first, path = next(iter_segment_files(tmp_path / "log" / "segments"))
    db = TinyDB(path, access_mode="r")
    assert [d["seq"] for d in db.table("events").all()] == list(range(1, 11))
    assert db.table("events").get(doc_id=4)["event_id"] == str(events[3].event_id)
    db.close()


# ---------------------------------------------------------------- what power cuts showed


class DiesAtManifest(DiskIO):
    """The process dies (here: raises) when the n-th fold replaces the manifest, after the
    fold's segment file is already in place."""

    def __init__(self, at_fold: int) -> None:
        self.at_fold = at_fold
        self.manifests = 0

    def replace(self, source: Path, target: Path) -> None:
        if target.name == "manifest.json":
            self.manifests += 1
            if self.manifests == self.at_fold:
                raise OSError(errno.EIO, "power cut")
        super().replace(source, target)


def test_a_crash_between_the_segment_and_the_manifest_shows_each_event_once(tmp_path):
    disk = DiesAtManifest(at_fold=2)
    log = EventLog(tmp_path / "log", SMALL, disk=disk)
    events = fill(log, 4)  # a fold, whole
    log.wait_idle()
    events += fill(log, 4, start=4)  # a fold: its segment written, its manifest not
    log.wait_idle()
    assert disk.manifests == 2
    crashed = crash_copy(tmp_path / "log", tmp_path / "crashed")
    log.close()
    with EventLog(crashed, SMALL) as reopened:
        assert [e.seq for e in reopened.iter_events()] == list(range(1, 9))
        everything = reopened.events_between(
            BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=1)
        )
        assert everything == events
        assert verify_log(reopened).ok
        assert reopened.recovery.fold_finished >= 1  # the segment past the manifest was taken in
        assert not reopened.recovery.lost_anything
        assert reopened.append(event_fields(50)).seq == 9
    with EventLog(crashed, SMALL) as again:
        assert again.recovery.clean and [e.seq for e in again.iter_events()] == list(range(1, 10))


def _journal_of(folder: Path) -> Path:
    return next(iter_journal_files(folder / "journal"))[2]


def test_an_unreadable_last_journal_line_is_cut_kept_and_reported_once(tmp_path):
    """A power cut caught the last line in flight: its newline reached the disk, the sector
    before it did not. That append never returned, so nothing is lost; it is cut once."""
    config = StoreConfig(segment_events=100, checkpoint_events=1000)  # all in the journal
    with EventLog(tmp_path / "log", config) as log:
        fill(log, 5)
        crashed = crash_copy(tmp_path / "log", tmp_path / "crashed")
    journal = _journal_of(crashed)
    content = journal.read_bytes()
    last = content.rindex(b"\n", 0, len(content) - 1) + 1
    holed = content[:last] + bytes(40) + content[last + 40 :]
    journal.write_bytes(holed)
    with EventLog(crashed, config) as log:
        assert [e.seq for e in log.iter_events()] == [1, 2, 3, 4]
        assert not log.recovery.lost_anything, log.recovery.summary()
        assert log.recovery.torn_journal_bytes == len(content) - last
        kept = [p for p in log.recovery.quarantined if p.endswith(".torn")]
        assert Path(kept[0]).read_bytes() == holed[last:]
        again = crash_copy(crashed, tmp_path / "again")  # a second power cut, before any fold
        assert log.append(event_fields(9)).seq == 5
    with EventLog(again, config) as log:
        assert log.recovery.clean, log.recovery.summary()
        assert log.last_seq == 4


def test_an_unreadable_line_before_readable_ones_is_a_loss_reported_once(tmp_path):
    """A line followed by others was confirmed: damaged later, it is lost and said so, once."""
    config = StoreConfig(segment_events=100, checkpoint_events=1000)
    with EventLog(tmp_path / "log", config) as log:
        fill(log, 5)
        crashed = crash_copy(tmp_path / "log", tmp_path / "crashed")
    journal = _journal_of(crashed)
    lines = journal.read_bytes().split(b"\n")
    lines[1] = b"\0" * len(lines[1])
    journal.write_bytes(b"\n".join(lines))
    with EventLog(crashed, config) as log:
        assert log.recovery.dropped_seqs == [(2, 2)] and log.recovery.unreadable_journal_lines == 1
        assert [e.seq for e in log.iter_events()] == [1, 3, 4, 5]
        again = crash_copy(crashed, tmp_path / "again")
    with EventLog(again, config) as log:
        assert log.recovery.clean, log.recovery.summary()


# ---------------------------------------------------------------- the fold in the background


class CountingDisk(DiskIO):
    """Counts fsyncs by thread, and can hold the fold at its first segment fsync."""

    def __init__(self) -> None:
        self.fsyncs: dict[str, int] = {}
        self.hold = threading.Event()
        self.held = threading.Event()
        self.hold.set()

    def _count(self) -> None:
        name = threading.current_thread().name
        self.fsyncs[name] = self.fsyncs.get(name, 0) + 1

    def fsync(self, fd: int) -> None:
        self._count()
        if threading.current_thread() is not threading.main_thread():
            self.held.set()
            self.hold.wait()
        super().fsync(fd)

    def fsync_dir(self, path: Path) -> None:
        self._count()
        super().fsync_dir(path)


def test_an_append_pays_one_fsync_whatever_the_fold_does(tmp_path):
    disk = CountingDisk()
    with EventLog(
        tmp_path / "log", StoreConfig(segment_events=50, checkpoint_events=10), disk=disk
    ):
        pass
    log = EventLog(
        tmp_path / "log", StoreConfig(segment_events=50, checkpoint_events=10), disk=disk
    )
    main = threading.current_thread().name
    extra = []
    for n in range(120):  # twelve folds, two sealed segments
        before = disk.fsyncs.get(main, 0)
        log.append(event_fields(n))
        extra.append(disk.fsyncs.get(main, 0) - before - 1)
        log.wait_idle()
    assert extra == [0] * 120
    assert log.segment_count == 3
    assert sum(n for name, n in disk.fsyncs.items() if name != main) > 12 * 3
    log.close()


def test_reads_see_every_event_once_while_a_fold_is_held_and_close_waits_for_it(tmp_path):
    disk = CountingDisk()
    log = EventLog(tmp_path / "log", SMALL, disk=disk)
    disk.hold.clear()
    first = fill(log, 4)  # a fold is asked for, and held at its segment's fsync
    assert disk.held.wait(10)
    more = fill(log, 7, start=4)  # the scan goes on while the fold is held
    expected = first + more
    assert list(log.iter_events()) == expected
    assert log.events_between(BASE_TIME, BASE_TIME + timedelta(days=1)) == expected
    assert [log.event(e.seq) for e in expected] == expected
    assert log.last_event(expected[-1].cadre_id) == expected[-1]
    assert [e.seq for e in log.pending(100)] == list(range(1, 12))
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (log.close(), closed.set()))
    closer.start()
    assert not closed.wait(0.3)  # close() waits for the fold under way
    disk.hold.set()
    closer.join(10)
    assert closed.is_set()
    with EventLog(tmp_path / "log", SMALL) as reopened:
        assert reopened.recovery.clean and reopened.recovery.replayed == 0
        assert list(reopened.iter_events()) == expected
        assert verify_log(reopened).ok


def test_a_log_begun_after_a_wipe_continues_the_kiosks_chain(tmp_path):
    """Re-enrolment of a wiped kiosk: the centre had its chain up to seq 40; the empty log goes
    on from there, across a crash before its first fold, a clean reopen and a lost manifest."""
    head = "ab" * 32
    log = EventLog(tmp_path / "log", SMALL)
    assert not log.continue_chain(0, head)
    assert log.continue_chain(40, head)
    assert (log.last_seq, log.head_hash, log.pending_count()) == (40, head, 0)
    written = fill(log, 3)  # in the journal only
    assert [e.seq for e in written] == [41, 42, 43] and written[0].prev_hash == head
    assert not log.continue_chain(50, head)  # it holds events now
    crashed = crash_copy(tmp_path / "log", tmp_path / "crashed")
    log.close()
    with EventLog(crashed, SMALL) as reopened:
        assert reopened.recovery.clean, reopened.recovery.summary()
        assert reopened.last_seq == 43 and reopened.pending_count() == 3
        assert [e.seq for e in reopened.pending(10)] == [41, 42, 43]
        written += fill(reopened, 12, start=3)  # folded into segments from 41 on
        reopened.checkpoint()
        reopened.acknowledge(45)
    with EventLog(crashed, SMALL) as reopened:
        assert reopened.recovery.clean, reopened.recovery.summary()
        assert list(reopened.iter_events()) == written
        assert reopened.event(40) is None and reopened.event(41) == written[0]
        assert reopened.pending_count() == 10
    (crashed / "manifest.json").unlink()
    with EventLog(crashed, SMALL) as reopened:
        assert not reopened.recovery.dropped_seqs  # 1..40 were never this log's to lose
        assert list(reopened.iter_events()) == written


def test_rewinding_the_cursor_sends_archived_events_again(tmp_path):
    """A centre restored from an older backup asks for records the kiosk archived long ago:
    the cursor moves back, durably, and pending() reads them from archive/."""
    with EventLog(tmp_path / "log", SMALL) as log:
        old = [
            log.append(event_fields(i, device_time=BASE_TIME - timedelta(days=200)))
            for i in range(25)
        ]
        log.acknowledge(25)
        assert log.archive_old(BASE_TIME - timedelta(days=90)) == 2  # 1-10 and 11-20
        assert log.pending(100) == []
        log.rewind(5)
        log.rewind(20)  # never forward: that is acknowledge's job
        assert log.acknowledged_seq == 5
        again = log.pending(100)
        assert [e.seq for e in again] == list(range(6, 26))
        assert [e.event_id for e in again] == [e.event_id for e in old[5:]]
    with EventLog(tmp_path / "log", SMALL) as log:
        assert log.acknowledged_seq == 5 and log.pending_count() == 20
