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


class CadreIndex:
    """Cadre id -> its latest effective events, oldest first. Not thread-safe: the log calls it
    under its own lock."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._rows: dict[str, list[EventSummary]] = {}
        # cadre -> {void's event id -> the row it voided}, oldest first
        self._voided: dict[str, dict[str, EventSummary]] = {}
        # The index is most of the manifest (thousands of cadres) and most of it unchanged since
        # the last checkpoint: each cadre's JSON is kept until its rows change.
        self._json: dict[str, str] = {}

    def add(self, event: Event) -> None:
        if event.kind == "void":
            target = str(event.corrects)
            if not self._restore(event.cadre_id, target):
                self._drop(event.cadre_id, target, voided_by=str(event.event_id))
            return
        summary = EventSummary.of(event)
        self._json.pop(event.cadre_id, None)
        rows = self._rows.setdefault(event.cadre_id, [])
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
        del rows[: -self._keep]

    def _drop(self, cadre_id: str | None, event_id: str, voided_by: str | None = None) -> None:
        # A void names its cadre; a correction whose target is not among its cadre's rows
        # looks through every cadre.
        known = cadre_id is not None and cadre_id in self._rows
        cadres = [cadre_id] if known and cadre_id is not None else list(self._rows)
        for cadre in cadres:
            rows = self._rows[cadre]
            kept = [r for r in rows if r.event_id != event_id]
            if len(kept) != len(rows):
                self._rows[cadre] = kept
                self._json.pop(cadre, None)
                if voided_by is not None:
                    aside = self._voided.setdefault(cadre, {})
                    aside[voided_by] = next(r for r in rows if r.event_id == event_id)
                    while len(aside) > self._keep:
                        del aside[next(iter(aside))]
                return

    def _restore(self, cadre_id: str, void_id: str) -> bool:
        """Undo of the void `void_id`: its row back in its place. False when `void_id` voided
        nothing this index kept aside."""
        row = self._voided.get(cadre_id, {}).pop(void_id, None)
        if row is None:
            return False
        rows = self._rows.setdefault(cadre_id, [])
        rows.append(row)
        rows.sort(key=lambda r: r.seq)
        del rows[: -self._keep]
        self._json.pop(cadre_id, None)
        return True

    # ---------------------------------------------------------------- questions

    def recent(self, cadre_id: str) -> list[EventSummary]:
        return list(self._rows.get(cadre_id, ()))

    def last_seq(self, cadre_id: str) -> int | None:
        rows = self._rows.get(cadre_id)
        return rows[-1].seq if rows else None

    def cadre_ids(self) -> list[str]:
        return list(self._rows)

    def latest(self) -> dict[str, EventSummary]:
        return {cadre: rows[-1] for cadre, rows in self._rows.items() if rows}

    def is_voided(self, cadre_id: str, event_id: str) -> bool:
        """Whether a void (not undone) took this row away."""
        return any(r.event_id == event_id for r in self._voided.get(cadre_id, {}).values())

    def can_undo(self, cadre_id: str, void_id: str) -> bool:
        """Whether the row this void took away is still kept aside to be put back."""
        return void_id in self._voided.get(cadre_id, {})

    def seq_of(self, event_id: str) -> int | None:
        """The seq of an indexed event, None when it is not (or no longer) in the index."""
        for rows in self._rows.values():
            for row in rows:
                if row.event_id == event_id:
                    return row.seq
        return None

    # ---------------------------------------------------------------- the manifest's part

    def load(self, cadres: dict[str, list[list[Any]]]) -> None:
        """Rows as the manifest holds them; raises KeyError, TypeError or ValueError when they
        are incomplete."""
        live: dict[str, list[EventSummary]] = {}
        voided: dict[str, dict[str, EventSummary]] = {}
        for cadre, rows in cadres.items():
            live[cadre] = [EventSummary.from_json(row) for row in rows if len(row) == ROW_FIELDS]
            aside = {
                str(row[-1]): EventSummary.from_json(row[:-1])
                for row in rows
                if len(row) == ROW_FIELDS + 1
            }
            if len(live[cadre]) + len(aside) != len(rows):
                raise ValueError(f"rows of cadre {cadre!r} have the wrong length")
            if aside:
                voided[cadre] = aside
        self._rows, self._voided = live, voided
        # Rows as read are rows as they will be written: no need to format them again.
        self._json = {cadre: _cadre_json(cadre, rows) for cadre, rows in cadres.items()}

    def clear(self) -> None:
        self._rows, self._json, self._voided = {}, {}, {}

    def manifest_json(self) -> str:
        """The members of the manifest's "cadres" object, without the braces."""
        return ",".join(self._json_of(cadre) for cadre in self._rows)

    def _json_of(self, cadre: str) -> str:
        cached = self._json.get(cadre)
        if cached is None:
            rows = [row.to_json() for row in self._rows[cadre]]
            rows += [[*row.to_json(), void] for void, row in self._voided.get(cadre, {}).items()]
            cached = _cadre_json(cadre, rows)
            self._json[cadre] = cached
        return cached
