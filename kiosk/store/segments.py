"""Bounded TinyDB files that hold the log's history, written only by atomic replace.

Stock TinyDB keeps one table in one JSON file and rewrites it in place for every insert: cost grows
with history, a kill mid-write leaves JSON that no longer parses. Here each segment holds at most
a few thousand events in TinyDB's layout (`{"events": {"<seq>": {...}}}`, read through TinyDB and
`SegmentStorage`), and receives events in batches at checkpoints: the fold writes a whole new file
(tmp file, fsync, rename, fsync folder), its bytes made from the previous file's bytes and the new
events' journal lines (`SegmentImage`), so a batch costs what the batch holds, not what the segment
holds. Document ids are the events' `seq`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from kiosk.store.diskio import DiskIO, atomic_write_bytes

TABLE = "events"
_HEAD = b'{"events":{'
_TAIL = b"}}"
SEGMENT_GLOB = "seg-*.json"
_SEGMENT_NAME = re.compile(r"seg-(\d{12})\.json")
# Where each stored document starts: `"<doc id>":{`. Inside JSON strings every quote is escaped,
# so this cannot match event content.
_DOC_START = re.compile(r'"(\d+)":\{')


class SegmentDamaged(ValueError):
    """A segment file does not parse as a whole (cut short or overwritten)."""


def segment_name(first_seq: int) -> str:
    return f"seg-{first_seq:012d}.json"


def first_seq_of(path: Path) -> int | None:
    match = _SEGMENT_NAME.fullmatch(path.name)
    return int(match.group(1)) if match else None


class SegmentStorage(Storage):
    """TinyDB storage: parsed once into memory, every write an atomic replace of the file."""

    def __init__(self, path: str | Path, disk: DiskIO | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self._disk = disk or DiskIO()
        self._data: dict[str, dict[str, Any]] | None = None

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._data is None:
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                return None
            if not raw:
                return None
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise SegmentDamaged(f"{self.path.name}: {exc}") from exc
            if not isinstance(data, dict):
                raise SegmentDamaged(f"{self.path.name}: not a TinyDB document")
            self._data = data
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            atomic_write_bytes(self._disk, self.path, encoded)
        except BaseException:
            # TinyDB mutated the dict we handed out before calling write(); forget it so the next
            # read sees what is really on disk.
            self._data = None
            raise
        self._data = data

    @property
    def size_on_disk(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0


@dataclass
class SegmentMeta:
    """What the manifest knows of one segment, so most questions need not open it."""

    file: str
    first: int
    last: int
    count: int
    min_time: str | None
    max_time: str | None
    sealed: bool
    bytes: int

    def as_json(self) -> dict[str, Any]:
        # Written by hand: dataclasses.asdict deep-copies, ten times slower, for every segment
        # at every manifest.
        return {
            "file": self.file,
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "min_time": self.min_time,
            "max_time": self.max_time,
            "sealed": self.sealed,
            "bytes": self.bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentMeta:
        return cls(**data)


def encode_segment(docs: Mapping[str, dict[str, Any]]) -> bytes:
    """A segment file's bytes in TinyDB's layout, documents in seq order."""
    ordered = {key: docs[key] for key in sorted(docs, key=int)}
    return json.dumps({TABLE: ordered}, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SegmentImage:
    """A segment file as the fold last wrote it: its bytes and its documents. Never changed once
    made: a fold makes a new image, and readers keep using the old one until the fold's result
    is committed under the log's lock."""

    name: str
    raw: bytes
    docs: Mapping[str, dict[str, Any]]

    @classmethod
    def empty(cls, name: str) -> SegmentImage:
        return cls(name, _HEAD + _TAIL, {})

    @classmethod
    def of(cls, name: str, raw: bytes, docs: Mapping[str, dict[str, Any]]) -> SegmentImage:
        """From a file's bytes and the documents to keep; bytes in another layout, or holding
        documents not kept, are encoded again."""
        in_layout = raw.startswith(_HEAD) and raw.endswith(_TAIL)
        if in_layout:
            try:
                parsed = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                in_layout = False
            else:
                in_layout = list(parsed) == [TABLE] and set(parsed[TABLE]) == set(docs)
        return cls(name, raw if in_layout else encode_segment(docs), dict(docs))

    def extended(self, entries: Sequence[tuple[int, bytes, dict[str, Any]]]) -> SegmentImage:
        """With (seq, the event's JSON, its document) added after what the image holds."""
        if not entries:
            return self
        body = b",".join(b'"%d":%s' % (seq, text) for seq, text, _doc in entries)
        separator = b"," if self.docs else b""
        raw = self.raw[: -len(_TAIL)] + separator + body + _TAIL
        docs = dict(self.docs)
        for seq, _text, doc in entries:
            assert str(seq) not in docs, f"seq {seq} is in {self.name} already"
            docs[str(seq)] = doc
        return SegmentImage(self.name, raw, docs)


class Segment:
    """One segment file, for reading: a TinyDB with one table of event documents keyed by seq."""

    def __init__(self, path: Path, disk: DiskIO) -> None:
        self.path = path
        # TinyDB hands its extra keyword arguments to the storage class.
        self.db = TinyDB(str(path), storage=SegmentStorage, disk=disk)
        self.table: Table = self.db.table(TABLE)

    @property
    def storage(self) -> SegmentStorage:
        storage = self.db.storage
        assert isinstance(storage, SegmentStorage)
        return storage

    def docs(self) -> dict[str, dict[str, Any]]:
        """Raw documents by str(seq); raises SegmentDamaged when the file does not parse."""
        data = self.storage.read() or {}
        return data.get(TABLE, {})

    def get(self, seq: int) -> dict[str, Any] | None:
        doc = self.table.get(doc_id=seq)
        return dict(doc) if doc is not None else None

    def seqs(self) -> list[int]:
        return sorted(int(key) for key in self.docs())

    def close(self) -> None:
        self.db.close()


def salvage(raw: bytes) -> dict[int, dict[str, Any]]:
    """Every complete document in a damaged segment file, by seq.

    A cut file holds whole documents up to the cut; each is found by its `"<seq>":{` opening and
    decoded on its own. Whether the content is genuine is for the caller (the event hash) to say.
    """
    text = raw.decode("utf-8", errors="ignore")
    decoder = json.JSONDecoder()
    found: dict[int, dict[str, Any]] = {}
    position = 0
    while True:
        match = _DOC_START.search(text, position)
        if match is None:
            return found
        brace = match.end() - 1
        try:
            doc, end = decoder.raw_decode(text, brace)
        except json.JSONDecodeError:
            position = match.end()
            continue
        if isinstance(doc, dict) and doc.get("seq") == int(match.group(1)):
            found[int(match.group(1))] = doc
            position = end
        else:
            position = match.end()


def write_segment_file(disk: DiskIO, path: Path, docs: dict[int, dict[str, Any]]) -> None:
    """Write a whole segment in TinyDB's layout (used when repairing a damaged one)."""
    atomic_write_bytes(disk, path, encode_segment({str(seq): doc for seq, doc in docs.items()}))


def iter_segment_files(folder: Path) -> Iterator[tuple[int, Path]]:
    found = []
    for path in folder.glob(SEGMENT_GLOB):
        first = first_seq_of(path)
        if first is not None:
            found.append((first, path))
    yield from sorted(found)
