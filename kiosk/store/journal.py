"""The append-only journal: one JSON line per event, fsync'd before the event is confirmed.

This is the durability point of the log. Appending a line and one fsync cost the same whether the
log holds ten events or a million. Segments receive the journal's events in batches at checkpoints
(the fold); a journal whose events are all in segments is deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiosk.store.diskio import DiskIO, StoreWriteError

log = logging.getLogger(__name__)

JOURNAL_GLOB = "journal-*.jsonl"
# journal-<first seq>[.<n>].jsonl: the suffix is used when a file of that name holds bytes
# that could not be cut off, so a new journal never continues after garbage.
_JOURNAL_NAME = re.compile(r"journal-(\d{12})(?:\.(\d+))?\.jsonl")


def journal_name(first_seq: int, attempt: int = 0) -> str:
    suffix = f".{attempt}" if attempt else ""
    return f"journal-{first_seq:012d}{suffix}.jsonl"


def iter_journal_files(folder: Path) -> Iterator[tuple[int, int, Path]]:
    found = []
    for path in folder.glob(JOURNAL_GLOB):
        match = _JOURNAL_NAME.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2) or 0), path))
    yield from sorted(found)


@dataclass
class JournalScan:
    """What a journal file holds: whole records, and what could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    good_length: int = 0  # bytes up to the end of the last whole line
    torn_tail: bytes = b""  # an unfinished last line (a write cut by a crash)
    bad_lines: list[bytes] = field(default_factory=list)  # whole lines that do not parse
    needs_newline: bool = False  # a complete record whose newline never reached the disk
    # Where the last readable record ends: unreadable lines after it were written after every
    # event this file confirmed (in the newest journal, the line a power cut caught in flight).
    last_record_end: int = 0
    trailing_bad: int = 0  # how many of `bad_lines` come after the last readable record

    @property
    def after_last_record(self) -> int:
        """Bytes after the last readable record: unreadable lines and a torn tail."""
        return self.good_length - self.last_record_end + len(self.torn_tail)


def scan_journal(raw: bytes) -> JournalScan:
    scan = JournalScan()
    position = 0
    while position < len(raw):
        end = raw.find(b"\n", position)
        if end < 0:
            tail = raw[position:]
            record = _parse(tail)
            if record is not None:
                # The record is whole, only the newline is missing: the data reached the disk.
                scan.records.append(record)
                scan.good_length = scan.last_record_end = len(raw)
                scan.needs_newline = True
                scan.trailing_bad = 0
            else:
                scan.torn_tail = tail
            break
        line = raw[position:end]
        record = _parse(line)
        position = end + 1
        if record is not None:
            scan.records.append(record)
            scan.last_record_end = position
            scan.trailing_bad = 0
        elif line.strip():
            scan.bad_lines.append(line)
            scan.trailing_bad += 1
        scan.good_length = position
    return scan


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


class Journal:
    """An open journal file. Not thread-safe: the log calls it under its own lock."""

    def __init__(self, path: Path, disk: DiskIO, length: int) -> None:
        self.path = path
        self._disk = disk
        self._fd = disk.open_append(path)
        self._length = length
        # Set when a failed append may have left bytes past `_length` that could not be removed.
        self._needs_repair = False

    @property
    def length(self) -> int:
        return self._length

    def append(self, line: bytes) -> None:
        """Write one line and fsync it. On failure the file is cut back to where it was."""
        if self._needs_repair:
            self._repair()
        try:
            self._disk.write_all(self._fd, line)
            self._disk.fsync(self._fd)
        except OSError as exc:
            self._needs_repair = True
            with contextlib.suppress(StoreWriteError):
                self._repair()
            raise StoreWriteError("could not store the event", exc) from exc
        self._length += len(line)

    def _repair(self) -> None:
        """Cut off a partial line so the next record does not glue onto garbage."""
        try:
            self._disk.ftruncate(self._fd, self._length)
            self._disk.fsync(self._fd)
        except OSError as exc:
            raise StoreWriteError("the journal cannot be repaired yet", exc) from exc
        self._needs_repair = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._disk.close(self._fd)


def open_new_journal(folder: Path, disk: DiskIO, first_seq: int) -> Journal:
    """A fresh journal named after `first_seq`. A non-empty file of that name can only hold
    bytes that were not replayed (garbage that could not be cut off): it is never continued."""
    attempt = 0
    while True:
        path = folder / journal_name(first_seq, attempt)
        if not path.exists() or path.stat().st_size == 0:
            break
        attempt += 1
    journal = Journal(path, disk, 0)
    try:
        disk.fsync_dir(folder)
    except OSError:
        journal.close()
        raise
    return journal


class JournalWriter:
    """The journal that appends go to: opened at start, opened again by the next append when the
    disk refused it, replaced by a fresh one after each fold. Called under the log's lock."""

    def __init__(self, folder: Path, disk: DiskIO) -> None:
        self._folder = folder
        self._disk = disk
        self._current: Journal | None = None

    def start(self, first_seq: int) -> None:
        try:
            self._current = open_new_journal(self._folder, self._disk, first_seq)
        except OSError as exc:
            # A full or read-only disk at start: the log opens for reading, and every append
            # tries again, so recording resumes by itself when the disk recovers.
            log.error("event log %s cannot be written yet: %s", self._folder.parent, exc)
            self._current = None

    def append(self, seq: int, line: bytes) -> None:
        """Write the line of event `seq` and fsync it: the event is durable when this returns.
        Raises StoreWriteError when the disk refuses (nothing confirmed, nothing damaged)."""
        if self._current is None:
            try:
                self._current = open_new_journal(self._folder, self._disk, seq)
            except OSError as exc:
                raise StoreWriteError("could not store the event", exc) from exc
        self._current.append(line)

    def rotate(self, first_seq: int) -> None:
        """Every event so far is in a segment: start a fresh journal at `first_seq` and delete
        the others. When the fresh one cannot be made, the old one is kept and appended to."""
        old = self._current
        try:
            fresh = open_new_journal(self._folder, self._disk, first_seq)
        except OSError as exc:
            log.warning("journal not rotated (%s); the old one is kept", exc)
            return
        self._current = fresh
        if old is not None:
            old.close()
        for _first, _attempt, path in iter_journal_files(self._folder):
            if path != fresh.path:
                with contextlib.suppress(OSError):
                    self._disk.unlink(path)
        with contextlib.suppress(OSError):
            self._disk.fsync_dir(self._folder)

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
