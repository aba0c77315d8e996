"""The fold: the journal's events into segments, then a new manifest and a fresh journal.

Every `checkpoint_events` appends (today on the appending thread, under the log's lock) the
buffered events are added to the open segment in one atomic write (a new segment begins when it
is full), the manifest is replaced, the journal rotated, and retention runs. A fold that fails
changes nothing that was confirmed: the events stay in the journal and the buffer, the manifest
keeps its old content, and the next fold is put off by another batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from kiosk.store.catalog import SegmentCatalog
from kiosk.store.config import StoreConfig
from kiosk.store.journal import JournalWriter
from kiosk.store.retention import Retention
from kiosk.store.segments import Segment, SegmentMeta, segment_name
from kiosk.store.state import LogState
from sync.events import Event

log = logging.getLogger(__name__)


class Fold:
    def __init__(
        self,
        config: StoreConfig,
        state: LogState,
        catalog: SegmentCatalog,
        journal: JournalWriter,
        retention: Retention,
        write_manifest: Callable[[], None],
    ) -> None:
        self._config = config
        self._state = state
        self._catalog = catalog
        self._journal = journal
        self._retention = retention
        self._write_manifest = write_manifest
        self._deferred_until = 0

    def due(self) -> bool:
        """Whether the appends since the last fold make a batch (or the batch a failed fold put
        off to)."""
        due = max(self._config.checkpoint_events, self._deferred_until)
        return len(self._state.buffer) >= due

    def run_or_put_off(self) -> None:
        """Fold now; on failure try again after another batch. For the append path: its event
        is safe in the journal whatever happens here."""
        try:
            self.run()
        except Exception as exc:
            self._deferred_until = len(self._state.buffer) + self._config.checkpoint_events
            log.warning("checkpoint put off: %s", exc)

    def run(self) -> None:
        """Fold every buffered event; raises (with nothing changed) when a write fails."""
        state, catalog = self._state, self._catalog
        if not state.buffer:
            return
        metas = [SegmentMeta(**m.as_json()) for m in catalog.live]
        events = state.buffer
        position = 0
        try:
            while position < len(events):
                if not metas or metas[-1].sealed:
                    first = events[position].seq
                    name = segment_name(first)
                    metas.append(SegmentMeta(name, first, first - 1, 0, None, None, False, 0))
                meta = metas[-1]
                segment = catalog.for_write(meta.file)
                room = self._config.segment_events - meta.count
                chunk = events[position : position + max(room, 1)]
                segment.add((e.seq, e.wire()) for e in chunk)
                self._update_meta(meta, chunk, segment)
                position += len(chunk)
        except BaseException:
            catalog.drop_open()
            raise
        through_event = events[-1]
        previous = (catalog.live, state.through)
        catalog.live, state.through = metas, through_event.seq
        catalog.reindex()
        buffered, state.buffer = state.buffer, []
        try:
            self._write_manifest()
        except BaseException:
            catalog.live, state.through = previous
            state.buffer = buffered
            catalog.reindex()
            raise
        self._deferred_until = 0
        self._journal.rotate(state.through + 1)
        self._retention.after_fold(through_event)

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
        if meta.count >= self._config.segment_events:
            meta.sealed = True
            self._catalog.drop_open()
