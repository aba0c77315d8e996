"""manifest.json: the segment list, the seq they cover, the chain's head and the per-cadre index.

Written by atomic replace at the end of every fold and archiving. The index in it is as of
`through_seq` (a `ManifestBasis`, taken when the fold took its batch), whatever was appended
since: replaying the journal at open applies what came after. Read once at open; when it is
missing or unreadable the log is rebuilt from the segments.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiosk.store.catalog import SegmentCatalog
from kiosk.store.damage import Quarantine
from kiosk.store.diskio import DiskIO, atomic_write_bytes
from kiosk.store.folder import LogFolder
from kiosk.store.index import CadreIndex, Entry
from kiosk.store.segments import SegmentMeta
from kiosk.store.state import LogState

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1


def read_manifest(folder: LogFolder, quarantine: Quarantine) -> dict[str, Any] | None:
    """The manifest's content; None (and `manifest_rebuilt` when there is data to rebuild it
    from) when it is missing or unreadable. Unreadable bytes are kept in damaged/."""
    report = quarantine.report
    try:
        raw = folder.manifest_path.read_bytes()
    except FileNotFoundError:
        has_data = any(folder.segment_dir.glob("seg-*.json")) or any(
            folder.archive_dir.glob("seg-*.json")
        )
        if has_data:
            report.manifest_rebuilt = True
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unknown manifest format {data.get('format')!r}")
        return data
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        quarantine.keep(folder.manifest_path.name, raw)
        log.error("manifest unreadable (%s); rebuilding from the segments", exc)
        report.manifest_rebuilt = True
        return None


def load_manifest(
    data: dict[str, Any], state: LogState, catalog: SegmentCatalog, index: CadreIndex
) -> None:
    """Take the manifest's content; raises KeyError, TypeError or ValueError when a part is
    missing or malformed (the caller then rebuilds from the segments)."""
    catalog.live = [SegmentMeta.from_json(m) for m in data["segments"]]
    catalog.archived = [SegmentMeta.from_json(m) for m in data["archived"]]
    state.through = int(data["through_seq"])
    state.last_seq = state.through
    state.head_hash = str(data["head_hash"])
    index.load(data["cadres"])
    catalog.reindex()


@dataclass(frozen=True)
class ManifestBasis:
    """What a manifest says of the events: every one up to `through` is in a segment, the last
    of them hashed to `head_hash`, and the index rows as they were just after it."""

    through: int
    head_hash: str
    cadres: dict[str, Entry]


def write_manifest(
    disk: DiskIO,
    folder: LogFolder,
    basis: ManifestBasis,
    live: list[SegmentMeta],
    archived: list[SegmentMeta],
    index: CadreIndex,
    pause: Callable[[], None] | None = None,
) -> None:
    data = {
        "format": MANIFEST_FORMAT,
        "through_seq": basis.through,
        "head_hash": basis.head_hash,
        "segments": [m.as_json() for m in live],
        "archived": [m.as_json() for m in archived],
    }
    head = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = head[:-1] + ',"cadres":{' + index.manifest_json(basis.cadres, pause) + "}}"
    atomic_write_bytes(disk, folder.manifest_path, text.encode())
