"""Opening the log after whatever happened before: a clean stop, a kill, a power cut, bit rot.

In order: stale temp files are removed (a crash mid-write leaves them; their content was never
committed); the manifest is read, or rebuilt from the segment files when it is missing or
unreadable; every listed segment must exist and parse, and a torn one is salvaged; the journal is
replayed onto the head (a torn last line is cut off and kept in damaged/), with the open segment's
own events past the manifest as a second source; the acknowledged cursor is read. Every finding
goes into the `RecoveryReport`; nothing here raises for damaged content.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kiosk.store.catalog import SegmentCatalog, meta_of
from kiosk.store.damage import Quarantine
from kiosk.store.diskio import DiskIO, remove_stale_temp_files
from kiosk.store.folder import LogFolder
from kiosk.store.index import CadreIndex
from kiosk.store.journal import iter_journal_files, scan_journal
from kiosk.store.manifest import load_manifest, read_manifest
from kiosk.store.segments import SegmentMeta, iter_segment_files
from kiosk.store.state import LogState
from sync.events import GENESIS_HASH, Event

log = logging.getLogger(__name__)


def seq_ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """[3, 4, 5, 9] -> [(3, 5), (9, 9)]: how lost seqs are reported."""
    out: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def valid_event(record: Mapping[str, Any]) -> Event | None:
    """The record as an Event when it is one and its hash matches its content."""
    try:
        event = Event.model_validate(record)
    except (ValidationError, ValueError, TypeError):
        return None
    return event if event.hash_is_valid() else None


class Recovery:
    """Fills an empty `LogState`, catalogue and index from what is on disk. Run once, at open,
    under the folder lock."""

    def __init__(
        self,
        folder: LogFolder,
        disk: DiskIO,
        segment_events: int,
        state: LogState,
        catalog: SegmentCatalog,
        index: CadreIndex,
        quarantine: Quarantine,
    ) -> None:
        self._folder = folder
        self._disk = disk
        self._segment_events = segment_events
        self._state = state
        self._catalog = catalog
        self._index = index
        self._quarantine = quarantine
        self.report = quarantine.report
        self._grown: set[str] = set()  # listed segments whose file is not the size listed

    def run(self) -> None:
        folder = self._folder
        for path in (folder.directory, folder.journal_dir, folder.segment_dir, folder.archive_dir):
            self.report.stale_temp_files += [
                str(p) for p in remove_stale_temp_files(self._disk, path)
            ]
        manifest = read_manifest(folder, self._quarantine)
        if manifest is not None:
            try:
                load_manifest(manifest, self._state, self._catalog, self._index)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("manifest incomplete (%s); rebuilding from the segments", exc)
                self._quarantine.keep(folder.manifest_path.name, json.dumps(manifest).encode())
                self.report.manifest_rebuilt = True
                self._catalog.clear()
                self._index.clear()
                manifest = None
        base = self._read_base()
        if manifest is None:
            self._rebuild_from_segments(base[0] if base else 0)
        self._check_segment_files()
        self._finish_interrupted_fold()
        if base is not None and self._state.through < base[0]:
            # A log begun after a wipe: it goes on from where the centre's copy of the
            # kiosk's chain ends (nothing of it folded yet; its journal is replayed onto it).
            self._state.through = self._state.last_seq = base[0]
            self._state.head_hash = base[1]
        self._replay()
        self._read_cursor()
        state = self._state
        if base is not None and state.acked < base[0]:
            state.acked = base[0]  # the centre holds everything up to the base
        if state.acked > state.last_seq:
            # The centre has events this log no longer holds (a lost journal): say so, and go on
            # after them so that no seq the centre knows is used twice.
            self.report.dropped_seqs += seq_ranges(list(range(state.last_seq + 1, state.acked + 1)))
            state.last_seq = state.acked

    @property
    def needs_recording(self) -> bool:
        """Whether the repair should be written down now, so the next open need not redo it."""
        report = self.report
        return report.manifest_rebuilt or bool(
            report.damaged_segments
            or report.missing_segments
            or report.fold_finished
            # A journal with unreadable lines is folded away, so they are reported once.
            or report.unreadable_journal_lines
        )

    # ---------------------------------------------------------------- segments

    def _rebuild_from_segments(self, base_seq: int = 0) -> None:
        """No manifest: learn everything from the segment files themselves (slow, rare). A log
        begun after a wipe holds nothing up to `base_seq`."""
        state, catalog = self._state, self._catalog
        all_docs: dict[int, Event] = {}
        present: set[int] = set()
        folders = ((self._folder.archive_dir, catalog.archived), (self._folder.segment_dir, None))
        for folder, target in folders:
            for first, path in iter_segment_files(folder):
                docs = self._quarantine.segment_docs(path)
                events = [e for e in (valid_event(d) for d in docs.values()) if e is not None]
                self.report.invalid_records += len(docs) - len(events)
                present.update(e.seq for e in events)
                meta = meta_of(path.name, first, events, path)
                if target is not None:
                    target.append(meta)
                else:
                    catalog.live.append(meta)
                    for event in events:
                        all_docs[event.seq] = event
        for position, meta in enumerate(catalog.live):
            is_last = position == len(catalog.live) - 1
            meta.sealed = not is_last or meta.count >= self._segment_events
        catalog.reindex()
        ordered = [all_docs[s] for s in sorted(all_docs)]
        for event in ordered:
            self._index.add(event)
        tails = [m.last for m in catalog.live + catalog.archived if m.count]
        state.through = max(tails, default=0)
        state.last_seq = state.through
        missing = sorted(set(range(base_seq + 1, state.through + 1)) - present)
        self.report.dropped_seqs += seq_ranges(missing)
        if ordered and ordered[-1].seq == state.through:
            state.head_hash = ordered[-1].hash
        elif state.through:
            # The newest segment is archived (impossible in normal use) or empty: read its head.
            head = self._stored_event(state.through)
            state.head_hash = head.hash if head else GENESIS_HASH

    def _stored_event(self, seq: int) -> Event | None:
        meta = self._catalog.holding(seq)
        if meta is None:
            return None
        doc = self._catalog.docs(meta).get(str(seq))
        return Event.model_validate(doc) if doc is not None else None

    def _check_segment_files(self) -> None:
        """Listed segments must exist and parse; a torn one is salvaged, what it lost reported."""
        catalog, report = self._catalog, self.report
        for meta in catalog.archived:
            moved = self._folder.archive_dir / meta.file
            left = self._folder.segment_dir / meta.file
            if not moved.exists() and left.exists():
                # Listed as archived, the move itself lost by a power cut: make it again.
                try:
                    self._disk.replace(left, moved)
                    self._disk.fsync_dir(self._folder.archive_dir)
                    self._disk.fsync_dir(self._folder.segment_dir)
                except OSError as exc:
                    log.error("could not finish moving %s to archive/: %s", meta.file, exc)
        for meta in list(catalog.live):
            path = self._folder.segment_dir / meta.file
            if not path.exists():
                archived = self._folder.archive_dir / meta.file
                if archived.exists():
                    # A crash between moving the file and writing the manifest: finish the move.
                    catalog.live.remove(meta)
                    catalog.archived.append(meta)
                    continue
                report.missing_segments.append(meta.file)
                report.dropped_seqs += seq_ranges(list(range(meta.first, meta.last + 1)))
                catalog.live.remove(meta)
                continue
            if path.stat().st_size == meta.bytes:
                continue
            # A different size is normal for the open segment after a crash between its write and
            # the manifest's; it only matters when the file no longer parses.
            docs = self._quarantine.segment_docs(path)
            if meta.file in report.damaged_segments:
                expected = range(meta.first, max(meta.last, meta.first - 1) + 1)
                valid = {s for s, d in docs.items() if valid_event(d) is not None}
                report.invalid_records += len(docs) - len(valid)
                lost = [s for s in expected if s not in valid]
                report.dropped_seqs += seq_ranges(lost)
                events = [e for e in (valid_event(d) for d in docs.values()) if e is not None]
                fresh = meta_of(meta.file, meta.first, events, path)
                meta.count, meta.bytes = fresh.count, fresh.bytes
                meta.min_time, meta.max_time = fresh.min_time, fresh.max_time
            else:
                meta.bytes = path.stat().st_size
                self._grown.add(meta.file)
        catalog.reindex()

    def _finish_interrupted_fold(self) -> None:
        """A crash after a fold wrote its segment files and before it replaced the manifest
        leaves events past `through` in the open segment (and perhaps in a segment begun by that
        fold). They are taken from there, in seq order while each is valid and linked to the one
        before, so that they are not also replayed from the journal (which would show them
        twice). What does not link is left to the journal."""
        state, catalog, folder = self._state, self._catalog, self._folder
        listed = {m.file for m in catalog.live + catalog.archived}
        files: list[tuple[int, Path, SegmentMeta | None]] = []
        open_meta = catalog.live[-1] if catalog.live and not catalog.live[-1].sealed else None
        if open_meta is not None and open_meta.file in self._grown:
            files.append((open_meta.first, folder.segment_dir / open_meta.file, open_meta))
        for first, path in iter_segment_files(folder.segment_dir):
            if path.name not in listed and first > state.through:
                files.append((first, path, None))
        for first, path, meta in sorted(files, key=lambda f: f[0]):
            expected = state.through + 1
            if meta is None and first != expected:
                break
            try:
                docs = self._quarantine.segment_docs(path)
            except OSError:
                break
            adopted: list[Event] = []
            head = state.head_hash
            while True:
                event = valid_event(docs[expected]) if expected in docs else None
                if event is None or event.prev_hash != head:
                    break
                adopted.append(event)
                head = event.hash
                expected += 1
            if not adopted:
                break
            if meta is None:
                meta = meta_of(path.name, first, adopted, path)
                catalog.live.append(meta)
            else:
                times = [e.device_time for e in adopted]
                times += [datetime.fromisoformat(t) for t in (meta.min_time, meta.max_time) if t]
                meta.min_time, meta.max_time = min(times).isoformat(), max(times).isoformat()
                meta.last = adopted[-1].seq
                meta.count = sum(1 for s in docs if meta.first <= s <= meta.last)
                meta.bytes = path.stat().st_size
            meta.sealed = meta.count >= self._segment_events
            for event in adopted:
                self._index.add(event)
            state.through = state.last_seq = adopted[-1].seq
            state.head_hash = adopted[-1].hash
            self.report.fold_finished += len(adopted)
            if any(s > state.through for s in docs):
                break
        catalog.reindex()

    # ---------------------------------------------------------------- the journal

    def _replay(self) -> None:
        """Events after the manifest's `through`: from the journal files, and from segment files
        written just before a crash. Chained onto the head, duplicates dropped."""
        state, report = self._state, self.report
        candidates: dict[int, Event] = {}
        journals = [path for _first, _attempt, path in iter_journal_files(self._folder.journal_dir)]
        contents = {path: path.read_bytes() for path in journals}
        newest = next((p for p in reversed(journals) if contents[p]), None)
        for path in journals:
            raw = contents[path]
            scan = scan_journal(raw)
            cut_at = scan.good_length
            if path == newest and scan.trailing_bad:
                # Unreadable lines after the last readable one, in the newest journal: the line
                # a power cut caught in flight (its newline reached the disk, a sector before it
                # did not). Its append never returned, so it was never confirmed: cut it off
                # with the torn tail, once, keeping the bytes.
                cut_at = scan.last_record_end
                scan.torn_tail = raw[cut_at:]
                scan.bad_lines = scan.bad_lines[: len(scan.bad_lines) - scan.trailing_bad]
            if scan.torn_tail:
                report.torn_journal_bytes += len(scan.torn_tail)
                self._quarantine.keep(path.name + ".torn", scan.torn_tail)
            if scan.bad_lines:
                report.unreadable_journal_lines += len(scan.bad_lines)
                self._quarantine.keep(path.name + ".bad", b"\n".join(scan.bad_lines))
            if scan.torn_tail or scan.needs_newline:
                self._fix_journal_tail(path, cut_at, scan.needs_newline)
            for record in scan.records:
                event = valid_event(record)
                if event is None:
                    report.invalid_records += 1
                elif event.seq > state.through:
                    candidates.setdefault(event.seq, event)
        for first, path in iter_segment_files(self._folder.segment_dir):
            # The open segment and any segment created just before a crash may hold events past
            # `through` that a damaged journal no longer has.
            if first <= state.through and not self._segment_may_extend(path.name):
                continue
            try:
                docs = self._quarantine.segment_docs(path)
            except OSError:
                continue
            for seq, doc in docs.items():
                if seq > state.through and seq not in candidates:
                    event = valid_event(doc)
                    if event is not None:
                        candidates[seq] = event
        lost: list[int] = []
        expected = state.through + 1
        for seq in sorted(candidates):
            event = candidates[seq]
            if seq != expected:
                lost += range(expected, seq)
            state.buffer.append(event)
            state.lines.append(event.wire_json())
            self._index.add(event)
            state.last_seq = seq
            state.head_hash = event.hash
            expected = seq + 1
            report.replayed += 1
        report.dropped_seqs += seq_ranges(lost)
        report.dropped_seqs.sort()

    def _segment_may_extend(self, name: str) -> bool:
        live = self._catalog.live
        return bool(live) and live[-1].file == name

    def _fix_journal_tail(self, path: Path, good_length: int, add_newline: bool) -> None:
        """Cut a torn last line (else the next append glues onto it) or finish a whole one."""
        try:
            # O_APPEND: the newline goes after the cut, wherever the file offset was.
            fd = self._disk.open_append(path)
            try:
                self._disk.ftruncate(fd, good_length)
                if add_newline:
                    self._disk.write_all(fd, b"\n")
                self._disk.fsync(fd)
            finally:
                self._disk.close(fd)
        except OSError as exc:
            # Left as is, it is cut again at the next open; appends go to a new journal.
            log.error("could not repair journal %s: %s", path.name, exc)

    # ---------------------------------------------------------------- the sync cursor

    def _read_base(self) -> tuple[int, str] | None:
        path = self._folder.base_path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            seq, head = int(data["seq"]), str(data["hash"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            # Written atomically, so only bit rot gets here: the log then starts from 1 again,
            # which the centre shows as a fork rather than losing anything.
            self._quarantine.keep(path.name, raw)
            return None
        return (seq, head) if seq > 0 else None

    def _read_cursor(self) -> None:
        path = self._folder.cursor_path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        try:
            self._state.acked = int(json.loads(raw)["acknowledged_seq"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            self._quarantine.keep(path.name, raw)
            self.report.cursor_reset = True
            self._state.acked = 0
