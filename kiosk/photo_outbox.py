"""The photos waiting for the centre: the sync agent's photo channel (sync/agent.py PhotoQueue).

A photo goes only after its event is acknowledged by the centre, in the log's order. A cursor,
`photos/sent.json`, holds the seq through which every event's photo is settled: sent, or gone
(never written, or purged by retention before it could go). It moves only after the centre
answered, so a kiosk that stops mid-way sends the rest after its restart (the centre keeps a
photo once, by its hash, so a batch sent twice is harmless).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from kiosk.photos import PhotoStore
from kiosk.store import EventLog
from kiosk.store.diskio import DiskIO, atomic_write_json
from sync.agent import PhotoToSend, PhotoWork

CURSOR_FILE = "sent.json"
# Events read per look: the log's lock is held while they are read.
EVENTS_PER_LOOK = 100


class PhotoOutbox:
    def __init__(self, log: EventLog, store: PhotoStore, disk: DiskIO | None = None) -> None:
        self.log = log
        self.store = store
        self.disk = disk or DiskIO()
        self.path: Path = store.folder / CURSOR_FILE
        self._lock = threading.Lock()
        self._through = self._load()

    def _load(self) -> int:
        try:
            value = json.loads(self.path.read_text())["through_seq"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return value if isinstance(value, int) and value >= 0 else 0

    @property
    def through_seq(self) -> int:
        return self._through

    def waiting(self) -> int:
        """Events acknowledged by the centre whose photos are not settled yet (with or without
        a photo: an upper bound, read without touching the log's files)."""
        return max(0, self.log.acknowledged_seq - self._through)

    def next_photos(self, max_count: int, max_bytes: int) -> PhotoWork | None:
        with self._lock:
            cursor = self._through
        acked = self.log.acknowledged_seq
        if cursor >= acked:
            return None
        photos: list[PhotoToSend] = []
        size = 0
        through = cursor
        for event in self.log.events_after(cursor, EVENTS_PER_LOOK):
            if event.seq > acked:
                break
            digest = event.photo_sha256
            if digest is not None:
                if self.store.is_pending(digest):
                    break  # still being written: wait for it
                data = self.store.read(digest)
                if data is not None:
                    if photos and (len(photos) >= max_count or size + len(data) > max_bytes):
                        break
                    photos.append(PhotoToSend(digest, event.event_id, data))
                    size += len(data)
            through = event.seq
        if through == cursor:
            return None
        return PhotoWork(photos, through)

    def photos_sent(self, through_seq: int) -> None:
        with self._lock:
            if through_seq <= self._through:
                return
            atomic_write_json(self.disk, self.path, {"through_seq": through_seq})
            self._through = through_seq
