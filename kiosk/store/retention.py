"""Retention: sealed segments whose events the centre acknowledged, and that are old enough, move
from segments/ to archive/. Nothing is deleted; archived events stay readable (sync, export)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from kiosk.store.catalog import SegmentCatalog
from kiosk.store.config import StoreConfig
from kiosk.store.diskio import DiskIO, StoreWriteError
from kiosk.store.folder import LogFolder
from kiosk.store.state import LogState
from sync.events import Event

log = logging.getLogger(__name__)


class Retention:
    """Called under the log's lock, after a fold (the manifest must not lag the journal)."""

    def __init__(
        self,
        folder: LogFolder,
        disk: DiskIO,
        config: StoreConfig,
        state: LogState,
        catalog: SegmentCatalog,
        write_manifest: Callable[[], None],
    ) -> None:
        self._folder = folder
        self._disk = disk
        self._config = config
        self._state = state
        self._catalog = catalog
        self._write_manifest = write_manifest

    def archive(self, older_than: datetime) -> int:
        """Move every sealed, acknowledged segment whose newest event is older than `older_than`.
        Returns how many moved; raises StoreWriteError when the disk refuses (what moved so far
        is recorded at the next open at the latest)."""
        catalog = self._catalog
        moved = 0
        for meta in list(catalog.live):
            if not meta.sealed or meta.last > self._state.acked or meta.max_time is None:
                continue
            if datetime.fromisoformat(meta.max_time) >= older_than:
                continue
            catalog.forget(meta.file)
            try:
                self._disk.replace(
                    self._folder.segment_dir / meta.file, self._folder.archive_dir / meta.file
                )
                self._disk.fsync_dir(self._folder.archive_dir)
                self._disk.fsync_dir(self._folder.segment_dir)
            except OSError as exc:
                if moved:
                    catalog.reindex()
                raise StoreWriteError("could not archive old events", exc) from exc
            catalog.live.remove(meta)
            catalog.archived.append(meta)
            moved += 1
        if moved:
            catalog.reindex()
            try:
                self._write_manifest()
            except OSError as exc:
                # The open-time check finishes the move from the files themselves.
                raise StoreWriteError("could not record archived segments", exc) from exc
        return moved

    def after_fold(self, newest: Event) -> None:
        """With `retention_days` set: age is measured back from the newest event's time (the
        log has no clock of its own); a wrong clock only moves a segment early or late."""
        if self._config.retention_days is None:
            return
        try:
            self.archive(newest.device_time - timedelta(days=self._config.retention_days))
        except OSError as exc:
            log.warning("old events not archived yet: %s", exc)
