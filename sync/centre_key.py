"""The centre's signing key: how the centre signs its answers and how a kiosk checks them.

A kiosk trusts one centre: at enrolment it pins the fingerprint of the centre's Ed25519 key (the
fingerprint travels in the enrolment QR, CKE2), and from then on it takes no answer that key did
not sign. What an answer changes on a kiosk is exactly what an attacker on the path would want to
change: the badge public keys (accept their own badges), revocations, the roster, settings, the
push acknowledgement (the cursor moves: events never reach the centre) and the centre's time
(the kiosk's trusted clock). So every answer of the kiosk API is signed, not only the pull.

What is signed (`answer_message`): a domain string, the API path ("/pull"), the kiosk's nonce
(a fresh random value per request, in `X-Cadre-Nonce`: an old answer cannot be replayed for a
new request), the sha256 of the request body (the answer belongs to this batch, these
versions), the status and the sha256 of the response body. The signature travels in
`X-Cadre-Signature: v1 <fingerprint> <base64>`.

Rotation: the centre may replace its key; the new key is announced by a statement signed by the
old one (`Rotation`). A kiosk pinned to any earlier key follows the chain link by link, each
checked with the key before it, and pins the newest. A key that leaked can sign a rotation too,
so after a leak kiosks are enrolled again (or pinned by hand) rather than rotated.

The fingerprint is 32 characters of base32 (160 bits of a sha256): in the QR alphanumeric
alphabet, and read aloud or typed in groups of four.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

NONCE_HEADER = "X-Cadre-Nonce"
SIGNATURE_HEADER = "X-Cadre-Signature"
SIGNATURE_VERSION = "v1"
FINGERPRINT_CHARS = 32
MAX_ROTATIONS = 64
_ANSWER_DOMAIN = b"cadre-centre-answer/v1\x00"
_ROTATION_DOMAIN = b"cadre-centre-rotation/v1\x00"
_FINGERPRINT_DOMAIN = b"cadre-centre-key/v1\x00"
_NONCE = re.compile(r"[0-9a-f]{16,64}")
_FINGERPRINT = re.compile(rf"[A-Z2-7]{{{FINGERPRINT_CHARS}}}")


class UntrustedAnswer(ValueError):
    """An answer this kiosk must not act on; str() says why, for the lead's readiness panel."""


class SignedByAnotherKey(UntrustedAnswer):
    """Well formed, but signed by a key other than the pinned one (a rotation, or an impostor)."""

    def __init__(self, message: str, fingerprint: str):
        super().__init__(message)
        self.fingerprint = fingerprint


# --- keys and fingerprints -------------------------------------------------------------------


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public(key)).decode("ascii")


