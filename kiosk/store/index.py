"""The per-cadre index: each cadre's latest effective events, in memory and in the manifest.

The check-in rules ask "what did this cadre do last?" at every scan, and the pages ask who is
present; both are answered from here without opening a segment. A void removes the event it
names; a correction takes the place of the event it replaces. Only `recent_per_cadre` rows are
kept per cadre.

A voided row is kept aside under its void's id (as many per cadre as rows), so that a void of
that void (the lead's undo) puts it back. In the manifest such a row has one more element, the
void's id; a manifest without them (an older kiosk's) reads as having none.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync.events import Event

ROW_FIELDS = 9  # the elements of EventSummary.to_json()


@dataclass(frozen=True)
class EventSummary:
    """A cadre's event, as much as the check-in rules and the pages need, kept in memory."""

    seq: int
    event_id: str
    kind: str
    device_time: datetime
    boot_id: str
    monotonic_ns: int
    clock_trusted: bool
    source: str
    flags: tuple[str, ...]

    @classmethod
    def of(cls, event: Event) -> EventSummary:
        return cls(
            event.seq,
            str(event.event_id),
            event.kind,
            event.device_time,
            event.boot_id,
            event.monotonic_ns,
            event.clock_trusted,
            event.source,
            tuple(event.flags),
        )

    def to_json(self) -> list[Any]:
        return [
            self.seq,
            self.event_id,
            self.kind,
            self.device_time.isoformat(),
            self.boot_id,
            self.monotonic_ns,
            self.clock_trusted,
            self.source,
            list(self.flags),
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> EventSummary:
        seq, event_id, kind, when, boot, mono, trusted, source, flags = row
        return cls(
            int(seq),
            str(event_id),
            str(kind),
            datetime.fromisoformat(when),
            str(boot),
            int(mono),
            bool(trusted),
            str(source),
            tuple(flags),
        )


def _cadre_json(cadre: str, rows: list[list[Any]]) -> str:
    return (
        json.dumps(cadre, ensure_ascii=False)
        + ":"
        + json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    )


Rows = tuple[EventSummary, ...]
Aside = tuple[tuple[str, EventSummary], ...]  # (void's event id, the row it voided), oldest first
Entry = tuple[Rows, Aside]


class CadreIndex:
    """Cadre id -> its latest effective events, oldest first, and the rows voids took away.
    Changed under the log's lock; each cadre's entry is a tuple replaced on change, so a
    snapshot is a shallow copy and the fold can write the manifest from one while appends go
    on."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._entries: dict[str, Entry] = {}
        # The index is most of the manifest (thousands of cadres) and most of it unchanged since
        # the last fold: each cadre's JSON is kept with the entry it was made from. Only the
        # fold (one at a time) writes here.
        self._json: dict[str, tuple[Entry, str]] = {}

    def _rows(self, cadre_id: str) -> Rows:
        return self._entries.get(cadre_id, ((), ()))[0]

    def _aside(self, cadre_id: str) -> Aside:
        return self._entries.get(cadre_id, ((), ()))[1]

    def add(self, event: Event) -> None:
        if event.kind == "void":
            target = str(event.corrects)
            if not self._restore(event.cadre_id, target):
                self._drop(event.cadre_id, target, voided_by=str(event.event_id))
            return
        summary = EventSummary.of(event)
        rows = list(self._rows(event.cadre_id))
        position = None
        if event.corrects is not None:
            target = str(event.corrects)
            position = next((i for i, r in enumerate(rows) if r.event_id == target), None)
            if position is None:
                self._drop(None, target)
        if position is not None:
            rows[position] = summary
        else:
            rows.append(summary)
        self._entries[event.cadre_id] = (tuple(rows[-self._keep :]), self._aside(event.cadre_id))

    def _drop(self, cadre_id: str | None, event_id: str, voided_by: str | None = None) -> None:
        # A void names its cadre; a correction whose target is not among its cadre's rows
        # looks through every cadre.
        known = cadre_id is not None and cadre_id in self._entries
        cadres = [cadre_id] if known and cadre_id is not None else list(self._entries)
        for cadre in cadres:
            rows, aside = self._entries[cadre]
            kept = tuple(r for r in rows if r.event_id != event_id)
            if len(kept) != len(rows):
                if voided_by is not None:
                    row = next(r for r in rows if r.event_id == event_id)
                    aside = ((*aside, (voided_by, row)))[-self._keep :]
                self._entries[cadre] = (kept, aside)
                return

    def _restore(self, cadre_id: str, void_id: str) -> bool:
        """Undo of the void `void_id`: its row back in its place. False when `void_id` voided
        nothing this index kept aside."""
        rows, aside = self._entries.get(cadre_id, ((), ()))
        row = next((r for void, r in aside if void == void_id), None)
        if row is None:
            return False
        back = sorted((*rows, row), key=lambda r: r.seq)[-self._keep :]
        self._entries[cadre_id] = (tuple(back), tuple(a for a in aside if a[0] != void_id))
        return True

    # ---------------------------------------------------------------- questions

    def recent(self, cadre_id: str) -> list[EventSummary]:
        return list(self._rows(cadre_id))

    def last_seq(self, cadre_id: str) -> int | None:
        rows = self._rows(cadre_id)
        return rows[-1].seq if rows else None

    def cadre_ids(self) -> list[str]:
        return list(self._entries)

    def latest(self) -> dict[str, EventSummary]:
        return {cadre: rows[-1] for cadre, (rows, _aside) in self._entries.items() if rows}

    def is_voided(self, cadre_id: str, event_id: str) -> bool:
        """Whether a void (not undone) took this row away."""
        return any(r.event_id == event_id for _void, r in self._aside(cadre_id))

    def can_undo(self, cadre_id: str, void_id: str) -> bool:
        """Whether the row this void took away is still kept aside to be put back."""
        return any(void == void_id for void, _row in self._aside(cadre_id))

    def seq_of(self, event_id: str) -> int | None:
        """The seq of an indexed event, None when it is not (or no longer) in the index."""
        for rows, _aside in self._entries.values():
            for row in rows:
                if row.event_id == event_id:
                    return row.seq
        return None

    # ---------------------------------------------------------------- the manifest's part

    def load(self, cadres: dict[str, list[list[Any]]]) -> None:
        """Rows as the manifest holds them; raises KeyError, TypeError or ValueError when they
        are incomplete."""
        entries: dict[str, Entry] = {}
        for cadre, rows in cadres.items():
            live = tuple(EventSummary.from_json(row) for row in rows if len(row) == ROW_FIELDS)
            aside = tuple(
                (str(row[-1]), EventSummary.from_json(row[:-1]))
                for row in rows
                if len(row) == ROW_FIELDS + 1
            )
            if len(live) + len(aside) != len(rows):
                raise ValueError(f"rows of cadre {cadre!r} have the wrong length")
            entries[cadre] = (live, aside)
        self._entries = entries
        # Rows as read are rows as they will be written: no need to format them again.
        self._json = {
            cadre: (entries[cadre], _cadre_json(cadre, rows)) for cadre, rows in cadres.items()
        }

    def clear(self) -> None:
        self._entries, self._json = {}, {}

    def snapshot(self) -> dict[str, Entry]:
        """The index as it is now, for a manifest written later (call under the log's lock)."""
        return dict(self._entries)

    def manifest_json(
        self, snapshot: dict[str, Entry] | None = None, pause: Callable[[], None] | None = None
    ) -> str:
        """The members of the manifest's "cadres" object, without the braces. `pause` is called
        after every few cadres encoded afresh (the fold lets a scan run)."""
        entries = self._entries if snapshot is None else snapshot
        parts = []
        encoded = 0
        for cadre, entry in entries.items():
            cached = self._json.get(cadre)
            if cached is not None and cached[0] is entry:
                parts.append(cached[1])
                continue
            rows, aside = entry
            rows_json = [row.to_json() for row in rows]
            rows_json += [[*row.to_json(), void] for void, row in aside]
            text = _cadre_json(cadre, rows_json)
            self._json[cadre] = (entry, text)
            parts.append(text)
            encoded += 1
            if pause is not None and encoded % 32 == 0:
                pause()
        return ",".join(parts)
