"""Bytes the log cannot read: kept aside in damaged/, salvaged where whole, and reported.

`RecoveryReport` is what a person (and the log's caller) learns of it: what the last open found
and did. A segment can also turn out damaged after the open (bit rot); it is then salvaged when
it is first read, and the same report says so.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk.store.diskio import DiskIO, atomic_write_bytes, make_dirs
from kiosk.store.folder import LogFolder
from kiosk.store.segments import salvage, write_segment_file

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    """What opening the log found and did. Empty lists and zeros mean a clean open."""

    stale_temp_files: list[str] = field(default_factory=list)
    torn_journal_bytes: int = 0
    unreadable_journal_lines: int = 0
    invalid_records: int = 0  # parsed, but not a valid event or hash mismatch
    damaged_segments: list[str] = field(default_factory=list)
    missing_segments: list[str] = field(default_factory=list)
    dropped_seqs: list[tuple[int, int]] = field(default_factory=list)  # inclusive ranges
    manifest_rebuilt: bool = False
    cursor_reset: bool = False
    replayed: int = 0
    fold_finished: int = 0  # events found in segments written by a fold a crash interrupted
    quarantined: list[str] = field(default_factory=list)  # files written to damaged/

    @property
    def lost_events(self) -> int:
        """Events the open could not read back: dropped seqs, and records it could not parse or
        verify (each unreadable line or invalid record held at most one event)."""
        dropped = sum(last - first + 1 for first, last in self.dropped_seqs)
        # A bad line is usually also a dropped seq: count each loss once.
        return max(dropped, self.unreadable_journal_lines + self.invalid_records)

    @property
    def lost_anything(self) -> bool:
        return bool(self.dropped_seqs or self.invalid_records or self.unreadable_journal_lines)

    @property
    def clean(self) -> bool:
        return not (
            self.torn_journal_bytes
            or self.lost_anything
            or self.damaged_segments
            or self.missing_segments
            or self.manifest_rebuilt
            or self.cursor_reset
        )

    def summary(self) -> str:
        parts = []
        if self.stale_temp_files:
            parts.append(f"removed {len(self.stale_temp_files)} stale temp file(s)")
        if self.torn_journal_bytes:
            parts.append(
                f"cut an unfinished journal line of {self.torn_journal_bytes} bytes "
                "(never confirmed)"
            )
        if self.unreadable_journal_lines:
            parts.append(f"{self.unreadable_journal_lines} unreadable journal line(s)")
        if self.invalid_records:
            parts.append(f"{self.invalid_records} record(s) failed validation")
        if self.damaged_segments:
            parts.append(f"salvaged damaged segment(s) {', '.join(self.damaged_segments)}")
        if self.missing_segments:
            parts.append(f"missing segment(s) {', '.join(self.missing_segments)}")
        if self.dropped_seqs:
            ranges = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.dropped_seqs)
            parts.append(f"events lost: seq {ranges}")
        if self.manifest_rebuilt:
            parts.append("manifest rebuilt from the segments")
        if self.cursor_reset:
            parts.append("acknowledged cursor unreadable: everything will be sent again")
        if self.fold_finished:
            parts.append(
                f"finished a fold a crash interrupted ({self.fold_finished} event(s) already in "
                "a segment)"
            )
        if self.replayed:
            parts.append(f"replayed {self.replayed} journal event(s)")
        return "; ".join(parts) or "clean"


class Quarantine:
    """Keeps unreadable bytes in damaged/ and salvages damaged segment files, noting both in
    the log's `RecoveryReport`."""

    def __init__(self, folder: LogFolder, disk: DiskIO, report: RecoveryReport) -> None:
        self._folder = folder
        self._disk = disk
        self.report = report

    def keep(self, name: str, data: bytes) -> None:
        """Write `data` to damaged/ under a unique name; a failure is logged, never raised."""
        damaged_dir = self._folder.damaged_dir
        try:
            make_dirs(self._disk, damaged_dir)
            stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
            target = damaged_dir / f"{stamp}-{uuid.uuid4().hex[:6]}-{name}"
            atomic_write_bytes(self._disk, target, data)
            self.report.quarantined.append(str(target))
        except OSError as exc:
            log.error("could not keep damaged bytes of %s: %s", name, exc)

    def segment_docs(self, path: Path) -> dict[int, dict[str, Any]]:
        """The documents of a segment file; a damaged file is salvaged and rewritten."""
        raw = path.read_bytes()
        try:
            data = json.loads(raw) if raw else {}
            table = data.get("events", {}) if isinstance(data, dict) else None
            if not isinstance(table, dict):
                raise ValueError("not a TinyDB document")
            return {int(k): v for k, v in table.items()}
        except (ValueError, UnicodeDecodeError):
            pass
        docs = salvage(raw)
        self.keep(path.name, raw)
        self.report.damaged_segments.append(path.name)
        try:
            write_segment_file(self._disk, path, docs)
        except OSError as exc:
            log.error("could not rewrite salvaged segment %s: %s", path.name, exc)
        return docs
