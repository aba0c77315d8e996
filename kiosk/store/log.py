"""The kiosk's local event log: TinyDB segments behind a fsync'd journal.

`EventLog` is the one object the kiosk uses; the work is done by the modules beside it:

    folder.py     the folder's layout and the lock that keeps a second process out
    recovery.py   opening: stale temp files, manifest or rebuild, salvage, journal replay
    journal.py    the append-only journal, the durability point
    fold.py       the journal's events into segments, the manifest, a fresh journal
    retention.py  old acknowledged segments moved to archive/
    index.py      each cadre's latest events, in memory and in the manifest
    catalog.py    which segment holds which seqs, a few kept parsed for reads
    manifest.py   manifest.json read and written
    damage.py     unreadable bytes kept aside, damaged segments salvaged, the RecoveryReport

An append: seal the event (seq, previous hash), write one journal line, fsync, return: one fsync
on the scan's path. Every `checkpoint_events` appends a background thread folds the journal's
events into the open segment in one atomic write, replaces the manifest, and moves appends to a
fresh journal (fold.py). At open, recovery repairs what a crash left; `recovery` says what was
found.

One lock (the log's) serialises every call, so the log can be shared by the scan path, the pages
and the sync agent's thread; the fold and the cursor write do their disk work outside it, taking
it only for moments, so a scan never waits for their fsyncs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk.store.catalog import SegmentCatalog
from kiosk.store.config import StoreConfig
from kiosk.store.damage import Quarantine, RecoveryReport
from kiosk.store.diskio import TEMP_SUFFIX, DiskIO, StoreWriteError, atomic_write_json
from kiosk.store.fold import Fold, FoldWriter
from kiosk.store.folder import LogFolder, StoreError
from kiosk.store.index import CadreIndex, EventSummary
from kiosk.store.journal import JournalWriter
from kiosk.store.recovery import Recovery
from kiosk.store.retention import Retention
from kiosk.store.segments import SegmentMeta
from kiosk.store.state import LogState
from sync.events import Event, seal

log = logging.getLogger(__name__)

# can_write() writes this much: about the size of a few journal lines.
PROBE_BYTES = 4096


def _seqs_of(docs: Mapping[str, Any], meta: SegmentMeta) -> list[str]:
    """The keys of a segment's documents that the catalogue says it holds, in seq order. A
    segment file can hold more (a fold a crash interrupted, not yet taken in): those events are
    read from the journal's copy, never twice."""
    return sorted((key for key in docs if meta.first <= int(key) <= meta.last), key=int)


