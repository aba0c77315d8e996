"""The fold: the journal's events into segments, then a new manifest, off the scan's thread.

Every `checkpoint_events` appends, the append asks the background writer (`FoldWriter`) for a
fold and returns: the scan pays its journal line and one fsync, nothing more. The fold then, under
the fold lock (one fold at a time) and taking the log's lock only for moments:

1. makes the next journal (a file and an fsync of the folder), outside the log's lock;
2. under the log's lock: takes the buffered events as its batch, the index as it is, a copy of
   the catalogue, and switches appends to the journal made in 1 (a swap of descriptors);
3. writes the batch into the open segment (a new segment when it is full) by atomic replace, the
   file's bytes made from the previous image's bytes and the events' journal lines;
4. under the log's lock: commits, so reads find the batch in the segments instead of the buffer;
5. moves old acknowledged segments to archive/ (retention);
6. writes the manifest (as of the batch's last event), and only then deletes the journals the
   manifest covers.

Nothing a fold does can undo a confirmed event: until 4 the batch is read from the buffer, until
6 it is in a journal, and a crash anywhere is repaired at open (a segment written without its
manifest is taken in, see recovery.py). A fold that fails is put off by another batch.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from kiosk.store.catalog import SegmentCatalog
from kiosk.store.config import StoreConfig
from kiosk.store.diskio import DiskIO, atomic_write_bytes
from kiosk.store.folder import LogFolder
from kiosk.store.index import CadreIndex
from kiosk.store.journal import JournalWriter
from kiosk.store.manifest import ManifestBasis, write_manifest
from kiosk.store.retention import Retention
from kiosk.store.segments import SegmentImage, SegmentMeta, segment_name
from kiosk.store.state import LogState
from sync.events import Event

log = logging.getLogger(__name__)

# The fold's own Python work (documents for the new events, the index's JSON) is cut into short
# runs with a real sleep between them. A thread waiting for the interpreter lock gets it only
# after the switch interval (5 ms) unless the running thread lets go: a scan whose fsync has
# just returned must not wait for the fold's arithmetic.
PAUSE_EVERY = 16
PAUSE_S = 0.0001


def pause() -> None:
    time.sleep(PAUSE_S)


@dataclass
class _Batch:
    """What a fold took under the log's lock."""

    events: list[Event]
    lines: list[bytes]
    basis: ManifestBasis
    live: list[SegmentMeta]  # copies: the fold updates them and commits them whole


