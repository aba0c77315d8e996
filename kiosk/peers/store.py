"""The site's other kiosks' records, kept read-only beside (never inside) this kiosk's own log.

    peers/<origin>.jsonl   the origin's records as it signed them, in seq order (wire JSON)
    peers/bases.json       per origin, the (seq, hash) the kept records go on from after pruning
    peers/conflicts.jsonl  what a late record showed (two arrivals at two gates...), for the lead

Bounded: only records whose best known time is in today's or yesterday's service day are kept;
older ones are pruned (the chain goes on from `bases.json`). A torn last line (a power cut) is
dropped at start and fetched again. These records are never pushed to the centre by this kiosk:
each reaches the centre from its origin.

A late record never changes this kiosk's own: the store flags a conflict instead, when a cadre's
records at two gates, merged by time, show the same kind twice in a row within the longest shift
(arrived at A and again at B 40 minutes later, during a partition).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kiosk.private_files import PRIVATE_FILE, atomic_write
from kiosk.store import EventSummary
from sync.events import Event

log = logging.getLogger(__name__)

BASES_FILE = "bases.json"
CONFLICTS_FILE = "conflicts.jsonl"
MAX_CONFLICTS = 500


@dataclass(frozen=True)
class PeerRow:
    """One record of a cadre at some gate, as the site's merged view holds it."""

    kiosk_id: str
    summary: EventSummary
    when: datetime


@dataclass(frozen=True)
class Conflict:
    cadre_id: str
    kind: str
    first_kiosk: str
    first_event: str
    first_time: datetime
    second_kiosk: str
    second_event: str
    second_time: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "cadre_id": self.cadre_id,
            "kind": self.kind,
            "first_kiosk": self.first_kiosk,
            "first_event": self.first_event,
            "first_time": self.first_time.isoformat(),
            "second_kiosk": self.second_kiosk,
            "second_event": self.second_event,
            "second_time": self.second_time.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Conflict:
        return cls(
            cadre_id=str(data["cadre_id"]),
            kind=str(data["kind"]),
            first_kiosk=str(data["first_kiosk"]),
            first_event=str(data["first_event"]),
            first_time=datetime.fromisoformat(data["first_time"]),
            second_kiosk=str(data["second_kiosk"]),
            second_event=str(data["second_event"]),
            second_time=datetime.fromisoformat(data["second_time"]),
        )