class EventLog:
    """The append-only log of one kiosk. Open it once per process; share the object."""

    def __init__(
        self,
        directory: Path,
        config: StoreConfig | None = None,
        *,
        disk: DiskIO | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.config = config or StoreConfig()
        self._disk = disk or DiskIO()
        self._folder = LogFolder(self.directory)
        self._lock = threading.RLock()
        self._fold_lock = threading.Lock()  # one fold at a time; taken before the log's lock
        self._cursor_lock = threading.Lock()  # one cursor write at a time, outside the log's lock
        self._closed = False
        self.recovery = RecoveryReport()
        self._state = LogState()
        self._quarantine = Quarantine(self._folder, self._disk, self.recovery)
        self._index = CadreIndex(self.config.recent_per_cadre)
        self._catalog = SegmentCatalog(self._folder, self._disk, self.config, self._quarantine)
        self._journal = JournalWriter(self._folder.journal_dir, self._disk)
        self._retention = Retention(
            self._folder, self._disk, self._lock, self._state, self._catalog
        )
        self._fold = Fold(
            self.config,
            self._folder,
            self._disk,
            self._lock,
            self._state,
            self._catalog,
            self._index,
            self._journal,
            self._retention,
        )
        self._lock_fd = self._folder.take_lock(self._disk)
        try:
            self._open()
        except BaseException:
            self._folder.release_lock(self._lock_fd)
            raise
        self._writer = FoldWriter(self._fold, self._fold_lock, f"fold {self.directory.name}")

    def _open(self) -> None:
        recovery = Recovery(
            self._folder,
            self._disk,
            self.config.segment_events,
            self._state,
            self._catalog,
            self._index,
            self._quarantine,
        )
        recovery.run()
        self._journal.start(self._state.last_seq + 1)
        if recovery.needs_recording:
            # Record the repair now, so the next open does not have to do it again.
            with contextlib.suppress(OSError), self._fold_lock:
                self._fold.run(force_manifest=True)
        if not self.recovery.clean:
            log.warning("event log %s opened: %s", self.directory, self.recovery.summary())

    # ---------------------------------------------------------------- paths

    @property
    def journal_dir(self) -> Path:
        return self._folder.journal_dir

    @property
    def segment_dir(self) -> Path:
        return self._folder.segment_dir

    @property
    def archive_dir(self) -> Path:
        return self._folder.archive_dir

    @property
    def damaged_dir(self) -> Path:
        return self._folder.damaged_dir

    @property
    def manifest_path(self) -> Path:
        return self._folder.manifest_path

    @property
    def cursor_path(self) -> Path:
        return self._folder.cursor_path

    # ---------------------------------------------------------------- writing

    def append(self, fields: Mapping[str, Any]) -> Event:
        """Seal `fields` as the next event, make it durable, and return it.

        `fields` are every Event field except seq, prev_hash and hash (event_id is made when
        absent). Raises pydantic's ValidationError for bad fields (nothing written) and
        StoreWriteError when the disk refuses (nothing confirmed, nothing damaged).
        """
        with self._lock:
            self._check_open()
            state = self._state
            draft = dict(fields)
            draft.setdefault("event_id", uuid.uuid4())
            draft["seq"] = state.last_seq + 1
            draft["prev_hash"] = state.head_hash
            event = seal(draft)
            text = event.wire_json()
            self._journal.append(event.seq, text + b"\n")
            # Durable from here on: only memory changes below, and the fold, which cannot undo it.
            state.buffer.append(event)
            state.lines.append(text)
            state.last_seq = event.seq
            state.head_hash = event.hash
            self._index.add(event)
            if self._fold.due():
                self._writer.request()
            return event

    def can_write(self) -> bool:
        """Whether a write reaches the disk now: after appends failed (a full disk), tells the
        kiosk that space came back before anyone scans again. Writes, syncs and removes a temp
        file of a few KB beside the log; a crash leaves it to the next open's clean-up."""
        probe = self.directory / ("write-probe" + TEMP_SUFFIX)
        with self._lock:
            self._check_open()
            try:
                fd = self._disk.open_new(probe)
                try:
                    self._disk.write_all(fd, b"\0" * PROBE_BYTES)
                    self._disk.fsync(fd)
                finally:
                    self._disk.close(fd)
            except OSError:
                return False
            finally:
                with contextlib.suppress(OSError):
                    self._disk.unlink(probe)
            return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no background fold is asked for or under way; False on timeout."""
        return self._writer.wait_idle(timeout)

    def checkpoint(self) -> None:
        """Move the journal's events into segments now, in this thread; raises when a write
        fails (nothing confirmed is lost)."""
        self._check_open()
        with self._fold_lock:
            self._fold.run()

    # ---------------------------------------------------------------- the sync cursor

    def pending(self, limit: int) -> list[Event]:
        """Events not yet acknowledged by the centre, oldest first, at most `limit`."""
        with self._lock:
            return self.events_after(self._state.acked, limit)

    def pending_count(self) -> int:
        with self._lock:
            return max(0, self._state.last_seq - self._state.acked)

    def acknowledge(self, through_seq: int) -> None:
        """The centre stored every event up to `through_seq`: remember it durably."""
        with self._lock:
            self._check_open()
            if through_seq > self._state.last_seq:
                raise ValueError(
                    f"cannot acknowledge seq {through_seq}: the log ends at {self._state.last_seq}"
                )
        # The write (three fsyncs) happens outside the log's lock: a scan never waits for it.
        with self._cursor_lock:
            if through_seq <= self._state.acked:
                return
            try:
                atomic_write_json(self._disk, self.cursor_path, {"acknowledged_seq": through_seq})
            except OSError as exc:
                raise StoreWriteError("could not save the sync cursor", exc) from exc
            with self._lock:
                self._state.acked = through_seq

    def continue_chain(self, seq: int, head_hash: str) -> bool:
        """Begin this empty log after event `seq` (hash `head_hash`) of its kiosk's chain, as the
        centre has it: a kiosk whose log was wiped and that enrols again goes on with its chain
        instead of starting a second one from 1. False (and nothing done) when the log already
        holds events or `seq` is 0. Durable before it returns."""
        if seq <= 0:
            return False
        with self._cursor_lock, self._lock:
            self._check_open()
            if self._state.last_seq != 0:
                return False
            try:
                atomic_write_json(
                    self._disk, self._folder.base_path, {"seq": seq, "hash": head_hash}
                )
            except OSError as exc:
                raise StoreWriteError("could not save where the log begins", exc) from exc
            state = self._state
            state.through = state.last_seq = state.acked = seq
            state.head_hash = head_hash
        log.info("event log %s continues its kiosk's chain after seq %d", self.directory, seq)
        return True

    def rewind(self, to_seq: int) -> None:
        """The centre lost events it had acknowledged (it was restored from an older backup):
        move the cursor back to `to_seq`, durably, so they are sent again. Nothing was deleted
        to lose: archived segments are read by `pending` like live ones."""
        with self._cursor_lock:
            if to_seq >= self._state.acked:
                return
            try:
                atomic_write_json(
                    self._disk, self.cursor_path, {"acknowledged_seq": max(to_seq, 0)}
                )
            except OSError as exc:
                raise StoreWriteError("could not save the sync cursor", exc) from exc
            with self._lock:
                self._state.acked = max(to_seq, 0)

    @property
    def acknowledged_seq(self) -> int:
        return self._state.acked

    @property
    def last_seq(self) -> int:
        return self._state.last_seq

    @property
    def head_hash(self) -> str:
        return self._state.head_hash

    # ---------------------------------------------------------------- reading

    def events_after(self, seq: int, limit: int) -> list[Event]:
        """Events with seq greater than `seq`, in seq order, at most `limit` (archived ones too)."""
        out: list[Event] = []
        with self._lock:
            state, catalog = self._state, self._catalog
            next_seq = seq + 1
            while len(out) < limit and next_seq <= state.through:
                meta = catalog.holding(next_seq)
                if meta is None:
                    following = [m.first for m in catalog.live + catalog.archived]
                    following = [f for f in following if f > next_seq]
                    next_seq = min(following, default=state.through + 1)
                    continue
                docs = catalog.docs(meta)
                for s in range(next_seq, meta.last + 1):
                    doc = docs.get(str(s))
                    if doc is not None:
                        out.append(Event.model_validate(doc))
                        if len(out) >= limit:
                            break
                next_seq = meta.last + 1
            for event in state.buffer:
                if len(out) >= limit:
                    break
                if event.seq >= next_seq:
                    out.append(event)
        return out

    def event(self, seq: int) -> Event | None:
        with self._lock:
            return self._read_event(seq)

    def _read_event(self, seq: int) -> Event | None:
        state = self._state
        if seq > state.through:
            offset = seq - state.through - 1
            if 0 <= offset < len(state.buffer) and state.buffer[offset].seq == seq:
                return state.buffer[offset]
            return next((e for e in state.buffer if e.seq == seq), None)
        meta = self._catalog.holding(seq)
        if meta is None:
            return None
        doc = self._catalog.docs(meta).get(str(seq))
        return Event.model_validate(doc) if doc is not None else None

    def find(self, event_id: uuid.UUID | str) -> Event | None:
        """An event by id: recent ones through the index, else a scan from the newest back."""
        wanted = str(event_id)
        with self._lock:
            for event in self._state.buffer:
                if str(event.event_id) == wanted:
                    return event
            seq = self._index.seq_of(wanted)
            if seq is not None:
                return self._read_event(seq)
            for meta in reversed(self._catalog.live):
                docs = self._catalog.docs(meta)
                for key in _seqs_of(docs, meta):
                    if docs[key].get("event_id") == wanted:
                        return Event.model_validate(docs[key])
        return None

    def events_between(self, start: datetime, end: datetime) -> list[Event]:
        """Events (not archived) whose device_time is in [start, end), in seq order."""
        out: list[Event] = []
        with self._lock:
            for meta in self._catalog.live:
                if not meta.count or meta.min_time is None or meta.max_time is None:
                    continue
                if datetime.fromisoformat(meta.max_time) < start:
                    continue
                if datetime.fromisoformat(meta.min_time) >= end:
                    continue
                docs = self._catalog.docs(meta)
                for key in _seqs_of(docs, meta):
                    event = Event.model_validate(docs[key])
                    if start <= event.device_time < end:
                        out.append(event)
            out += [e for e in self._state.buffer if start <= e.device_time < end]
        return out

    def iter_events(self, include_archived: bool = True) -> Iterator[Event]:
        """Every stored event in seq order, one segment in memory at a time."""
        with self._lock:
            catalog = self._catalog
            metas = sorted(
                catalog.live + (catalog.archived if include_archived else []),
                key=lambda m: m.first,
            )
            buffered = list(self._state.buffer)
        for meta in metas:
            with self._lock:
                docs = dict(self._catalog.docs(meta))
            for key in _seqs_of(docs, meta):
                yield Event.model_validate(docs[key])
        yield from buffered

    def recent(self, cadre_id: str) -> list[EventSummary]:
        """A cadre's latest effective events (voided ones left out), oldest first."""
        with self._lock:
            return self._index.recent(cadre_id)

    def is_voided(self, cadre_id: str, event_id: str) -> bool:
        """Whether a void that was not undone took this recent event away."""
        with self._lock:
            return self._index.is_voided(cadre_id, event_id)

    def can_undo(self, cadre_id: str, void_id: str) -> bool:
        """Whether a void of this void (the lead's undo) would put back what it voided."""
        with self._lock:
            return self._index.can_undo(cadre_id, void_id)

    def last_event(self, cadre_id: str) -> Event | None:
        with self._lock:
            seq = self._index.last_seq(cadre_id)
            return self._read_event(seq) if seq is not None else None

    def cadre_ids(self) -> list[str]:
        with self._lock:
            return self._index.cadre_ids()

    def latest_by_cadre(self) -> dict[str, EventSummary]:
        """Each cadre's last effective event: what presence pages are built from."""
        with self._lock:
            return self._index.latest()

    # ---------------------------------------------------------------- retention

    def archive_old(self, older_than: datetime) -> int:
        """Move sealed segments whose events are all acknowledged and older than `older_than`
        into archive/. Nothing is deleted. Returns how many segments moved."""
        self._check_open()
        with self._fold_lock:
            try:
                return self._fold.run(archive_before=older_than)
            except StoreWriteError:
                raise
            except OSError as exc:
                raise StoreWriteError("could not fold the journal before archiving", exc) from exc

    @property
    def segment_count(self) -> int:
        return len(self._catalog.live)

    @property
    def archived_count(self) -> int:
        return sum(m.count for m in self._catalog.archived)

    # ---------------------------------------------------------------- closing

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the event log is closed")

    def close(self) -> None:
        """Wait for the fold under way, fold what is left, and let go of the folder."""
        with self._lock:
            if self._closed:
                return
            self._closed = True  # appends refused from here on
        self._writer.stop()
        with self._fold_lock, contextlib.suppress(OSError):
            self._fold.run()
        with self._lock:
            self._catalog.close()
            self._journal.close()
            self._folder.release_lock(self._lock_fd)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
