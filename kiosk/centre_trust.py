"""Which centre this kiosk trusts: the centre key pinned at enrolment, kept beside the log.

`centre_key.json` (0600) holds the centre's public key (not only its fingerprint, so every
answer can be checked without asking the centre who it is). It is written at enrolment (the
fingerprint comes from the enrolment QR and must match what the centre shows before the one-time
code is sent), by `kiosk pin-centre FINGERPRINT` (a kiosk enrolled before keys were pinned, or a
centre whose key had to be replaced), and when the centre shows a rotation the pinned key signed.
It is never taken from a pull answer, a setting or anything else the network brings.

The rule for the centre's address lives here too: plain http:// is refused unless
`sync_plain_http_allowed` says the network is one nobody else can listen on or change.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.private_files import PRIVATE_FILE, atomic_write
from sync.centre_key import (
    PinnedKey,
    UntrustedAnswer,
    fingerprint,
    follow_rotations,
    public_key_from,
    public_key_text,
    shown,
)
from sync.client import CentralClient, UntrustedCentre

log = logging.getLogger(__name__)

PIN_FILE = "centre_key.json"


class TrustError(Exception):
    """The kiosk will not talk to this centre; str() says why and what to do."""


def plain_http_problem(url: str, allowed: bool) -> str:
    """Why the kiosk will not use `url`, or "" when it may."""
    if urlsplit(url).scheme.lower() == "https" or allowed:
        return ""
    return (
        f"the centre URL {url} is plain http: anyone on the network could read this kiosk's "
        "token and roster and change what it is told. Use https://, or set "
        "sync_plain_http_allowed = true in kiosk.toml on a network nobody else can reach"
    )


def load_pinned(instance: Path) -> PinnedKey | None:
    """The pinned centre key (saving any rotation it follows), or None when none is pinned.
    Raises TrustError when the file is there but unreadable: never treated as "no pin"."""
    path = instance / PIN_FILE
    try:
        data = json.loads(path.read_bytes())
        key = public_key_from(str(data["public_key"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise TrustError(f"{PIN_FILE} is damaged ({exc}): run `kiosk pin-centre` again") from exc

    def rotated(new: Ed25519PublicKey) -> None:
        save_pinned(instance, new, via="rotation signed by the previous key")
        log.warning("the centre's key moved on to %s (a signed rotation)", shown(fingerprint(new)))

    return PinnedKey(key, on_rotate=rotated)


def save_pinned(instance: Path, key: Ed25519PublicKey, via: str) -> None:
    record = {
        "public_key": public_key_text(key),
        "fingerprint": fingerprint(key),
        "pinned_at": datetime.now(UTC).isoformat(),
        "via": via,
    }
    atomic_write(instance / PIN_FILE, json.dumps(record, indent=1).encode("utf-8"), PRIVATE_FILE)


def identify_centre(client: CentralClient, expected: str) -> PinnedKey:
    """The centre's key, once it matches `expected` (a fingerprint from an enrolment code or a
    person), directly or through rotations the expected key signed. Raises TrustError."""
    try:
        reply, key = client.centre()
    except UntrustedCentre as exc:
        raise TrustError(str(exc)) from exc
    if key.fingerprint == expected:
        return key
    try:
        follow_rotations(expected, reply.answer.rotations, key.key)
    except UntrustedAnswer as exc:
        raise TrustError(
            f"the centre at {client.base_url} has key {shown(key.fingerprint)}, not "
            f"{shown(expected)}: refused (another server, or someone between this kiosk and "
            "the centre)"
        ) from exc
    return key
