"""What `ingest_events` needs to judge the badges of tests/badges.py: CHECKS."""

from __future__ import annotations

from central.ingest.proofs import BadgeProofs
from central.ingest.push import Checks
from sync.badge_token import key_id_of
from tests.badges import TEST_KEY, badge, write_issuing_key

__all__ = ["CHECKS", "TEST_KEY", "badge", "write_issuing_key"]

CHECKS = Checks(BadgeProofs.of_keys({key_id_of(TEST_KEY.public_key()): TEST_KEY.public_key()}))
