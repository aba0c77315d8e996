"""Check-in photos at the centre: taken from kiosks by hash, kept on disk, purged by retention.

    store = CentralPhotos(instance / "photos")
    store.receive(engine, kiosk, uploads, now, retention_days)   # the photo channel's answers
    store.read(sha256)                                            # bytes for the review pages
    purge_photos(engine, store, today, retention_days)            # a log line per day purged
    photo_retention_duty(store, today, retention_days)            # the same, hourly, as a duty

A photo is kept only when it is the one a record of the sending kiosk names: same event, same
sha256 (inside the record's hash). So a photo never arrives ahead of its record, cannot be
swapped for another, and a second copy is a duplicate. Files are `photos/<ab>/<sha256>.jpg`
(the first two hex digits spread them over 256 folders), written atomically; the `photos` table
says which the centre holds and for which service day, so retention deletes by day without
walking the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from central.db.schema import events, photos
from central.duties.runner import Duty
from central.kiosks import KioskIdentity
from central.timefix import to_utc_naive
from sync.protocol import MAX_PHOTO_BYTES, PhotoResult, PhotoUpload

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
JPEG_MAGIC = b"\xff\xd8\xff"


PHOTO_FOLDER = "photos"
RETENTION_DUTY = "photo_retention"


class CentralPhotos:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def of_instance(cls, instance: Path) -> CentralPhotos:
        return cls(instance / PHOTO_FOLDER)

    def path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError("not a sha256")
        return self.folder / sha256[:2] / f"{sha256}.jpg"

    def read(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except (OSError, ValueError):
            return None

    def _write(self, sha256: str, data: bytes) -> None:
        path = self.path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def receive(
        self,
        engine: Engine,
        kiosk: KioskIdentity,
        uploads: Sequence[PhotoUpload],
        now: datetime,
        retention_days: int,
    ) -> list[PhotoResult]:
        """Check and keep each photo; one answer per upload, in order."""
        now_utc = to_utc_naive(now)
        oldest_kept = now_utc.date() - timedelta(days=retention_days)
        ids = sorted({str(u.event_id) for u in uploads})
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    events.c.event_id,
                    events.c.kiosk_id,
                    events.c.photo_sha256,
                    events.c.service_day,
                ).where(events.c.event_id.in_(ids))
            ).all()
            held = set(
                conn.execute(select(photos.c.event_id).where(photos.c.event_id.in_(ids))).scalars()
            )
        by_id = {row.event_id: row for row in rows}
        results: list[PhotoResult] = []
        for upload in uploads:
            digest = upload.sha256
            event = by_id.get(str(upload.event_id))
            if event is None or event.kiosk_id != kiosk.kiosk_id:
                results.append(_result(digest, "no_event", "no such record of this kiosk"))
                continue
            if event.photo_sha256 != digest:
                results.append(_result(digest, "mismatch", "the record names another photo"))
                continue
            if event.event_id in held and self.path(digest).is_file():
                results.append(_result(digest, "duplicate"))
                continue
            try:
                data = upload.jpeg()
            except ValueError as exc:
                results.append(_result(digest, "refused", str(exc)))
                continue
            if hashlib.sha256(data).hexdigest() != digest:
                results.append(_result(digest, "mismatch", "the bytes do not have this sha256"))
                continue
            if len(data) > MAX_PHOTO_BYTES or not data.startswith(JPEG_MAGIC):
                results.append(_result(digest, "refused", "not a JPEG of at most 256 KB"))
                continue
            if event.service_day < oldest_kept:
                results.append(_result(digest, "refused", "older than the photo retention"))
                continue
            self._write(digest, data)
            with contextlib.suppress(IntegrityError), engine.begin() as conn:
                conn.execute(
                    insert(photos).values(
                        sha256=digest,
                        event_id=event.event_id,
                        kiosk_id=kiosk.kiosk_id,
                        service_day=event.service_day,
                        size=len(data),
                        received_at=now_utc,
                    )
                )
            held.add(event.event_id)
            results.append(_result(digest, "stored"))
        return results


def _result(sha256: str, status: str, reason: str = "") -> PhotoResult:
    return PhotoResult.model_validate({"sha256": sha256, "status": status, "reason": reason})


def purge_photos(
    engine: Engine, store: CentralPhotos, today: date, retention_days: int
) -> list[tuple[date, int]]:
    """Delete the photos of service days older than `retention_days` before `today`; one log
    line per day purged. Returns (day, records whose photo was deleted) for each."""
    with engine.begin() as conn:
        return purge_photos_in(conn, store, today, retention_days)


def purge_photos_in(
    conn: Connection, store: CentralPhotos, today: date, retention_days: int
) -> list[tuple[date, int]]:
    """purge_photos in the caller's transaction (the retention duty's). A file goes once no
    kept record names it; one deleted before a rollback leaves its rows showing it missing."""
    oldest_kept = today - timedelta(days=retention_days)
    rows = conn.execute(
        select(photos.c.event_id, photos.c.sha256, photos.c.service_day)
        .where(photos.c.service_day < oldest_kept)
        .order_by(photos.c.service_day)
    ).all()
    by_day: dict[date, list[tuple[str, str]]] = {}
    for row in rows:
        by_day.setdefault(row.service_day, []).append((row.event_id, row.sha256))
    purged: list[tuple[date, int]] = []
    for day, doomed in by_day.items():
        ids = [event_id for event_id, _ in doomed]
        hashes = sorted({digest for _, digest in doomed})
        conn.execute(delete(photos).where(photos.c.event_id.in_(ids)))
        still_named = set(
            conn.execute(select(photos.c.sha256).where(photos.c.sha256.in_(hashes))).scalars()
        )
        for digest in hashes:
            if digest not in still_named:
                with contextlib.suppress(FileNotFoundError):
                    store.path(digest).unlink()
        log.info(
            "photos of %s purged: %d files (older than %d days)",
            day.isoformat(),
            len(doomed),
            retention_days,
        )
        purged.append((day, len(doomed)))
    return purged


def photo_retention_duty(
    store: CentralPhotos,
    today: Callable[[], date],
    retention_days: int,
    interval_s: float = 3600.0,
) -> Duty:
    """Retention as a duty of its own: whichever process holds its lease runs it hourly."""

    def step(conn: Connection) -> int:
        return sum(count for _, count in purge_photos_in(conn, store, today(), retention_days))

    return Duty(name=RETENTION_DUTY, step=step, idle_s=interval_s)


def photo_presence(engine: Engine, event_ids: Sequence[str]) -> dict[str, str]:
    """event_id -> sha256 for those of `event_ids` whose photo the centre holds."""
    found: dict[str, str] = {}
    ids = list(event_ids)
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for row in conn.execute(
                select(photos.c.event_id, photos.c.sha256).where(photos.c.event_id.in_(chunk))
            ):
                found[row.event_id] = row.sha256
    return found
