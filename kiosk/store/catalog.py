"""The catalogue of segment files: which seqs each holds, live or archived, a few kept parsed.

What the manifest records of each segment (`SegmentMeta`) lives here, so most questions (which
segment holds seq 4711? which hold yesterday?) need not open a file. Reads keep the last
`segment_cache` segments parsed; the fold writes through the one open segment.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from pathlib import Path
from typing import Any

from kiosk.store.config import StoreConfig
from kiosk.store.damage import Quarantine
from kiosk.store.diskio import DiskIO
from kiosk.store.folder import LogFolder
from kiosk.store.segments import Segment, SegmentDamaged, SegmentMeta
from sync.events import Event


def meta_of(name: str, first: int, events: list[Event], path: Path) -> SegmentMeta:
    """A segment's entry as learnt from its events (when the manifest cannot say)."""
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


class SegmentCatalog:
    """Live segments (segments/) and archived ones (archive/), each sorted by first seq. Not
    thread-safe: the log calls it under its own lock."""

    def __init__(
        self, folder: LogFolder, disk: DiskIO, config: StoreConfig, quarantine: Quarantine
    ) -> None:
        self._folder = folder
        self._disk = disk
        self._config = config
        self._quarantine = quarantine
        self.live: list[SegmentMeta] = []
        self.archived: list[SegmentMeta] = []
        self._firsts: list[int] = []
        self._open: Segment | None = None
        self._cache: OrderedDict[str, Segment] = OrderedDict()

    def reindex(self) -> None:
        """After `live` or `archived` changed: sort them and rebuild the seq lookup."""
        self.live.sort(key=lambda m: m.first)
        self.archived.sort(key=lambda m: m.first)
        self._firsts = [m.first for m in self.live]

    def clear(self) -> None:
        self.live, self.archived = [], []

    def holding(self, seq: int) -> SegmentMeta | None:
        index = bisect.bisect_right(self._firsts, seq) - 1
        if index >= 0 and self.live[index].first <= seq <= self.live[index].last:
            return self.live[index]
        for meta in self.archived:
            if meta.first <= seq <= meta.last:
                return meta
        return None

    def path_of(self, meta: SegmentMeta) -> Path:
        folder = self._folder.archive_dir if meta in self.archived else self._folder.segment_dir
        return folder / meta.file

    def docs(self, meta: SegmentMeta) -> dict[str, dict[str, Any]]:
        """The documents of a segment by str(seq), parsed once and kept among the last few."""
        if self._open is not None and self._open.path.name == meta.file:
            return self._open.docs()
        segment = self._cache.get(meta.file)
        if segment is None:
            path = self.path_of(meta)
            segment = Segment(path, self._disk)
            try:
                segment.docs()
            except SegmentDamaged:
                # Damaged after the open-time check (bit rot): salvage what is whole.
                self._quarantine.segment_docs(path)
                segment = Segment(path, self._disk)
            self._cache[meta.file] = segment
            while len(self._cache) > self._config.segment_cache:
                _name, dropped = self._cache.popitem(last=False)
                dropped.close()
        else:
            self._cache.move_to_end(meta.file)
        return segment.docs()

    def for_write(self, name: str) -> Segment:
        """The live segment `name`, open for adding documents (the fold's only writer)."""
        if self._open is None or self._open.path.name != name:
            self.drop_open()
            self.forget(name)
            segment = Segment(self._folder.segment_dir / name, self._disk)
            try:
                segment.docs()
            except SegmentDamaged:
                # Damaged since it was last read: keep what is whole before adding to it.
                self._quarantine.segment_docs(segment.path)
                segment = Segment(self._folder.segment_dir / name, self._disk)
            self._open = segment
        return self._open

    def drop_open(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None

    def forget(self, name: str) -> None:
        """Close a parsed copy kept for reads (the file is about to change or move)."""
        stale = self._cache.pop(name, None)
        if stale is not None:
            stale.close()

    def close(self) -> None:
        self.drop_open()
        for segment in self._cache.values():
            segment.close()
        self._cache.clear()