class Fold:
    """One fold at a time: callers hold the fold lock, never the log's lock."""

    def __init__(
        self,
        config: StoreConfig,
        folder: LogFolder,
        disk: DiskIO,
        lock: threading.RLock,
        state: LogState,
        catalog: SegmentCatalog,
        index: CadreIndex,
        journal: JournalWriter,
        retention: Retention,
    ) -> None:
        self._config = config
        self._folder = folder
        self._disk = disk
        self._lock = lock
        self._state = state
        self._catalog = catalog
        self._index = index
        self._journal = journal
        self._retention = retention
        self._deferred_until = 0  # guarded by the log's lock

    def due(self) -> bool:
        """Whether the appends since the last fold make a batch (or the batch a failed fold put
        off to). Called under the log's lock."""
        due = max(self._config.checkpoint_events, self._deferred_until)
        return len(self._state.buffer) >= due

    def run_if_due(self) -> None:
        """Fold when the buffer makes a batch (appends that came while a fold ran asked again,
        for a batch that fold may have taken); on failure try again after another batch. The
        batch's events are safe in the journal whatever happens here."""
        with self._lock:
            if not self.due():
                return
        try:
            self.run()
        except Exception as exc:
            with self._lock:
                self._deferred_until = len(self._state.buffer) + self._config.checkpoint_events
            log.warning("checkpoint put off: %s", exc)

    def run(self, *, archive_before: datetime | None = None, force_manifest: bool = False) -> int:
        """Fold every buffered event, then archive (segments older than `archive_before`, or the
        retention setting's age), then write the manifest. Raises when a write fails: a failed
        segment write commits nothing; a failed retention or manifest write leaves the batch
        committed, and in the journal until a later manifest covers it. Returns how many
        segments moved to archive/."""
        if self._state.buffer:  # a hint, read without the lock: at worst a spare made early
            self._journal.prepare(self._state.last_seq + 1)
        with self._lock:
            batch = self._take_batch()
        if batch.events:
            self._write_segments(batch)
        cutoff = archive_before
        if cutoff is None and batch.events and self._config.retention_days is not None:
            # Age is measured back from the newest event's time (the log has no clock of its
            # own); a wrong clock only moves a segment early or late.
            cutoff = batch.events[-1].device_time - timedelta(days=self._config.retention_days)
        moved = 0
        retention_error: OSError | None = None
        if cutoff is not None:
            try:
                moved = self._retention.move(cutoff)
            except OSError as exc:
                retention_error = exc
                if archive_before is None:
                    log.warning("old events not archived yet: %s", exc)
        if batch.events or moved or force_manifest:
            with self._lock:
                live, archived = list(self._catalog.live), list(self._catalog.archived)
            write_manifest(
                self._disk, self._folder, batch.basis, live, archived, self._index, pause
            )
            with self._lock:
                self._deferred_until = 0
            self._journal.release(batch.basis.through)
        if retention_error is not None and archive_before is not None:
            raise retention_error
        return moved

    def _take_batch(self) -> _Batch:
        state = self._state
        events, lines = list(state.buffer), list(state.lines)
        if events:
            basis = ManifestBasis(events[-1].seq, events[-1].hash, self._index.snapshot())
            self._journal.switch(state.last_seq)
        else:
            # Nothing buffered: the index is as of `through` already.
            basis = ManifestBasis(state.through, state.head_hash, self._index.snapshot())
        # Only the open segment's entry changes in a fold (and new ones are added): copy it.
        live = list(self._catalog.live)
        if live and not live[-1].sealed:
            live[-1] = dataclasses.replace(live[-1])
        return _Batch(events, lines, basis, live)

    def _write_segments(self, batch: _Batch) -> None:
        """Steps 3 and 4: the batch into segment files, then committed under the log's lock."""
        metas = batch.live
        images: dict[str, SegmentImage] = {}
        written: list[str] = []
        position = 0
        events = batch.events
        while position < len(events):
            if not metas or metas[-1].sealed:
                first = events[position].seq
                metas.append(
                    SegmentMeta(segment_name(first), first, first - 1, 0, None, None, False, 0)
                )
                images[metas[-1].file] = SegmentImage.empty(metas[-1].file)
            meta = metas[-1]
            image = images.get(meta.file) or self._catalog.image_for(meta)
            room = max(self._config.segment_events - meta.count, 1)
            chunk = events[position : position + room]
            lines = batch.lines[position : position + room]
            entries = []
            for number, (event, line) in enumerate(zip(chunk, lines, strict=True)):
                entries.append((event.seq, line, event.wire()))
                if number % PAUSE_EVERY == PAUSE_EVERY - 1:
                    pause()
            image = image.extended(entries)
            atomic_write_bytes(self._disk, self._folder.segment_dir / meta.file, image.raw)
            images[meta.file] = image
            written.append(meta.file)
            self._update_meta(meta, chunk, image)
            position += len(chunk)
        last = metas[-1]
        open_image = None if last.sealed else images[last.file]
        with self._lock:
            state, catalog = self._state, self._catalog
            catalog.live = metas
            catalog.reindex()
            catalog.commit_open(open_image, written)
            state.through = events[-1].seq
            del state.buffer[: len(events)]
            del state.lines[: len(events)]

    def _update_meta(self, meta: SegmentMeta, chunk: list[Event], image: SegmentImage) -> None:
        times = [e.device_time for e in chunk]
        if meta.min_time:
            times.append(datetime.fromisoformat(meta.min_time))
        if meta.max_time:
            times.append(datetime.fromisoformat(meta.max_time))
        meta.min_time = min(times).isoformat()
        meta.max_time = max(times).isoformat()
        meta.count = len(image.docs)
        meta.last = max(meta.last, chunk[-1].seq)
        meta.bytes = len(image.raw)
        meta.sealed = meta.count >= self._config.segment_events


class FoldWriter:
    """The background thread that runs the folds appends ask for."""

    def __init__(self, fold: Fold, fold_lock: threading.Lock, name: str) -> None:
        self._fold = fold
        self._fold_lock = fold_lock
        self._cond = threading.Condition()
        self._requested = False
        self._running = False
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a fold; returns at once (called by appends, under the log's lock)."""
        with self._cond:
            self._requested = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no fold is asked for or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not (self._requested or self._running) or self._stopping, timeout
            )

    def stop(self) -> None:
        """Finish the fold under way (not those asked for since) and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._requested or self._stopping)
                if self._stopping:
                    self._requested = False
                    self._cond.notify_all()
                    return
                self._requested, self._running = False, True
            try:
                with self._fold_lock:
                    self._fold.run_if_due()
            except Exception:  # never let the thread die: appends stay durable without it
                log.exception("fold failed")
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()
