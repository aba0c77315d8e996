"""The kiosk's local event log: TinyDB segments behind a fsync'd journal.

Layout of the log folder:

    LOCK                         flock'd while open: one process writes a log
    journal/journal-<seq>.jsonl  events not yet in a segment, one JSON line each (durability point)
    segments/seg-<seq>.json      TinyDB files of at most `segment_events` events, atomic writes
    archive/seg-<seq>.json       segments moved out by retention (acknowledged and old)
    manifest.json                segment list, the seq they cover, and the per-cadre index
    cursor.json                  the highest seq the centre acknowledged
    damaged/                     bytes that could not be read, kept for a person to look at

An append: seal the event (seq, previous hash), write one journal line, fsync, return. Every
`checkpoint_events` appends the journal's events are added to the open segment in one atomic write,
the manifest is replaced, and a fresh journal begins. At open, stale temp files are removed, a torn
last journal line is cut off (and kept in damaged/), damaged segments are salvaged, and the journal
is replayed; `recovery` says what was found.

One lock serialises every call, so the log can be shared by the scan path, the pages and the sync
agent's thread.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kiosk.store.diskio import (
    TEMP_SUFFIX,
    DiskIO,
    StoreWriteError,
    atomic_write_bytes,
    atomic_write_json,
    remove_stale_temp_files,
)
from kiosk.store.journal import Journal, iter_journal_files, journal_name, scan_journal
from kiosk.store.segments import (
    Segment,
    SegmentDamaged,
    SegmentMeta,
    iter_segment_files,
    salvage,
    segment_name,
    write_segment_file,
)
from sync.events import GENESIS_HASH, Event, seal

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
# can_write() writes this much: about the size of a few journal lines.
PROBE_BYTES = 4096


class StoreError(Exception):
    """The log cannot be used (locked by another process, closed, unreadable folder)."""


class StoreLocked(StoreError):
    pass


@dataclass(frozen=True)
class StoreConfig:
    segment_events: int = 1000
    checkpoint_events: int = 250
    recent_per_cadre: int = 4  # effective events kept per cadre in the in-memory index
    segment_cache: int = 2  # sealed segments kept parsed in memory for reads
    # Acknowledged segments this much older than the newest event move to archive/ at
    # checkpoints; None leaves it to archive_old().
    retention_days: float | None = None

    def __post_init__(self) -> None:
        if self.segment_events < 1 or self.checkpoint_events < 1 or self.recent_per_cadre < 1:
            raise ValueError("store sizes must be at least 1")


@dataclass(frozen=True)
class EventSummary:
    """A cadre's event, as much as the check-in rules and the pages need, kept in memory."""

    seq: int
    event_id: str
    kind: str
    device_time: datetime
    boot_id: str
    monotonic_ns: int
    clock_trusted: bool
    source: str
    flags: tuple[str, ...]

    @classmethod
    def of(cls, event: Event) -> EventSummary:
        return cls(
            event.seq,
            str(event.event_id),
            event.kind,
            event.device_time,
            event.boot_id,
            event.monotonic_ns,
            event.clock_trusted,
            event.source,
            tuple(event.flags),
        )

    def to_json(self) -> list[Any]:
        return [
            self.seq,
            self.event_id,
            self.kind,
            self.device_time.isoformat(),
            self.boot_id,
            self.monotonic_ns,
            self.clock_trusted,
            self.source,
            list(self.flags),
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> EventSummary:
        seq, event_id, kind, when, boot, mono, trusted, source, flags = row
        return cls(
            int(seq),
            str(event_id),
            str(kind),
            datetime.fromisoformat(when),
            str(boot),
            int(mono),
            bool(trusted),
            str(source),
            tuple(flags),
        )


@dataclass
class RecoveryReport:
    """What opening the log found and did. Empty lists and zeros mean a clean open."""

    stale_temp_files: list[str] = field(default_factory=list)
    torn_journal_bytes: int = 0
    unreadable_journal_lines: int = 0
    invalid_records: int = 0  # parsed, but not a valid event or hash mismatch
    damaged_segments: list[str] = field(default_factory=list)
    missing_segments: list[str] = field(default_factory=list)
    dropped_seqs: list[tuple[int, int]] = field(default_factory=list)  # inclusive ranges
    manifest_rebuilt: bool = False
    cursor_reset: bool = False
    replayed: int = 0
    quarantined: list[str] = field(default_factory=list)  # files written to damaged/

    @property
    def lost_anything(self) -> bool:
        return bool(self.dropped_seqs or self.invalid_records or self.unreadable_journal_lines)

    @property
    def clean(self) -> bool:
        return not (
            self.torn_journal_bytes
            or self.lost_anything
            or self.damaged_segments
            or self.missing_segments
            or self.manifest_rebuilt
            or self.cursor_reset
        )

    def summary(self) -> str:
        parts = []
        if self.stale_temp_files:
            parts.append(f"removed {len(self.stale_temp_files)} stale temp file(s)")
        if self.torn_journal_bytes:
            parts.append(
                f"cut an unfinished journal line of {self.torn_journal_bytes} bytes "
                "(never confirmed)"
            )
        if self.unreadable_journal_lines:
            parts.append(f"{self.unreadable_journal_lines} unreadable journal line(s)")
        if self.invalid_records:
            parts.append(f"{self.invalid_records} record(s) failed validation")
        if self.damaged_segments:
            parts.append(f"salvaged damaged segment(s) {', '.join(self.damaged_segments)}")
        if self.missing_segments:
            parts.append(f"missing segment(s) {', '.join(self.missing_segments)}")
        if self.dropped_seqs:
            ranges = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.dropped_seqs)
            parts.append(f"events lost: seq {ranges}")
        if self.manifest_rebuilt:
            parts.append("manifest rebuilt from the segments")
        if self.cursor_reset:
            parts.append("acknowledged cursor unreadable: everything will be sent again")
        if self.replayed:
            parts.append(f"replayed {self.replayed} journal event(s)")
        return "; ".join(parts) or "clean"


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def _valid_event(record: Mapping[str, Any]) -> Event | None:
    try:
        event = Event.model_validate(record)
    except (ValidationError, ValueError, TypeError):
        return None
    return event if event.hash_is_valid() else None


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
        self._lock = threading.RLock()
        self._segments: list[SegmentMeta] = []
        self._segment_firsts: list[int] = []
        self._archived: list[SegmentMeta] = []
        self._through = 0  # every event up to here is in a segment
        self._buffer: list[Event] = []  # events after `_through`, in seq order (journal only)
        self._last_seq = 0
        self._head_hash = GENESIS_HASH
        self._acked = 0
        self._cadres: dict[str, list[EventSummary]] = {}
        self._cadre_json_cache: dict[str, str] = {}
        self._open_segment: Segment | None = None
        self._cache: OrderedDict[str, Segment] = OrderedDict()
        self._journal: Journal | None = None
        self._checkpoint_deferred_until = 0
        self._closed = False
        self.recovery = RecoveryReport()
        self._lock_fd = self._take_folder_lock()
        try:
            self._open()
        except BaseException:
            self._release_folder_lock()
            raise

    # ---------------------------------------------------------------- paths

    @property
    def journal_dir(self) -> Path:
        return self.directory / "journal"

    @property
    def segment_dir(self) -> Path:
        return self.directory / "segments"

    @property
    def archive_dir(self) -> Path:
        return self.directory / "archive"

    @property
    def damaged_dir(self) -> Path:
        return self.directory / "damaged"

    @property
    def manifest_path(self) -> Path:
        return self.directory / "manifest.json"

    @property
    def cursor_path(self) -> Path:
        return self.directory / "cursor.json"

    # ---------------------------------------------------------------- opening

    def _take_folder_lock(self) -> int:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for sub in (self.journal_dir, self.segment_dir, self.archive_dir):
                sub.mkdir(exist_ok=True)
            try:
                fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
            except OSError:
                # A read-only disk: the log still opens for reading; appends say why they fail.
                fd = os.open(self.directory / "LOCK", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise StoreError(f"cannot open the event log at {self.directory}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise StoreLocked(
                f"the event log at {self.directory} is open in another process"
            ) from exc
        return fd

    def _release_folder_lock(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def _open(self) -> None:
        report = self.recovery
        for folder in (self.directory, self.journal_dir, self.segment_dir, self.archive_dir):
            report.stale_temp_files += [str(p) for p in remove_stale_temp_files(folder)]
        manifest = self._read_manifest()
        if manifest is not None:
            try:
                self._load_manifest(manifest)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("manifest incomplete (%s); rebuilding from the segments", exc)
                self._quarantine(self.manifest_path.name, json.dumps(manifest).encode())
                self.recovery.manifest_rebuilt = True
                self._segments, self._archived, self._cadres = [], [], {}
                self._cadre_json_cache = {}
                manifest = None
        if manifest is None:
            self._rebuild_from_segments()
        self._check_segment_files()
        self._replay()
        self._read_cursor()
        self._last_seq = max(self._last_seq, self._acked)
        self._open_fresh_journal_if_needed()
        if report.manifest_rebuilt or report.damaged_segments or report.missing_segments:
            # Record the repair now, so the next open does not have to do it again.
            with contextlib.suppress(OSError):
                if self._buffer:
                    self.checkpoint()
                else:
                    self._write_manifest()
        if not report.clean:
            log.warning("event log %s opened: %s", self.directory, report.summary())

    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            raw = self.manifest_path.read_bytes()
        except FileNotFoundError:
            has_data = any(self.segment_dir.glob("seg-*.json")) or any(
                self.archive_dir.glob("seg-*.json")
            )
            if has_data:
                self.recovery.manifest_rebuilt = True
            return None
        try:
            data = json.loads(raw)
            if data.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"unknown manifest format {data.get('format')!r}")
            return data
        except (ValueError, UnicodeDecodeError, AttributeError) as exc:
            self._quarantine(self.manifest_path.name, raw)
            log.error("manifest unreadable (%s); rebuilding from the segments", exc)
            self.recovery.manifest_rebuilt = True
            return None

    def _load_manifest(self, data: dict[str, Any]) -> None:
        self._segments = [SegmentMeta.from_json(m) for m in data["segments"]]
        self._archived = [SegmentMeta.from_json(m) for m in data["archived"]]
        self._through = int(data["through_seq"])
        self._last_seq = self._through
        self._head_hash = str(data["head_hash"])
        self._cadres = {
            cadre: [EventSummary.from_json(row) for row in rows]
            for cadre, rows in data["cadres"].items()
        }
        # Rows as read are rows as they will be written: no need to format them again.
        self._cadre_json_cache = {
            cadre: json.dumps(cadre, ensure_ascii=False)
            + ":"
            + json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
            for cadre, rows in data["cadres"].items()
        }
        self._reindex_segments()

    def _reindex_segments(self) -> None:
        self._segments.sort(key=lambda m: m.first)
        self._archived.sort(key=lambda m: m.first)
        self._segment_firsts = [m.first for m in self._segments]

    def _rebuild_from_segments(self) -> None:
        """No manifest: learn everything from the segment files themselves (slow, rare)."""
        all_docs: dict[int, Event] = {}
        present: set[int] = set()
        for folder, target in ((self.archive_dir, self._archived), (self.segment_dir, None)):
            for first, path in iter_segment_files(folder):
                docs = self._load_docs_salvaging(path)
                events = [e for e in (_valid_event(d) for d in docs.values()) if e is not None]
                self.recovery.invalid_records += len(docs) - len(events)
                present.update(e.seq for e in events)
                meta = self._meta_for(path.name, first, events, path)
                if target is not None:
                    target.append(meta)
                else:
                    self._segments.append(meta)
                    for event in events:
                        all_docs[event.seq] = event
        for index, meta in enumerate(self._segments):
            is_last = index == len(self._segments) - 1
            meta.sealed = not is_last or meta.count >= self.config.segment_events
        self._reindex_segments()
        ordered = [all_docs[s] for s in sorted(all_docs)]
        for event in ordered:
            self._index(event)
        tails = [m.last for m in self._segments + self._archived if m.count]
        self._through = max(tails, default=0)
        self._last_seq = self._through
        missing = sorted(set(range(1, self._through + 1)) - present)
        self.recovery.dropped_seqs += _ranges(missing)
        if ordered and ordered[-1].seq == self._through:
            self._head_hash = ordered[-1].hash
        elif self._through:
            # The newest segment is archived (impossible in normal use) or empty: read its head.
            head = self._read_event(self._through)
            self._head_hash = head.hash if head else GENESIS_HASH

    def _meta_for(self, name: str, first: int, events: list[Event], path: Path) -> SegmentMeta:
        times = sorted(e.device_time for e in events)
        return SegmentMeta(
            file=name,
            first=first,
            last=max((e.seq for e in events), default=first - 1),
            count=len(events),
            min_time=times[0].isoformat() if times else None,
            max_time=times[-1].isoformat() if times else None,
            sealed=True,
            bytes=path.stat().st_size if path.exists() else 0,
        )

    def _load_docs_salvaging(self, path: Path) -> dict[int, dict[str, Any]]:
        """The documents of a segment file; a damaged file is salvaged and rewritten."""
        raw = path.read_bytes()
        try:
            data = json.loads(raw) if raw else {}
            table = data.get("events", {}) if isinstance(data, dict) else None
            if not isinstance(table, dict):
                raise ValueError("not a TinyDB document")
            return {int(k): v for k, v in table.items()}
        except (ValueError, UnicodeDecodeError):
            pass
        docs = salvage(raw)
        self._quarantine(path.name, raw)
        self.recovery.damaged_segments.append(path.name)
        try:
            write_segment_file(self._disk, path, docs)
        except OSError as exc:
            log.error("could not rewrite salvaged segment %s: %s", path.name, exc)
        return docs

    def _check_segment_files(self) -> None:
        """Listed segments must exist and parse; a torn one is salvaged, what it lost reported."""
        for meta in list(self._segments):
            path = self.segment_dir / meta.file
            if not path.exists():
                archived = self.archive_dir / meta.file
                if archived.exists():
                    # A crash between moving the file and writing the manifest: finish the move.
                    self._segments.remove(meta)
                    self._archived.append(meta)
                    continue
                self.recovery.missing_segments.append(meta.file)
                self.recovery.dropped_seqs += _ranges(list(range(meta.first, meta.last + 1)))
                self._segments.remove(meta)
                continue
            if path.stat().st_size == meta.bytes:
                continue
            # A different size is normal for the open segment after a crash between its write and
            # the manifest's; it only matters when the file no longer parses.
            docs = self._load_docs_salvaging(path)
            if meta.file in self.recovery.damaged_segments:
                expected = range(meta.first, max(meta.last, meta.first - 1) + 1)
                valid = {s for s, d in docs.items() if _valid_event(d) is not None}
                self.recovery.invalid_records += len(docs) - len(valid)
                lost = [s for s in expected if s not in valid]
                self.recovery.dropped_seqs += _ranges(lost)
                events = [e for e in (_valid_event(d) for d in docs.values()) if e is not None]
                fresh = self._meta_for(meta.file, meta.first, events, path)
                meta.count, meta.bytes = fresh.count, fresh.bytes
                meta.min_time, meta.max_time = fresh.min_time, fresh.max_time
            else:
                meta.bytes = path.stat().st_size
        self._reindex_segments()

    def _replay(self) -> None:
        """Events after the manifest's `through`: from the journal files, and from segment files
        written just before a crash. Chained onto the head, duplicates dropped."""
        candidates: dict[int, Event] = {}
        report = self.recovery
        for _first, _attempt, path in iter_journal_files(self.journal_dir):
            raw = path.read_bytes()
            scan = scan_journal(raw)
            if scan.torn_tail:
                report.torn_journal_bytes += len(scan.torn_tail)
                self._quarantine(path.name + ".torn", scan.torn_tail)
            if scan.bad_lines:
                report.unreadable_journal_lines += len(scan.bad_lines)
                self._quarantine(path.name + ".bad", b"\n".join(scan.bad_lines))
            if scan.torn_tail or scan.needs_newline:
                self._fix_journal_tail(path, scan.good_length, scan.needs_newline)
            for record in scan.records:
                event = _valid_event(record)
                if event is None:
                    report.invalid_records += 1
                elif event.seq > self._through:
                    candidates.setdefault(event.seq, event)
        for first, path in iter_segment_files(self.segment_dir):
            # The open segment and any segment created just before a crash may hold events past
            # `through` that a damaged journal no longer has.
            if first <= self._through and not self._segment_may_extend(path.name):
                continue
            try:
                docs = self._load_docs_salvaging(path)
            except OSError:
                continue
            for seq, doc in docs.items():
                if seq > self._through and seq not in candidates:
                    event = _valid_event(doc)
                    if event is not None:
                        candidates[seq] = event
        lost: list[int] = []
        expected = self._through + 1
        for seq in sorted(candidates):
            event = candidates[seq]
            if seq != expected:
                lost += range(expected, seq)
            self._buffer.append(event)
            self._index(event)
            self._last_seq = seq
            self._head_hash = event.hash
            expected = seq + 1
            report.replayed += 1
        report.dropped_seqs += _ranges(lost)
        report.dropped_seqs.sort()

    def _segment_may_extend(self, name: str) -> bool:
        return bool(self._segments) and self._segments[-1].file == name

    def _fix_journal_tail(self, path: Path, good_length: int, add_newline: bool) -> None:
        """Cut a torn last line (else the next append glues onto it) or finish a whole one."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                self._disk.ftruncate(fd, good_length)
                if add_newline:
                    os.lseek(fd, 0, os.SEEK_END)
                    self._disk.write_all(fd, b"\n")
                self._disk.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            # Left as is, it is cut again at the next open; appends go to a new journal.
            log.error("could not repair journal %s: %s", path.name, exc)

    def _read_cursor(self) -> None:
        try:
            raw = self.cursor_path.read_bytes()
        except FileNotFoundError:
            return
        try:
            self._acked = int(json.loads(raw)["acknowledged_seq"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            self._quarantine(self.cursor_path.name, raw)
            self.recovery.cursor_reset = True
            self._acked = 0

    def _open_fresh_journal_if_needed(self) -> None:
        """Append to a journal named after the next seq. A file of that name can only hold
        bytes that were not replayed (garbage that could not be cut off): never continue it."""
        try:
            self._journal = self._new_journal(self._last_seq + 1)
        except OSError as exc:
            # A full or read-only disk at start: the log opens for reading, and every append
            # tries again, so recording resumes by itself when the disk recovers.
            log.error("event log %s cannot be written yet: %s", self.directory, exc)
            self._journal = None

    def _new_journal(self, first_seq: int) -> Journal:
        attempt = 0
        while True:
            path = self.journal_dir / journal_name(first_seq, attempt)
            if not path.exists() or path.stat().st_size == 0:
                break
            attempt += 1
        journal = Journal(path, self._disk, 0)
        try:
            self._disk.fsync_dir(self.journal_dir)
        except OSError:
            journal.close()
            raise
        return journal

    def _quarantine(self, name: str, data: bytes) -> None:
        try:
            self.damaged_dir.mkdir(exist_ok=True)
            stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
            target = self.damaged_dir / f"{stamp}-{uuid.uuid4().hex[:6]}-{name}"
            atomic_write_bytes(self._disk, target, data)
            self.recovery.quarantined.append(str(target))
        except OSError as exc:
            log.error("could not keep damaged bytes of %s: %s", name, exc)

    # ---------------------------------------------------------------- the per-cadre index

    def _index(self, event: Event) -> None:
        if event.kind == "void":
            self._drop_from_index(event.cadre_id, str(event.corrects))
            return
        summary = EventSummary.of(event)
        self._cadre_json_cache.pop(event.cadre_id, None)
        rows = self._cadres.setdefault(event.cadre_id, [])
        position = None
        if event.corrects is not None:
            target = str(event.corrects)
            position = next((i for i, r in enumerate(rows) if r.event_id == target), None)
            if position is None:
                self._drop_from_index(None, target)
        if position is not None:
            rows[position] = summary
        else:
            rows.append(summary)
        del rows[: -self.config.recent_per_cadre]

    def _drop_from_index(self, cadre_id: str | None, event_id: str) -> None:
        cadres = [cadre_id] if cadre_id in self._cadres else list(self._cadres)
        for cadre in cadres:
            rows = self._cadres[cadre]
            kept = [r for r in rows if r.event_id != event_id]
            if len(kept) != len(rows):
                self._cadres[cadre] = kept
                self._cadre_json_cache.pop(cadre, None)
                return

    # ---------------------------------------------------------------- writing

    def append(self, fields: Mapping[str, Any]) -> Event:
        """Seal `fields` as the next event, make it durable, and return it.

        `fields` are every Event field except seq, prev_hash and hash (event_id is made when
        absent). Raises pydantic's ValidationError for bad fields (nothing written) and
        StoreWriteError when the disk refuses (nothing confirmed, nothing damaged).
        """
        with self._lock:
            self._check_open()
            draft = dict(fields)
            draft.setdefault("event_id", uuid.uuid4())
            draft["seq"] = self._last_seq + 1
            draft["prev_hash"] = self._head_hash
            event = seal(draft)
            line = event.model_dump_json().encode() + b"\n"
            if self._journal is None:
                try:
                    self._journal = self._new_journal(event.seq)
                except OSError as exc:
                    raise StoreWriteError("could not store the event", exc) from exc
            self._journal.append(line)
            self._buffer.append(event)
            self._last_seq = event.seq
            self._head_hash = event.hash
            self._index(event)
            due = max(self.config.checkpoint_events, self._checkpoint_deferred_until)
            if len(self._buffer) >= due:
                self._try_checkpoint()
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

    def _try_checkpoint(self) -> None:
        try:
            self.checkpoint()
        except Exception as exc:
            # The events are safe in the journal: the append succeeded whatever happens here.
            # Try again after another batch.
            self._checkpoint_deferred_until = len(self._buffer) + self.config.checkpoint_events
            log.warning("checkpoint put off: %s", exc)

    def checkpoint(self) -> None:
        """Move the journal's events into segments and start a fresh journal."""
        with self._lock:
            self._check_open()
            if not self._buffer:
                return
            metas = [SegmentMeta(**m.as_json()) for m in self._segments]
            events = self._buffer
            index = 0
            try:
                while index < len(events):
                    if not metas or metas[-1].sealed:
                        first = events[index].seq
                        name = segment_name(first)
                        metas.append(SegmentMeta(name, first, first - 1, 0, None, None, False, 0))
                    meta = metas[-1]
                    segment = self._segment_for_write(meta.file)
                    room = self.config.segment_events - meta.count
                    chunk = events[index : index + max(room, 1)]
                    segment.add((e.seq, e.wire()) for e in chunk)
                    self._update_meta(meta, chunk, segment)
                    index += len(chunk)
            except BaseException:
                self._drop_open_segment()
                raise
            through_event = events[-1]
            previous = (self._segments, self._through)
            self._segments, self._through = metas, through_event.seq
            self._reindex_segments()
            buffered, self._buffer = self._buffer, []
            try:
                self._write_manifest()
            except BaseException:
                self._segments, self._through = previous
                self._buffer = buffered
                self._reindex_segments()
                raise
            self._checkpoint_deferred_until = 0
            self._rotate_journal()
            self._archive_by_retention(through_event)

    def _update_meta(self, meta: SegmentMeta, chunk: list[Event], segment: Segment) -> None:
        times = [e.device_time for e in chunk]
        if meta.min_time:
            times.append(datetime.fromisoformat(meta.min_time))
        if meta.max_time:
            times.append(datetime.fromisoformat(meta.max_time))
        meta.min_time = min(times).isoformat()
        meta.max_time = max(times).isoformat()
        meta.count = len(segment.docs())
        meta.last = max(meta.last, chunk[-1].seq)
        meta.bytes = segment.storage.size_on_disk
        if meta.count >= self.config.segment_events:
            meta.sealed = True
            self._drop_open_segment()

    def _segment_for_write(self, name: str) -> Segment:
        if self._open_segment is None or self._open_segment.path.name != name:
            self._drop_open_segment()
            stale = self._cache.pop(name, None)
            if stale is not None:
                stale.close()
            segment = Segment(self.segment_dir / name, self._disk)
            try:
                segment.docs()
            except SegmentDamaged:
                # Damaged since it was last read: keep what is whole before adding to it.
                self._load_docs_salvaging(segment.path)
                segment = Segment(self.segment_dir / name, self._disk)
            self._open_segment = segment
        return self._open_segment

    def _drop_open_segment(self) -> None:
        if self._open_segment is not None:
            self._open_segment.close()
            self._open_segment = None

    def _write_manifest(self) -> None:
        # The index is written as of `through`; journal replay applies what came after. So the
        # manifest is only written when nothing is waiting in the journal.
        assert not self._buffer, "manifest written with events still only in the journal"
        data = {
            "format": MANIFEST_FORMAT,
            "through_seq": self._through,
            "head_hash": self._head_hash,
            "segments": [m.as_json() for m in self._segments],
            "archived": [m.as_json() for m in self._archived],
        }
        # The index is most of the manifest (thousands of cadres) and most of it unchanged since
        # the last checkpoint: each cadre's JSON is kept until its rows change.
        cadres = ",".join(self._cadre_json(cadre) for cadre in self._cadres)
        head = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        text = head[:-1] + ',"cadres":{' + cadres + "}}"
        atomic_write_bytes(self._disk, self.manifest_path, text.encode())

    def _cadre_json(self, cadre: str) -> str:
        cached = self._cadre_json_cache.get(cadre)
        if cached is None:
            rows = [row.to_json() for row in self._cadres[cadre]]
            cached = (
                json.dumps(cadre, ensure_ascii=False)
                + ":"
                + json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
            )
            self._cadre_json_cache[cadre] = cached
        return cached

    def _rotate_journal(self) -> None:
        old = self._journal
        try:
            fresh = self._new_journal(self._through + 1)
        except OSError as exc:
            log.warning("journal not rotated (%s); the old one is kept", exc)
            return
        self._journal = fresh
        if old is not None:
            old.close()
        for _first, _attempt, path in iter_journal_files(self.journal_dir):
            if path != fresh.path:
                with contextlib.suppress(OSError):
                    self._disk.unlink(path)
        with contextlib.suppress(OSError):
            self._disk.fsync_dir(self.journal_dir)

    # ---------------------------------------------------------------- the sync cursor

    def pending(self, limit: int) -> list[Event]:
        """Events not yet acknowledged by the centre, oldest first, at most `limit`."""
        with self._lock:
            return self.events_after(self._acked, limit)

    def pending_count(self) -> int:
        with self._lock:
            return max(0, self._last_seq - self._acked)

    def acknowledge(self, through_seq: int) -> None:
        """The centre stored every event up to `through_seq`: remember it durably."""
        with self._lock:
            self._check_open()
            if through_seq > self._last_seq:
                raise ValueError(
                    f"cannot acknowledge seq {through_seq}: the log ends at {self._last_seq}"
                )
            if through_seq <= self._acked:
                return
            try:
                atomic_write_json(self._disk, self.cursor_path, {"acknowledged_seq": through_seq})
            except OSError as exc:
                raise StoreWriteError("could not save the sync cursor", exc) from exc
            self._acked = through_seq

    @property
    def acknowledged_seq(self) -> int:
        return self._acked

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def head_hash(self) -> str:
        return self._head_hash

    # ---------------------------------------------------------------- reading

    def events_after(self, seq: int, limit: int) -> list[Event]:
        """Events with seq greater than `seq`, in seq order, at most `limit` (archived ones too)."""
        out: list[Event] = []
        with self._lock:
            next_seq = seq + 1
            while len(out) < limit and next_seq <= self._through:
                meta = self._meta_holding(next_seq)
                if meta is None:
                    following = [m.first for m in self._segments + self._archived]
                    following = [f for f in following if f > next_seq]
                    next_seq = min(following, default=self._through + 1)
                    continue
                docs = self._docs_of(meta)
                for s in range(next_seq, meta.last + 1):
                    doc = docs.get(str(s))
                    if doc is not None:
                        out.append(Event.model_validate(doc))
                        if len(out) >= limit:
                            break
                next_seq = meta.last + 1
            for event in self._buffer:
                if len(out) >= limit:
                    break
                if event.seq >= next_seq:
                    out.append(event)
        return out

    def event(self, seq: int) -> Event | None:
        with self._lock:
            return self._read_event(seq)

    def _read_event(self, seq: int) -> Event | None:
        if seq > self._through:
            offset = seq - self._through - 1
            if 0 <= offset < len(self._buffer) and self._buffer[offset].seq == seq:
                return self._buffer[offset]
            return next((e for e in self._buffer if e.seq == seq), None)
        meta = self._meta_holding(seq)
        if meta is None:
            return None
        doc = self._docs_of(meta).get(str(seq))
        return Event.model_validate(doc) if doc is not None else None

    def find(self, event_id: uuid.UUID | str) -> Event | None:
        """An event by id: recent ones through the index, else a scan from the newest back."""
        wanted = str(event_id)
        with self._lock:
            for event in self._buffer:
                if str(event.event_id) == wanted:
                    return event
            for rows in self._cadres.values():
                for row in rows:
                    if row.event_id == wanted:
                        return self._read_event(row.seq)
            for meta in reversed(self._segments):
                for doc in self._docs_of(meta).values():
                    if doc.get("event_id") == wanted:
                        return Event.model_validate(doc)
        return None

    def events_between(self, start: datetime, end: datetime) -> list[Event]:
        """Events (not archived) whose device_time is in [start, end), in seq order."""
        out: list[Event] = []
        with self._lock:
            for meta in self._segments:
                if not meta.count or meta.min_time is None or meta.max_time is None:
                    continue
                if datetime.fromisoformat(meta.max_time) < start:
                    continue
                if datetime.fromisoformat(meta.min_time) >= end:
                    continue
                docs = self._docs_of(meta)
                for key in sorted(docs, key=int):
                    event = Event.model_validate(docs[key])
                    if start <= event.device_time < end:
                        out.append(event)
            out += [e for e in self._buffer if start <= e.device_time < end]
        return out

    def iter_events(self, include_archived: bool = True) -> Iterator[Event]:
        """Every stored event in seq order, one segment in memory at a time."""
        with self._lock:
            metas = sorted(
                self._segments + (self._archived if include_archived else []),
                key=lambda m: m.first,
            )
            buffered = list(self._buffer)
        for meta in metas:
            with self._lock:
                docs = dict(self._docs_of(meta))
            for key in sorted(docs, key=int):
                yield Event.model_validate(docs[key])
        yield from buffered

    def recent(self, cadre_id: str) -> list[EventSummary]:
        """A cadre's latest effective events (voided ones left out), oldest first."""
        with self._lock:
            return list(self._cadres.get(cadre_id, ()))

    def last_event(self, cadre_id: str) -> Event | None:
        with self._lock:
            rows = self._cadres.get(cadre_id)
            return self._read_event(rows[-1].seq) if rows else None

    def cadre_ids(self) -> list[str]:
        with self._lock:
            return list(self._cadres)

    def latest_by_cadre(self) -> dict[str, EventSummary]:
        """Each cadre's last effective event: what presence pages are built from."""
        with self._lock:
            return {cadre: rows[-1] for cadre, rows in self._cadres.items() if rows}

    def _meta_holding(self, seq: int) -> SegmentMeta | None:
        index = bisect.bisect_right(self._segment_firsts, seq) - 1
        if index >= 0 and self._segments[index].first <= seq <= self._segments[index].last:
            return self._segments[index]
        for meta in self._archived:
            if meta.first <= seq <= meta.last:
                return meta
        return None

    def _docs_of(self, meta: SegmentMeta) -> dict[str, dict[str, Any]]:
        if self._open_segment is not None and self._open_segment.path.name == meta.file:
            return self._open_segment.docs()
        segment = self._cache.get(meta.file)
        if segment is None:
            archived = meta in self._archived
            folder = self.archive_dir if archived else self.segment_dir
            segment = Segment(folder / meta.file, self._disk)
            try:
                segment.docs()
            except SegmentDamaged:
                # Damaged after the open-time check (bit rot): salvage what is whole.
                self._load_docs_salvaging(folder / meta.file)
                segment = Segment(folder / meta.file, self._disk)
            self._cache[meta.file] = segment
            while len(self._cache) > self.config.segment_cache:
                _name, dropped = self._cache.popitem(last=False)
                dropped.close()
        else:
            self._cache.move_to_end(meta.file)
        return segment.docs()

    # ---------------------------------------------------------------- retention

    def archive_old(self, older_than: datetime) -> int:
        """Move sealed segments whose events are all acknowledged and older than `older_than`
        into archive/. Nothing is deleted. Returns how many segments moved."""
        with self._lock:
            self._check_open()
            try:
                self.checkpoint()
            except OSError as exc:
                raise StoreWriteError("could not fold the journal before archiving", exc) from exc
            return self._archive_sealed(older_than)

    def _archive_sealed(self, older_than: datetime) -> int:
        moved = 0
        for meta in list(self._segments):
            if not meta.sealed or meta.last > self._acked or meta.max_time is None:
                continue
            if datetime.fromisoformat(meta.max_time) >= older_than:
                continue
            stale = self._cache.pop(meta.file, None)
            if stale is not None:
                stale.close()
            try:
                self._disk.replace(self.segment_dir / meta.file, self.archive_dir / meta.file)
                self._disk.fsync_dir(self.archive_dir)
                self._disk.fsync_dir(self.segment_dir)
            except OSError as exc:
                if moved:
                    self._reindex_segments()
                raise StoreWriteError("could not archive old events", exc) from exc
            self._segments.remove(meta)
            self._archived.append(meta)
            moved += 1
        if moved:
            self._reindex_segments()
            try:
                self._write_manifest()
            except OSError as exc:
                # The open-time check finishes the move from the files themselves.
                raise StoreWriteError("could not record archived segments", exc) from exc
        return moved

    def _archive_by_retention(self, newest: Event) -> None:
        """With `retention_days` set: age is measured back from the newest event's time (the
        log has no clock of its own); a wrong clock only moves a segment early or late."""
        if self.config.retention_days is None:
            return
        try:
            self._archive_sealed(newest.device_time - timedelta(days=self.config.retention_days))
        except OSError as exc:
            log.warning("old events not archived yet: %s", exc)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def archived_count(self) -> int:
        return sum(m.count for m in self._archived)

    # ---------------------------------------------------------------- closing

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the event log is closed")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(OSError):
                self.checkpoint()
            self._drop_open_segment()
            for segment in self._cache.values():
                segment.close()
            self._cache.clear()
            if self._journal is not None:
                self._journal.close()
            self._closed = True
            self._release_folder_lock()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
