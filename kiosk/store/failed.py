"""The failed-scan log: refused badges (reason, payload cut short, time), rate-limited.

A camera pointed at a poster sees the same foreign QR code fifteen times a second; the log must
tell a site lead "someone tried a revoked badge at 05:31" without filling the SD card. So: the same
payload and reason again within `repeat_window_s` only raises a counter, at most `per_minute`
lines are written per minute, the count of what was left out is written with the next line, and
the file is rotated at `max_bytes` (one older file kept). A failure to write here never stops a
scan: these entries were never confirmed to anyone.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kiosk.store.diskio import DiskIO


@dataclass(frozen=True)
class FailedScan:
    at: datetime
    reason: str
    payload: str
    source: str
    suppressed_before: int  # lines left out (rate limit) just before this one


def shorten_payload(payload: str, limit: int) -> str:
    """Printable and short: enough to recognise a code, not enough to fill the disk."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in payload[: limit + 1])
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "…"


class FailedScanLog:
    def __init__(
        self,
        path: Path,
        *,
        per_minute: int = 20,
        payload_chars: int = 64,
        repeat_window_s: float = 60.0,
        max_bytes: int = 1_000_000,
        disk: DiskIO | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.per_minute = per_minute
        self.payload_chars = payload_chars
        self.repeat_window_s = repeat_window_s
        self.max_bytes = max_bytes
        self._disk = disk or DiskIO()
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._window_start = -1e18
        self._written_in_window = 0
        self._suppressed = 0
        self._last_key: tuple[str, str] | None = None
        self._last_key_at = -1e18
        self.total_suppressed = 0
        self.write_failures = 0
        self._tail_checked = False

    def record(self, reason: str, payload: str, source: str, at: datetime) -> bool:
        """Log one refused scan. True when a line was written, False when it was left out."""
        short = shorten_payload(payload, self.payload_chars)
        now = self._monotonic()
        with self._lock:
            key = (reason, short)
            if key == self._last_key and now - self._last_key_at < self.repeat_window_s:
                self._last_key_at = now
                self._leave_out()
                return False
            if now - self._window_start >= 60.0:
                self._window_start = now
                self._written_in_window = 0
            if self._written_in_window >= self.per_minute:
                self._leave_out()
                return False
            self._last_key, self._last_key_at = key, now
            self._written_in_window += 1
            line = {
                "at": at.isoformat(),
                "reason": reason,
                "payload": short,
                "source": source,
                "suppressed_before": self._suppressed,
            }
            if self._write((json.dumps(line, ensure_ascii=False) + "\n").encode()):
                self._suppressed = 0
                return True
            return False

    def _leave_out(self) -> None:
        self._suppressed += 1
        self.total_suppressed += 1

    def _write(self, data: bytes) -> bool:
        try:
            if not self._tail_checked:
                # A power cut can leave the last line unfinished: start on a line of our own
                # rather than glue this entry onto it.
                data = self._after_unfinished_line() + data
                self._tail_checked = True
            with contextlib.suppress(FileNotFoundError):
                if self.path.stat().st_size + len(data) > self.max_bytes:
                    self._disk.replace(self.path, self.path.with_name(self.path.name + ".1"))
            fd = self._disk.open_append(self.path)
            try:
                self._disk.write_all(fd, data)
            finally:
                self._disk.close(fd)
        except OSError:
            self.write_failures += 1
            return False
        return True

    def _after_unfinished_line(self) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                if handle.seek(0, os.SEEK_END) == 0:
                    return b""
                handle.seek(-1, os.SEEK_END)
                return b"" if handle.read(1) == b"\n" else b"\n"
        except FileNotFoundError:
            return b""

    def recent(self, limit: int = 50) -> list[FailedScan]:
        """The newest entries first (from the current file only)."""
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - 256 * max(limit, 1)))
                tail = handle.read()
        except FileNotFoundError:
            return []
        entries: list[FailedScan] = []
        for line in reversed(tail.splitlines()):
            if len(entries) >= limit:
                break
            try:
                data = json.loads(line)
                entries.append(
                    FailedScan(
                        at=datetime.fromisoformat(data["at"]),
                        reason=str(data["reason"]),
                        payload=str(data["payload"]),
                        source=str(data.get("source", "")),
                        suppressed_before=int(data.get("suppressed_before", 0)),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue  # the first line of the tail is usually cut in half
        return entries
