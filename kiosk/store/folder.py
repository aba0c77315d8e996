"""The log's folder: where each kind of file lives, and the lock that keeps a second process out.

LOCK                         flock'd while open: one process writes a log
journal/journal-<seq>.jsonl  events not yet in a segment, one JSON line each (durability point)
segments/seg-<seq>.json      TinyDB files of at most `segment_events` events, atomic writes
archive/seg-<seq>.json       segments moved out by retention (acknowledged and old)
manifest.json                segment list, the seq they cover, and the per-cadre index
cursor.json                  the highest seq the centre acknowledged
base.json                    where a log begun after a wipe continues its kiosk's chain: the
                             seq and hash the centre last had (written once, on an empty log)
damaged/                     bytes that could not be read, kept for a person to look at
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from kiosk.store.diskio import DiskIO, make_dirs


class StoreError(Exception):
    """The log cannot be used (locked by another process, closed, unreadable folder)."""


class StoreLocked(StoreError):
    pass


@dataclass(frozen=True)
class LogFolder:
    directory: Path

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

    @property
    def base_path(self) -> Path:
        return self.directory / "base.json"

    def take_lock(self, disk: DiskIO) -> int:
        """Make the folders that are missing and flock LOCK; StoreLocked when another process
        holds it. Returns the descriptor to pass to `release_lock`."""
        try:
            make_dirs(disk, self.directory)
            for sub in (self.journal_dir, self.segment_dir, self.archive_dir):
                if disk.mkdir(sub):
                    disk.fsync_dir(self.directory)
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
        # Folders made by an earlier start that died before syncing their parents, or by
        # someone else (the instance folder): sync them now, before anything is confirmed.
        for folder in (self.directory.parent, self.directory):
            with contextlib.suppress(OSError):
                disk.fsync_dir(folder)
        return fd

    @staticmethod
    def release_lock(fd: int) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)