class PeerStore:
    """Other kiosks' records of this site. Thread-safe: the puller writes, scans and pages read.

    `when(event)`: the event's best known true time (the rules' SiteTime); `window_start()`:
    the oldest time kept (yesterday's service day start); `own_rows(cadre)`: this kiosk's
    records of a cadre, for conflicts; `conflict_window`: how far apart two arrivals (or two
    departures) at two gates are a conflict.
    """

    def __init__(
        self,
        folder: Path,
        when: Callable[[Event], datetime],
        window_start: Callable[[], datetime],
        own_rows: Callable[[str], list[PeerRow]],
        conflict_window: timedelta = timedelta(hours=16),
    ) -> None:
        self.folder = folder
        self.when = when
        self.window_start = window_start
        self.own_rows = own_rows
        self.conflict_window = conflict_window
        self._lock = threading.RLock()
        self._events: dict[str, list[Event]] = {}
        self._bases: dict[str, tuple[int, str]] = {}
        self._by_cadre: dict[str, dict[str, Event]] = {}  # cadre -> event_id -> event
        self._all: dict[str, Event] = {}  # every record kept, by event id (voids too)
        self._conflicts: list[Conflict] = []
        self._conflict_keys: set[frozenset[str]] = set()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._load()

    # ------------------------------------------------------------------ disk

    def _path(self, origin: str) -> Path:
        return self.folder / f"{origin}.jsonl"

    def _load(self) -> None:
        try:
            bases = json.loads((self.folder / BASES_FILE).read_text(encoding="utf-8"))
            self._bases = {k: (int(v[0]), str(v[1])) for k, v in bases.items()}
        except (FileNotFoundError, ValueError, TypeError, KeyError, IndexError):
            self._bases = {}
        for path in sorted(self.folder.glob("*.jsonl")):
            if path.name == CONFLICTS_FILE:
                continue
            origin = path.stem
            kept: list[Event] = []
            head = self._bases.get(origin)
            torn = False
            for line in path.read_bytes().splitlines():
                try:
                    event = Event.model_validate_json(line)
                except (ValidationError, ValueError):
                    torn = True
                    break
                chained = head is None or (event.seq == head[0] + 1 and event.prev_hash == head[1])
                if event.kiosk_id != origin or not event.hash_is_valid() or not chained:
                    torn = True
                    break
                kept.append(event)
                head = (event.seq, event.hash)
            self._events[origin] = kept
            for event in kept:
                self._index(event)
            if torn:
                log.warning("peer records of %s: a damaged line and what follows dropped", origin)
                self._rewrite(origin)
        try:
            text = (self.folder / CONFLICTS_FILE).read_text(encoding="utf-8")
            for entry in text.splitlines():
                conflict = Conflict.from_json(json.loads(entry))
                self._conflicts.append(conflict)
                self._conflict_keys.add(frozenset((conflict.first_event, conflict.second_event)))
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError):
            log.warning("%s damaged: earlier conflicts not shown", CONFLICTS_FILE)

    def _rewrite(self, origin: str) -> None:
        data = b"".join(event.wire_json() + b"\n" for event in self._events.get(origin, []))
        atomic_write(self._path(origin), data, PRIVATE_FILE)

    # ------------------------------------------------------------------ writing

    def head(self, origin: str) -> tuple[int, str] | None:
        """(seq, hash) of the last record of `origin` kept; None: none."""
        with self._lock:
            events = self._events.get(origin)
            if events:
                return events[-1].seq, events[-1].hash
            return self._bases.get(origin)

    def head_seq(self, origin: str) -> int:
        head = self.head(origin)
        return head[0] if head else 0

    def add(self, origin: str, events: Iterable[Event]) -> list[Conflict]:
        """Keep checked records of `origin` (kiosk/peers/check.py) that follow its head; the
        conflicts they show."""
        found: list[Conflict] = []
        with self._lock:
            kept = self._events.setdefault(origin, [])
            lines: list[bytes] = []
            for event in events:
                head = self.head(origin)
                if head is not None and (event.seq != head[0] + 1 or event.prev_hash != head[1]):
                    continue  # fetched twice, or a race with another fetch: the chain decides
                kept.append(event)
                lines.append(event.wire_json() + b"\n")
                self._index(event)
                found.extend(self._conflicts_of(event))
            if lines:
                with self._path(origin).open("ab") as out:
                    out.write(b"".join(lines))
            for conflict in found:
                self._keep_conflict(conflict)
        return found

    def _index(self, event: Event) -> None:
        self._all[str(event.event_id)] = event
        rows = self._by_cadre.setdefault(event.cadre_id, {})
        if event.corrects is not None:
            target = self._all.get(str(event.corrects))
            if event.kind == "void" and target is not None and target.kind == "void":
                # the lead's undo: the record the void cancelled counts again
                inner = self._all.get(str(target.corrects)) if target.corrects else None
                if inner is not None and inner.kind != "void":
                    rows[str(inner.event_id)] = inner
            else:
                rows.pop(str(event.corrects), None)
        if event.kind != "void":
            rows[str(event.event_id)] = event

    def prune(self) -> int:
        """Drop records older than the window; how many."""
        start = self.window_start()
        dropped = 0
        with self._lock:
            for origin, events in self._events.items():
                keep_from = 0
                while keep_from < len(events) and self.when(events[keep_from]) < start:
                    keep_from += 1
                if keep_from == 0:
                    continue
                last = events[keep_from - 1]
                self._bases[origin] = (last.seq, last.hash)
                for event in events[:keep_from]:
                    self._by_cadre.get(event.cadre_id, {}).pop(str(event.event_id), None)
                    self._all.pop(str(event.event_id), None)
                self._events[origin] = events[keep_from:]
                dropped += keep_from
                atomic_write(
                    self.folder / BASES_FILE,
                    json.dumps({k: list(v) for k, v in self._bases.items()}).encode(),
                    PRIVATE_FILE,
                )
                self._rewrite(origin)
        return dropped

    # ------------------------------------------------------------------ conflicts

    def _conflicts_of(self, event: Event) -> list[Conflict]:
        if event.kind == "void":
            return []
        merged = self.rows(event.cadre_id) + self.own_rows(event.cadre_id)
        merged.sort(key=lambda row: row.when)
        at = next(
            (i for i, row in enumerate(merged) if row.summary.event_id == str(event.event_id)),
            None,
        )
        if at is None:
            return []
        found = []
        for other_at in (at - 1, at + 1):
            if not 0 <= other_at < len(merged):
                continue
            mine, other = merged[at], merged[other_at]
            if other.kiosk_id == mine.kiosk_id or other.summary.kind != mine.summary.kind:
                continue
            if abs(mine.when - other.when) > self.conflict_window:
                continue
            first, second = (other, mine) if other_at < at else (mine, other)
            found.append(
                Conflict(
                    cadre_id=event.cadre_id,
                    kind=event.kind,
                    first_kiosk=first.kiosk_id,
                    first_event=first.summary.event_id,
                    first_time=first.when,
                    second_kiosk=second.kiosk_id,
                    second_event=second.summary.event_id,
                    second_time=second.when,
                )
            )
        return found

    def _keep_conflict(self, conflict: Conflict) -> None:
        key = frozenset((conflict.first_event, conflict.second_event))
        if key in self._conflict_keys:
            return
        self._conflict_keys.add(key)
        self._conflicts.append(conflict)
        self._conflicts = self._conflicts[-MAX_CONFLICTS:]
        with (self.folder / CONFLICTS_FILE).open("a", encoding="utf-8") as out:
            out.write(json.dumps(conflict.as_json()) + "\n")

    def conflicts(self) -> list[Conflict]:
        with self._lock:
            return list(self._conflicts)

    # ------------------------------------------------------------------ reading

    def rows(self, cadre_id: str) -> list[PeerRow]:
        """The cadre's records at the other gates (voided and replaced ones left out), by time."""
        with self._lock:
            events = list(self._by_cadre.get(cadre_id, {}).values())
        rows = [PeerRow(e.kiosk_id, EventSummary.of(e), self.when(e)) for e in events]
        rows.sort(key=lambda row: row.when)
        return rows

    def latest(self, cadre_id: str) -> PeerRow | None:
        rows = self.rows(cadre_id)
        return rows[-1] if rows else None

    def cadre_ids(self) -> list[str]:
        with self._lock:
            return [c for c, rows in self._by_cadre.items() if rows]

    def events(self, origin: str | None = None) -> list[Event]:
        with self._lock:
            if origin is not None:
                return list(self._events.get(origin, []))
            return [e for events in self._events.values() for e in events]

    def origins(self) -> list[str]:
        with self._lock:
            return sorted(self._events)
