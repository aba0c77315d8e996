"""How the event log is sized: events per segment, per fold, per cadre in memory, retention."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreConfig:
    segment_events: int = 1000
    checkpoint_events: int = 250
    recent_per_cadre: int = 4  # effective events kept per cadre in the in-memory index
    segment_cache: int = 2  # sealed segments kept parsed in memory for reads
    # Acknowledged segments this much older than the newest event move to archive/ at
    # checkpoints; None leaves it to archive_old().
    retention_days: float | None = None

    def __post_init__(self) -> None:
        if self.segment_events < 1 or self.checkpoint_events < 1 or self.recent_per_cadre < 1:
            raise ValueError("store sizes must be at least 1")
