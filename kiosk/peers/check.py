"""What a peer's answer must be before any record of it is kept.

Every record: a valid event of the origin kiosk and of this site, whose hash holds, chained to the
last record kept of that origin (seq + 1, prev_hash); a camera or wedge record carries its badge
proof, checked offline with the issuing keys this kiosk holds. Revocations are not applied here:
the badge may have been revoked after the scan, and the origin's log stays whole; the centre
judges what counts. Manual records, voids and corrections carry the lead's name and reason and
are the origin's word (signed by it): kept, counted apart at the centre as ever.

Records at or below the last one kept are skipped (the kept ones stand). The records before
the first bad one are kept; the bad one and all after it are not, and the
reason code is said (on the readiness panel and the lead's page).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from sync.badge_token import verify_token
from sync.events import GENESIS_HASH, Event

# Reason codes (kiosk/web words them).
MALFORMED = "malformed"
BAD_HASH = "bad_hash"
OTHER_KIOSK = "other_kiosk"
OTHER_SITE = "other_site"
BROKEN_CHAIN = "broken_chain"
NO_PROOF = "no_proof"
BAD_PROOF = "bad_proof"


@dataclass(frozen=True)
class Checked:
    events: list[Event]
    problem: str = ""  # "" : every record passed
    detail: str = ""


def check_records(
    raw: Sequence[Mapping[str, Any]],
    origin: str,
    site_id: str,
    head: tuple[int, str] | None,
    keyring: Mapping[int, Ed25519PublicKey],
) -> Checked:
    """The records of `raw` that pass, up to the first that does not. `head`: (seq, hash) of the
    last record of `origin` kept here; None: none yet, so the first record begins the chain (the
    origin's own signed answer vouches for where its window starts)."""
    kept: list[Event] = []
    for index, fields in enumerate(raw):
        where = f"record {index}"
        try:
            event = Event.model_validate(fields)
        except (ValidationError, ValueError, TypeError) as exc:
            return Checked(kept, MALFORMED, f"{where}: {str(exc)[:200]}")
        if not event.hash_is_valid():
            return Checked(kept, BAD_HASH, f"{where} (seq {event.seq})")
        if event.kiosk_id != origin:
            return Checked(kept, OTHER_KIOSK, f"{where}: {event.kiosk_id}")
        if event.site_id != site_id:
            return Checked(kept, OTHER_SITE, f"{where}: {event.site_id}")
        if head is not None:
            seq, prev = head
            if event.seq <= seq:
                continue  # kept already (an answer that overlaps what was asked): ours stand
            if event.seq != seq + 1 or event.prev_hash != prev:
                return Checked(kept, BROKEN_CHAIN, f"{where}: seq {event.seq} after {seq}")
        elif event.seq == 1 and event.prev_hash != GENESIS_HASH:
            return Checked(kept, BROKEN_CHAIN, f"{where}: seq 1 without the genesis hash")
        problem = _proof_problem(event, keyring)
        if problem:
            return Checked(kept, problem, f"{where} (seq {event.seq})")
        kept.append(event)
        head = (event.seq, event.hash)
    return Checked(kept)


def _proof_problem(event: Event, keyring: Mapping[int, Ed25519PublicKey]) -> str:
    if event.source == "manual":
        return ""
    if not event.badge_token:
        return NO_PROOF
    check = verify_token(event.badge_token, keyring)
    if not check.valid or check.cadre_id != event.cadre_id or check.serial != event.badge_serial:
        return BAD_PROOF
    return ""
