"""What became of each record of a set: standing, voided, replaced by a correction, or (for a
void) undone by a void of it. The centre reads corrections the same way (central/stays/pairing.py):
a corrector that is itself voided no longer counts, so what it named stands again."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

from sync.events import Event

Standing = Literal["voided", "replaced", "undone"]


def standing(events: Iterable[Event]) -> dict[str, Standing]:
    """Event id -> what became of it, for every record of `events` that no longer stands.

    "undone" is a void that was itself voided (the lead's undo); the record it had voided then
    stands again. A loop of corrections (impossible from one kiosk) lets its records stand."""
    by_id = {str(e.event_id): e for e in events}
    correctors: dict[str, list[str]] = defaultdict(list)
    for event in by_id.values():
        if event.corrects is not None:
            correctors[str(event.corrects)].append(str(event.event_id))
    memo: dict[str, bool] = {}

    def removed(event_id: str, visiting: frozenset[str] = frozenset()) -> bool:
        if event_id in memo:
            return memo[event_id]
        if event_id in visiting:
            return False
        inner = visiting | {event_id}
        result = any(not removed(c, inner) for c in correctors.get(event_id, ()))
        memo[event_id] = result
        return result

    out: dict[str, Standing] = {}
    for event_id, event in by_id.items():
        if not removed(event_id):
            continue
        if event.kind == "void":
            out[event_id] = "undone"
            continue
        standing_correctors = [by_id[c] for c in correctors[event_id] if not removed(c)]
        voids = [c for c in standing_correctors if c.kind == "void"]
        out[event_id] = "voided" if voids else "replaced"
    return out
