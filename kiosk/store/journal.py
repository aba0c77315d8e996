"""The append-only journal: one JSON line per event, fsync'd before the event is confirmed.

This is the durability point of the log. Appending a line and one fsync cost the same whether the
log holds ten events or a million. Segments receive the journal's events in batches at checkpoints
(the fold). When a fold takes its batch, appends move to a fresh journal the fold made beforehand
(so the switch costs the appending thread nothing), and the old one is deleted once a manifest
that covers its last event is on disk.
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


def open_new_journal(
    folder: Path, disk: DiskIO, first_seq: int, avoid: frozenset[Path] = frozenset()
) -> Journal:
    """A fresh journal named after `first_seq` (a hint for ordering: replay goes by the seqs in
    the lines). A non-empty file of that name can only hold bytes that were not replayed
    (garbage that could not be cut off): it is never continued, nor is a file in `avoid`."""
    attempt = 0
    while True:
        path = folder / journal_name(first_seq, attempt)
        if path not in avoid and (not path.exists() or path.stat().st_size == 0):
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
    """The journal appends go to, a fresh one made ahead for the next fold, and older ones kept
    until their events are in a segment the manifest lists.

    `start`, `append` and `switch` run under the log's lock; `prepare` and `release` in the fold,
    which holds the fold lock (so only one fold at a time touches the spare and the retired)."""

    def __init__(self, folder: Path, disk: DiskIO) -> None:
        self._folder = folder
        self._disk = disk
        self._current: Journal | None = None
        self._spare: Journal | None = None
        self._retired: list[tuple[Path, int]] = []  # (journal, the last seq it can hold)

    def _in_use(self) -> frozenset[Path]:
        paths = {path for path, _last in self._retired}
        paths.update(j.path for j in (self._current, self._spare) if j is not None)
        return frozenset(paths)

    def start(self, first_seq: int) -> None:
        """Appends go to a fresh journal from `first_seq` on; the journals already there hold
        nothing after `first_seq - 1` and go when a manifest covers that."""
        for _first, _attempt, path in iter_journal_files(self._folder):
            self._retired.append((path, first_seq - 1))
        try:
            self._current = open_new_journal(self._folder, self._disk, first_seq, self._in_use())
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
                self._current = open_new_journal(self._folder, self._disk, seq, self._in_use())
            except OSError as exc:
                raise StoreWriteError("could not store the event", exc) from exc
        self._current.append(line)

    def prepare(self, first_seq_hint: int) -> None:
        """Make the next journal now (a file and an fsync of the folder), outside the log's
        lock, so that `switch` only swaps descriptors. When it cannot be made, the fold goes on
        and appends stay in the current journal."""
        if self._spare is not None:
            return
        try:
            self._spare = open_new_journal(self._folder, self._disk, first_seq_hint, self._in_use())
        except OSError as exc:
            log.warning("next journal not made (%s); appends stay in the current one", exc)

    def switch(self, last_seq: int) -> None:
        """The fold takes every event up to `last_seq`: appends go to the spare from here on,
        and the current journal is kept until a manifest covers `last_seq`."""
        if self._spare is None:
            return
        if self._current is not None:
            self._current.close()
            self._retired.append((self._current.path, last_seq))
        self._current, self._spare = self._spare, None

    def release(self, through: int) -> None:
        """A manifest covering `through` is on disk: delete the journals that hold nothing
        after it."""
        done = [path for path, last in self._retired if last <= through]
        if not done:
            return
        for path in done:
            try:
                self._disk.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("old journal %s not deleted yet: %s", path.name, exc)
                continue
            self._retired = [(p, last) for p, last in self._retired if p != path]
        with contextlib.suppress(OSError):
            self._disk.fsync_dir(self._folder)

    def close(self) -> None:
        for journal in (self._current, self._spare):
            if journal is not None:
                journal.close()
        if self._spare is not None:
            with contextlib.suppress(OSError):
                self._disk.unlink(self._spare.path)
        self._current = self._spare = None
