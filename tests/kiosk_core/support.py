"""Helpers for the kiosk core tests: event fields, a disk that fails on demand."""

from __future__ import annotations

import errno
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kiosk.store import DiskIO

CST = timezone(timedelta(hours=8))
BASE_TIME = datetime(2026, 11, 29, 5, 20, tzinfo=CST)


def event_fields(n: int = 0, *, cadre: str | None = None, kind: str = "arrival", **extra: Any):
    fields: dict[str, Any] = {
        "kiosk_id": "k1",
        "site_id": "S01",
        "cadre_id": cadre or f"C{n % 7:04d}",
        "badge_serial": 1,
        "kind": kind,
        "source": "camera",
        "device_time": BASE_TIME + timedelta(minutes=n),
        "boot_id": "boot-a",
        "monotonic_ns": 1_000_000 + n,
        "clock_trusted": True,
    }
    fields.update(extra)
    return fields


class FaultyDisk(DiskIO):
    """A disk that fills up or turns read-only when told to.

    `partial_bytes` makes a failing write first put that many bytes on disk, as a real ENOSPC in
    the middle of a line does.
    """

    def __init__(self) -> None:
        self.fail_errno: int | None = None
        self.fail_on: set[str] = {"write", "fsync", "open", "replace", "ftruncate"}
        self.partial_bytes = 0
        self.calls: dict[str, int] = {}

    def _maybe_fail(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1
        if self.fail_errno is not None and what in self.fail_on:
            raise OSError(self.fail_errno, os.strerror(self.fail_errno))

    def fill_up(self, partial_bytes: int = 0) -> None:
        self.fail_errno, self.partial_bytes = errno.ENOSPC, partial_bytes

    def make_read_only(self) -> None:
        self.fail_errno, self.partial_bytes = errno.EROFS, 0

    def recover(self) -> None:
        self.fail_errno, self.partial_bytes = None, 0

    def write(self, fd: int, data: bytes) -> int:
        if self.fail_errno is not None and "write" in self.fail_on and self.partial_bytes:
            os.write(fd, data[: self.partial_bytes])
        self._maybe_fail("write")
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self._maybe_fail("fsync")
        super().fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        self._maybe_fail("ftruncate")
        super().ftruncate(fd, length)

    def open_new(self, path: Path) -> int:
        self._maybe_fail("open")
        return super().open_new(path)

    def open_append(self, path: Path) -> int:
        self._maybe_fail("open")
        return super().open_append(path)

    def replace(self, source: Path, target: Path) -> None:
        self._maybe_fail("replace")
        super().replace(source, target)
