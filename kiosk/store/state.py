"""Where the log stands: the seqs it holds, where they are, and what the centre acknowledged."""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.events import GENESIS_HASH, Event


@dataclass
class LogState:
    """Guarded by the log's lock. Recovery sets it; appends, the fold and the cursor move it."""

    through: int = 0  # every event up to here is in a segment
    buffer: list[Event] = field(default_factory=list)  # events after `through`, in seq order
    # Each buffered event's JSON as its journal line holds it (no newline): the fold writes these
    # bytes into the segment as they are, instead of encoding the events again.
    lines: list[bytes] = field(default_factory=list)
    last_seq: int = 0
    head_hash: str = GENESIS_HASH
    acked: int = 0  # the highest seq the centre acknowledged (cursor.json)
