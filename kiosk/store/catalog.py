"""The catalogue of segment files: which seqs each holds, live or archived, a few kept parsed.

What the manifest records of each segment (`SegmentMeta`) lives here, so most questions (which
segment holds seq 4711? which hold yesterday?) need not open a file. Reads keep the last
`segment_cache` segments parsed; the open segment (the one folds add to) is held as the fold last
wrote it (`SegmentImage`), swapped for the next one when a fold commits.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiosk.store.config import StoreConfig
from kiosk.store.damage import Quarantine
from kiosk.store.diskio import DiskIO
from kiosk.store.folder import LogFolder
from kiosk.store.segments import Segment, SegmentDamaged, SegmentImage, SegmentMeta
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
    thread-safe: the log calls it under its own lock (`image_for` aside, see there)."""

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
        self._open: SegmentImage | None = None
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
        archived = any(m is meta for m in self.archived)
        here, there = self._folder.archive_dir, self._folder.segment_dir
        if not archived:
            here, there = there, here
        # A move to archive/ that recovery could not finish (a read-only disk): read it where
        # it is rather than as an empty segment.
        if not (here / meta.file).exists() and (there / meta.file).exists():
            return there / meta.file
        return here / meta.file

    def docs(self, meta: SegmentMeta) -> Mapping[str, dict[str, Any]]:
        """The documents of a segment by str(seq), parsed once and kept among the last few."""
        if self._open is not None and self._open.name == meta.file:
            return self._open.docs
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

    @property
    def open_image(self) -> SegmentImage | None:
        return self._open

    def image_for(self, meta: SegmentMeta) -> SegmentImage:
        """The open segment `meta` as the next fold starts from it: the image the last fold
        left, or the file as it is (only the seqs `meta` lists). For the fold, which is the only
        writer of segment files: it may run outside the log's lock."""
        current = self._open
        if current is not None and current.name == meta.file:
            return current
        path = self._folder.segment_dir / meta.file
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return SegmentImage.empty(meta.file)
        found = self._quarantine.segment_docs(path)  # salvaged and rewritten when damaged
        if meta.file in self._quarantine.report.damaged_segments:
            raw = path.read_bytes()
        kept = {str(seq): doc for seq, doc in found.items() if meta.first <= seq <= meta.last}
        return SegmentImage.of(meta.file, raw, kept)

    def commit_open(self, image: SegmentImage | None, written: list[str]) -> None:
        """A fold wrote the files `written`; `image` is the open segment now (None: the last
        one written was sealed). Parsed copies of the old files are dropped."""
        for name in written:
            self.forget(name)
        self._open = image

    def forget(self, name: str) -> None:
        """Close a parsed copy kept for reads (the file is about to change or move)."""
        stale = self._cache.pop(name, None)
        if stale is not None:
            stale.close()
        if self._open is not None and self._open.name == name:
            self._open = None

    def close(self) -> None:
        self._open = None
        for segment in self._cache.values():
            segment.close()
        self._cache.clear()
