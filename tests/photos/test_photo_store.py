"""The photo store: bounded, retention by day, and a failing disk only refuses photos."""

from __future__ import annotations

import errno
import logging
from datetime import date, timedelta

from kiosk.photos import PhotoStore, photo_sha256
from kiosk.store.diskio import DiskIO


def jpeg(n: int, size: int = 1000) -> bytes:
    return bytes([0xFF, 0xD8]) + n.to_bytes(4, "big") * (size // 4)


def test_written_photo_reads_back_under_its_hash(tmp_path):
    store = PhotoStore(tmp_path / "photos", cap_bytes=10**6, retention_days=30)
    data = jpeg(1)
    digest = photo_sha256(data)
    assert store.write_now(digest, data, date(2026, 11, 29))
    assert (tmp_path / "photos" / "2026-11-29" / f"{digest}.jpg").read_bytes() == data
    assert store.read(digest) == data
    reopened = PhotoStore(tmp_path / "photos", cap_bytes=10**6, retention_days=30)
    assert reopened.read(digest) == data and reopened.state().bytes == len(data)


def test_cap_refuses_what_would_not_fit(tmp_path):
    store = PhotoStore(tmp_path / "p", cap_bytes=2500, retention_days=30, min_free_bytes=0)
    for n in (1, 2):
        data = jpeg(n)
        assert store.can_take(len(data))
        store.write_now(photo_sha256(data), data, date(2026, 11, 29))
    assert not store.can_take(1000)
    assert store.state().problem == "full"
    assert store.can_take(400)


def test_low_disk_space_is_left_to_the_event_log(tmp_path):
    free = [10**9]
    store = PhotoStore(
        tmp_path / "p",
        cap_bytes=10**9,
        retention_days=30,
        min_free_bytes=200_000_000,
        disk_free=lambda _path: free[0],
        monotonic=iter(range(0, 10**6, 10)).__next__,
    )
    assert store.can_take(1000)
    free[0] = 200_000_500
    assert not store.can_take(1000)
    assert store.state().problem == "disk_full"


class FullDisk(DiskIO):
    def write(self, fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_failing_disk_refuses_photos_for_a_while(tmp_path):
    clock = [100.0]
    store = PhotoStore(
        tmp_path / "p",
        cap_bytes=10**6,
        retention_days=30,
        min_free_bytes=0,
        disk=FullDisk(),
        monotonic=lambda: clock[0],
    )
    data = jpeg(3)
    assert not store.write_now(photo_sha256(data), data, date(2026, 11, 29))
    assert store.read(photo_sha256(data)) is None
    assert list((tmp_path / "p" / "2026-11-29").iterdir()) == []  # no temp file left
    assert not store.can_take(len(data))
    clock[0] += 61
    assert store.can_take(len(data))


def test_retention_deletes_old_days_and_nothing_else(tmp_path, caplog):
    store = PhotoStore(tmp_path / "p", cap_bytes=10**7, retention_days=30)
    today = date(2026, 11, 29)
    kept, gone = [], []
    for n, age in enumerate((45, 31, 31, 30, 29, 0)):
        data = jpeg(n)
        store.write_now(photo_sha256(data), data, today - timedelta(days=age))
        (gone if age > 30 else kept).append(photo_sha256(data))
    (tmp_path / "p" / "notes.txt").write_text("not a photo")
    with caplog.at_level(logging.INFO, logger="kiosk.photos"):
        purged = store.purge(today)
    assert purged == [(today - timedelta(days=45), 1), (today - timedelta(days=31), 2)]
    assert all(store.read(d) is None for d in gone)
    assert all(store.read(d) is not None for d in kept)
    assert not (tmp_path / "p" / (today - timedelta(days=31)).isoformat()).exists()
    assert (tmp_path / "p" / "notes.txt").exists()
    lines = [r.getMessage() for r in caplog.records if "purged" in r.getMessage()]
    assert lines == [
        "photos of 2026-10-15 purged: 1 files (older than 30 days)",
        "photos of 2026-10-29 purged: 2 files (older than 30 days)",
    ]
    assert store.state().count == len(kept)
    assert store.purge(today) == []
