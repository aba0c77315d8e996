"""Shared fixtures. Fakes for the outside world live in tests/fakes/ beside this file."""

from __future__ import annotations

from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.badge_token import key_id_of


@pytest.fixture(scope="session")
def issuing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def keyring(issuing_key):
    public = issuing_key.public_key()
    return {key_id_of(public): public}


@pytest.fixture
def issue_day() -> date:
    return date(2026, 11, 29)
