"""Retention: sealed segments whose events the centre acknowledged, and that are old enough, move
from segments/ to archive/. Nothing is deleted; archived events stay readable (sync, export).

Run by the fold, after it committed its batch and before it writes the manifest, so the manifest
that lists a segment as archived is written only once the move is on disk.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from kiosk.store.catalog import SegmentCatalog
from kiosk.store.diskio import DiskIO, StoreWriteError
from kiosk.store.folder import LogFolder
from kiosk.store.state import LogState

log = logging.getLogger(__name__)


class Retention:
    def __init__(
        self,
        folder: LogFolder,
        disk: DiskIO,
        lock: threading.RLock,
        state: LogState,
        catalog: SegmentCatalog,
    ) -> None:
        self._folder = folder
        self._disk = disk
        self._lock = lock
        self._state = state
        self._catalog = catalog

    def move(self, older_than: datetime) -> int:
        """Move every sealed, acknowledged segment whose newest event is older than `older_than`.
        Returns how many moved; raises StoreWriteError when the disk refuses (what moved before
        stays moved, and the caller's manifest records it)."""
        catalog, folder = self._catalog, self._folder
        moved = 0
        failure: OSError | None = None
        with self._lock:
            due = [
                meta
                for meta in catalog.live
                if meta.sealed
                and meta.last <= self._state.acked
                and meta.max_time is not None
                and datetime.fromisoformat(meta.max_time) < older_than
            ]
        for meta in due:
            # One rename under the lock: a reader finds the file where the catalogue says it is.
            with self._lock:
                try:
                    self._disk.replace(
                        folder.segment_dir / meta.file, folder.archive_dir / meta.file
                    )
                except OSError as exc:
                    failure = exc
                    break
                catalog.forget(meta.file)
                catalog.live.remove(meta)
                catalog.archived.append(meta)
                catalog.reindex()
            moved += 1
        if moved:
            try:
                self._disk.fsync_dir(folder.archive_dir)
                self._disk.fsync_dir(folder.segment_dir)
            except OSError as exc:
                failure = failure or exc
        if failure is not None:
            raise StoreWriteError("could not archive old events", failure)
        return moved