def public_key_from(text: str) -> Ed25519PublicKey:
    """A base64 raw Ed25519 public key; ValueError when it is not one."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a base64 Ed25519 public key") from exc


def fingerprint(key: Ed25519PublicKey) -> str:
    digest = hashlib.sha256(_FINGERPRINT_DOMAIN + raw_public(key)).digest()
    return base64.b32encode(digest).decode("ascii")[:FINGERPRINT_CHARS]


def shown(fp: str) -> str:
    """ABCD-EFGH-...: for people to compare and type."""
    return "-".join(fp[i : i + 4] for i in range(0, len(fp), 4))


def parse_fingerprint(text: str) -> str:
    """A fingerprint as typed (dashes, spaces, lower case) in its canonical form."""
    fp = re.sub(r"[\s-]", "", text).upper()
    if not _FINGERPRINT.fullmatch(fp):
        raise ValueError(
            f"centre key fingerprint must be {FINGERPRINT_CHARS} characters of A-Z and 2-7 "
            "(dashes allowed)"
        )
    return fp


# --- answers ---------------------------------------------------------------------------------


def clean_nonce(value: str | None) -> str:
    """The nonce as the centre signs it: lower-case hex of 16-64 characters, else empty."""
    value = (value or "").strip()
    return value if _NONCE.fullmatch(value) else ""


def answer_message(
    path: str, nonce: str, request_body: bytes, status: int, response_body: bytes
) -> bytes:
    parts = [
        path.encode("utf-8", "surrogatepass"),
        nonce.encode("ascii"),
        hashlib.sha256(request_body).hexdigest().encode("ascii"),
        str(status).encode("ascii"),
        hashlib.sha256(response_body).hexdigest().encode("ascii"),
    ]
    return _ANSWER_DOMAIN + b"\n".join(parts)


def sign_answer(
    key: Ed25519PrivateKey,
    path: str,
    nonce: str,
    request_body: bytes,
    status: int,
    response_body: bytes,
) -> str:
    """The value of the signature header for one answer."""
    signature = key.sign(answer_message(path, nonce, request_body, status, response_body))
    encoded = base64.b64encode(signature).decode("ascii")
    return f"{SIGNATURE_VERSION} {fingerprint(key.public_key())} {encoded}"


def verify_answer(
    key: Ed25519PublicKey,
    header: str | None,
    path: str,
    nonce: str,
    request_body: bytes,
    status: int,
    response_body: bytes,
) -> None:
    """Raises UntrustedAnswer (SignedByAnotherKey for a foreign key) unless `key` signed it."""
    if not header:
        raise UntrustedAnswer("the answer is not signed")
    parts = header.split()
    if len(parts) != 3 or parts[0] != SIGNATURE_VERSION:
        raise UntrustedAnswer("the answer's signature is not in a known form")
    _, signer, encoded = parts
    expected = fingerprint(key)
    if signer != expected:
        raise SignedByAnotherKey(
            f"the answer is signed by key {shown(signer)[:24]}, not by this kiosk's centre "
            f"({shown(expected)})",
            signer,
        )
    try:
        signature = base64.b64decode(encoded, validate=True)
        key.verify(signature, answer_message(path, nonce, request_body, status, response_body))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise UntrustedAnswer(
            "the answer's signature does not match (changed on the way, or not from the centre)"
        ) from exc


# --- rotation --------------------------------------------------------------------------------


class Rotation(BaseModel):
    """The old key says: from `made_at` on, my successor is `new_public_key`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    old_public_key: str = Field(max_length=100)
    new_public_key: str = Field(max_length=100)
    made_at: datetime
    signature: str = Field(max_length=200)

    def message(self) -> bytes:
        body = {
            "old_public_key": self.old_public_key,
            "new_public_key": self.new_public_key,
            "made_at": self.made_at.isoformat(),
        }
        return _ROTATION_DOMAIN + json.dumps(body, sort_keys=True).encode("ascii")

    @property
    def old_fingerprint(self) -> str:
        return fingerprint(public_key_from(self.old_public_key))


def sign_rotation(old: Ed25519PrivateKey, new: Ed25519PublicKey, made_at: datetime) -> Rotation:
    unsigned = Rotation(
        old_public_key=public_key_text(old.public_key()),
        new_public_key=public_key_text(new),
        made_at=made_at,
        signature="",
    )
    signature = base64.b64encode(old.sign(unsigned.message())).decode("ascii")
    return unsigned.model_copy(update={"signature": signature})


def follow_rotations(
    start_fingerprint: str, rotations: Sequence[Rotation], target: Ed25519PublicKey
) -> Ed25519PublicKey:
    """`target` if a chain of rotations, each signed by the key before it, leads there from the
    key with `start_fingerprint`; raises UntrustedAnswer otherwise."""
    goal = fingerprint(target)
    current = start_fingerprint
    by_old: dict[str, Rotation] = {}
    for rotation in rotations[:MAX_ROTATIONS]:
        try:
            by_old.setdefault(rotation.old_fingerprint, rotation)
        except ValueError:
            continue
    seen: set[str] = set()
    while current != goal:
        found = by_old.get(current)
        if found is None or current in seen:
            raise UntrustedAnswer(
                f"the centre's key changed to {shown(goal)} with no rotation signed by the key "
                f"this kiosk trusts ({shown(start_fingerprint)})"
            )
        seen.add(current)
        try:
            old = public_key_from(found.old_public_key)
            old.verify(base64.b64decode(found.signature, validate=True), found.message())
            current = fingerprint(public_key_from(found.new_public_key))
        except (binascii.Error, ValueError, InvalidSignature) as exc:
            raise UntrustedAnswer(
                "a rotation of the centre's key is not signed by the key before it"
            ) from exc
    return target


class PinnedKey:
    """The centre key a kiosk trusts, and what to do when a signed rotation moves it on."""

    def __init__(
        self,
        key: Ed25519PublicKey,
        on_rotate: Callable[[Ed25519PublicKey], None] | None = None,
    ) -> None:
        self.key = key
        self._on_rotate = on_rotate

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def rotate_to(self, key: Ed25519PublicKey) -> None:
        if self._on_rotate is not None:
            self._on_rotate(key)  # durable first: a crash after this still trusts the new key
        self.key = key
