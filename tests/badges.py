"""Badges for tests that push records to the centre: one issuing key for the whole test run.

Camera and wedge records count at the centre only with a badge proof signed by a key it knows:
`badge()` issues one with TEST_KEY and `write_issuing_key` puts that key where a centre app reads
its own (`issuing_key.pem`); tests/proofs.py holds what `ingest_events` needs to know it.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.badge_token import issue_token

TEST_KEY = Ed25519PrivateKey.generate()
ISSUED = date(2026, 11, 1)


def badge(cadre_id: str, serial: int = 1, key: Ed25519PrivateKey = TEST_KEY) -> str:
    return issue_token(key, cadre_id, serial, ISSUED)


def write_issuing_key(path: Path) -> None:
    """TEST_KEY as a centre's issuing key file (PEM, 0600)."""
    pem = TEST_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
