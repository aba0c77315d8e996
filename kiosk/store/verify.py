"""Check a log end to end: every event valid, seqs contiguous, each linked to the one before."""

from __future__ import annotations

from dataclasses import dataclass, field

from kiosk.store.log import EventLog
from sync.events import GENESIS_HASH


@dataclass
class VerifyReport:
    count: int = 0
    last_seq: int = 0
    duplicate_seqs: list[int] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    bad_hashes: list[int] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (first missing, last missing)
    chain_breaks: list[int] = field(default_factory=list)  # seqs whose prev_hash does not link

    @property
    def ok(self) -> bool:
        return (
            not (self.duplicate_seqs or self.duplicate_ids or self.bad_hashes or self.gaps)
            and not self.chain_breaks
        )


def verify_log(log: EventLog, include_archived: bool = True) -> VerifyReport:
    report = VerifyReport()
    seen_ids: set[str] = set()
    previous_seq = 0
    previous_hash = GENESIS_HASH
    for event in log.iter_events(include_archived=include_archived):
        report.count += 1
        event_id = str(event.event_id)
        if event_id in seen_ids:
            report.duplicate_ids.append(event_id)
        seen_ids.add(event_id)
        if not event.hash_is_valid():
            report.bad_hashes.append(event.seq)
        if event.seq <= previous_seq:
            report.duplicate_seqs.append(event.seq)
            continue
        if event.seq != previous_seq + 1:
            report.gaps.append((previous_seq + 1, event.seq - 1))
        elif event.prev_hash != previous_hash:
            report.chain_breaks.append(event.seq)
        previous_seq, previous_hash = event.seq, event.hash
        report.last_seq = event.seq
    return report
