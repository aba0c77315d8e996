"""The kiosk's photo store: the photo of each camera check-in, beside the log, never inside it.

    photos = PhotoStore(instance / "photos", cap_bytes=..., retention_days=30)
    photos.start()                           # the writer thread
    if photos.can_take(len(jpeg)): ...       # on the scan path: a few comparisons, no disk
    photos.put(sha256, jpeg, day)            # after the event is durable: queued, never waits
    photos.read(sha256)                      # bytes for the lead page and the sync agent
    photos.purge(today)                      # retention: one log line per day purged

Files are `photos/<YYYY-MM-DD>/<sha256>.jpg`, the day the photo was taken (the kiosk's local
date), so retention removes whole days and a file's name is its own checksum. Every write is
atomic (temp file, fsync, rename) and made by the writer thread alone, so neither a slow SD card
nor a full disk ever holds up a scan: a full store (its cap, or the disk's last
`min_free_bytes`, which belong to the event log) or a failing one makes `can_take` False and the
check-in is recorded all the same, flagged `no_photo`.

The event already holds the photo's hash when the write is queued: a power cut in between
leaves a record whose photo is missing, which the review pages show as such.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import cast

from kiosk.store.diskio import (
    DiskIO,
    atomic_write_bytes,
    make_dirs,
    remove_stale_temp_files,
)
from scanner import lower_this_threads_priority

log = logging.getLogger(__name__)

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STOP = object()
# After a failed write the store refuses new photos this long before trying the disk again.
RETRY_AFTER_FAILURE_S = 60.0


@dataclass(frozen=True)
class StoredPhoto:
    sha256: str
    day: date
    size: int

    def path(self, folder: Path) -> Path:
        return folder / self.day.isoformat() / f"{self.sha256}.jpg"


@dataclass(frozen=True)
class PhotoStoreState:
    count: int
    bytes: int
    cap_bytes: int
    queued: int
    written: int
    refused: int
    failed: int
    problem: str  # "" when the store takes photos


class PhotoStore:
    def __init__(
        self,
        folder: Path,
        *,
        cap_bytes: int,
        retention_days: int,
        min_free_bytes: int = 200 * 1024 * 1024,
        queue_size: int = 64,
        disk: DiskIO | None = None,
        disk_free: Callable[[Path], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self.cap_bytes = cap_bytes
        self.retention_days = retention_days
        self.min_free_bytes = min_free_bytes
        self.disk = disk or DiskIO()
        self._disk_free = disk_free or (lambda path: shutil.disk_usage(path).free)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._index: dict[str, StoredPhoto] = {}
        self._bytes = 0
        self._pending_bytes = 0
        self._pending: set[str] = set()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._failed_at: float | None = None
        self._free_bytes: int | None = None
        self._free_checked_at = -1e18
        self.problem = ""
        self.written = 0
        self.refused = 0
        self.failed = 0
        make_dirs(self.disk, folder)
        self._load()

    # ------------------------------------------------------------------ lifetime

    def _load(self) -> None:
        for day_folder in sorted(self.folder.iterdir()):
            if not day_folder.is_dir() or not _DAY_PATTERN.match(day_folder.name):
                continue
            try:
                day = date.fromisoformat(day_folder.name)
            except ValueError:
                continue
            remove_stale_temp_files(self.disk, day_folder)
            for entry in os.scandir(day_folder):
                name = entry.name
                if not name.endswith(".jpg") or not SHA256_PATTERN.match(name[:-4]):
                    continue
                size = entry.stat().st_size
                self._index[name[:-4]] = StoredPhoto(name[:-4], day, size)
                self._bytes += size

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._write_loop, name="photo-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    # ------------------------------------------------------------------ the scan path

    def can_take(self, size: int) -> bool:
        """Whether a photo of `size` bytes would be kept now. Cheap: no disk access but a
        free-space reading at most once a second."""
        with self._lock:
            if self._failed_at is not None:
                if self._monotonic() - self._failed_at < RETRY_AFTER_FAILURE_S:
                    self.refused += 1
                    return False
                self._failed_at = None
            if self._bytes + self._pending_bytes + size > self.cap_bytes:
                self.problem = "full"
                self.refused += 1
                return False
            if self._queue.full():
                self.problem = "busy"
                self.refused += 1
                return False
            now = self._monotonic()
            if now - self._free_checked_at >= 1.0:
                self._free_checked_at = now
                try:
                    self._free_bytes = self._disk_free(self.folder)
                except OSError:
                    self._free_bytes = None
            if self._free_bytes is not None and self._free_bytes - size < self.min_free_bytes:
                self.problem = "disk_full"
                self.refused += 1
                return False
            self.problem = ""
            return True

    def put(self, sha256: str, jpeg: bytes, day: date) -> bool:
        """Queue the photo for writing; False (and logged) if the queue filled meanwhile."""
        if not SHA256_PATTERN.match(sha256):
            raise ValueError("not a sha256")
        with self._lock:
            if sha256 in self._index:
                return True
            self._pending_bytes += len(jpeg)
            self._pending.add(sha256)
        try:
            self._queue.put_nowait((sha256, jpeg, day))
        except queue.Full:
            with self._lock:
                self._pending_bytes -= len(jpeg)
                self._pending.discard(sha256)
            log.warning("photo %s… dropped: the writer is behind", sha256[:12])
            return False
        return True

    # ------------------------------------------------------------------ the writer thread

    def _write_loop(self) -> None:
        # Its fsyncs and the JPEGs' writes come after the scan they belong to, never before the
        # next one: the scan loop's threads go first.
        lower_this_threads_priority()
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            sha256, jpeg, day = cast(tuple[str, bytes, date], item)
            try:
                self.write_now(sha256, jpeg, day)
            except Exception:  # a bug must not end the writer: the next photo may work
                log.exception("writing photo %s… failed", sha256[:12])
            finally:
                with self._lock:
                    self._pending_bytes -= len(jpeg)
                    self._pending.discard(sha256)

    def write_now(self, sha256: str, jpeg: bytes, day: date) -> bool:
        """Write one photo in the caller's thread (the writer; tests). False on a disk error,
        which also makes the store refuse photos for RETRY_AFTER_FAILURE_S."""
        photo = StoredPhoto(sha256, day, len(jpeg))
        path = photo.path(self.folder)
        try:
            make_dirs(self.disk, path.parent)
            atomic_write_bytes(self.disk, path, jpeg)
        except OSError as exc:
            with self._lock:
                self.failed += 1
                self._failed_at = self._monotonic()
                self.problem = "failing"
            log.warning("photo store: %s", exc)
            return False
        with self._lock:
            if sha256 not in self._index:
                self._index[sha256] = photo
                self._bytes += photo.size
            self.written += 1
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued photo is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending_bytes == 0 and self._queue.empty():
                    return True
            time.sleep(0.005)
        return False

    # ------------------------------------------------------------------ reading

    def is_pending(self, sha256: str) -> bool:
        """Queued and not written yet."""
        with self._lock:
            return sha256 in self._pending

    def find(self, sha256: str) -> StoredPhoto | None:
        with self._lock:
            return self._index.get(sha256)

    def read(self, sha256: str) -> bytes | None:
        photo = self.find(sha256)
        if photo is None:
            return None
        try:
            return photo.path(self.folder).read_bytes()
        except OSError:
            return None

    def state(self) -> PhotoStoreState:
        with self._lock:
            return PhotoStoreState(
                count=len(self._index),
                bytes=self._bytes,
                cap_bytes=self.cap_bytes,
                queued=self._queue.qsize(),
                written=self.written,
                refused=self.refused,
                failed=self.failed,
                problem=self.problem,
            )

    # ------------------------------------------------------------------ retention

    def purge(self, today: date) -> list[tuple[date, int]]:
        """Delete the photos of days older than `retention_days` before `today`; one log line
        per day purged. Returns (day, files deleted) for each."""
        oldest_kept = today - timedelta(days=self.retention_days)
        with self._lock:
            days = sorted({p.day for p in self._index.values() if p.day < oldest_kept})
        purged: list[tuple[date, int]] = []
        for day in days:
            folder = self.folder / day.isoformat()
            with self._lock:
                doomed = [p for p in self._index.values() if p.day == day]
            removed = 0
            for photo in doomed:
                try:
                    self.disk.unlink(photo.path(self.folder))
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.warning("photo %s… not deleted: %s", photo.sha256[:12], exc)
                    continue
                removed += 1
                with self._lock:
                    if self._index.pop(photo.sha256, None) is not None:
                        self._bytes -= photo.size
            with contextlib.suppress(OSError):
                remove_stale_temp_files(self.disk, folder)
                folder.rmdir()
            log.info(
                "photos of %s purged: %d files (older than %d days)",
                day.isoformat(),
                removed,
                self.retention_days,
            )
            purged.append((day, removed))
        return purged


def photo_sha256(jpeg: bytes) -> str:
    return hashlib.sha256(jpeg).hexdigest()
