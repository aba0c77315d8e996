"""Badge tokens: what the QR on a cadre's badge holds, and how a kiosk checks it offline.

Payload = "CB" + format version digit + base32 (RFC 4648, upper case, no padding) of

    body      = version u8 | key_id u16 | issued (days since 2020-01-01) u16 | serial u16
                | len u8 | cadre_id (ASCII)
    signature = Ed25519 over DOMAIN + body (64 bytes)

Every character is in the QR alphanumeric alphabet, so the code stays small (version 6 at ECC M
for a 20-character id) and no decoder has to guess a charset. Names never go in the token; they
come from the roster. Kiosks hold public keys only, so a stolen kiosk cannot mint badges.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT_VERSION = 1
PREFIX = "CB"
DOMAIN = b"cadre-badge/v1\x00"
EPOCH = date(2020, 1, 1)
SIGNATURE_BYTES = 64
_HEADER = struct.Struct(">BHHHB")  # version, key_id, issued_day, serial, id length
CADRE_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,32}")
_BASE32_CHARS = re.compile(r"[A-Z2-7]+")
_ASCII_DIGITS = frozenset("0123456789")
# Shortest possible token: header + 1-char id + signature.
_MIN_RAW = _HEADER.size + 1 + SIGNATURE_BYTES

Reason = Literal[
    "ok",
    "foreign",  # a QR code that is not one of our badges at all (a URL, a product code)
    "malformed",  # looks like a badge but does not parse, or is not canonically encoded
    "wrong_version",
    "unknown_key",
    "bad_signature",
    "revoked",
]

REASON_TEXT: dict[str, str] = {
    "ok": "valid badge",
    "foreign": "not a cadre badge",
    "malformed": "damaged or incomplete badge code",
    "wrong_version": "badge format not supported by this kiosk",
    "unknown_key": "badge signed by an unknown key",
    "bad_signature": "badge signature does not match (forged or altered)",
    "revoked": "badge has been revoked",
}


class BadgeError(ValueError):
    """Raised when a badge cannot be issued (bad cadre id, serial out of range)."""


@dataclass(frozen=True)
class BadgeCheck:
    valid: bool
    reason: Reason
    cadre_id: str | None = None
    serial: int | None = None
    key_id: int | None = None
    issued: date | None = None

    @property
    def message(self) -> str:
        return REASON_TEXT[self.reason]

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["issued"] = self.issued.isoformat() if self.issued else None
        data["message"] = self.message
        return data


def key_id_of(public_key: Ed25519PublicKey) -> int:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return int.from_bytes(hashlib.sha256(raw).digest()[:2], "big")


def public_key_to_text(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def _b32encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def _b32decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 8)
    return base64.b32decode(padded)


def issue_token(private_key: Ed25519PrivateKey, cadre_id: str, serial: int, issued: date) -> str:
    if not CADRE_ID_PATTERN.fullmatch(cadre_id):
        raise BadgeError(f"cadre id {cadre_id!r} must be 1-32 characters of A-Z a-z 0-9 . _ -")
    if not 0 <= serial <= 0xFFFF:
        raise BadgeError(f"badge serial {serial} out of range 0-65535")
    day = (issued - EPOCH).days
    if not 0 <= day <= 0xFFFF:
        raise BadgeError(f"issue date {issued} out of range")
    key_id = key_id_of(private_key.public_key())
    ident = cadre_id.encode("ascii")
    body = _HEADER.pack(FORMAT_VERSION, key_id, day, serial, len(ident)) + ident
    signature = private_key.sign(DOMAIN + body)
    return f"{PREFIX}{FORMAT_VERSION}{_b32encode(body + signature)}"


def verify_token(
    payload: str,
    public_keys: Mapping[int, Ed25519PublicKey],
    revoked_through: Mapping[str, int] | None = None,
) -> BadgeCheck:
    """Check a scanned payload offline. Never raises: every input gets a reason.

    `revoked_through` maps a cadre id to the highest revoked serial: re-issuing a badge raises the
    serial and revokes the old ones in one entry.
    """
    if not isinstance(payload, str) or not payload.startswith(PREFIX):
        return BadgeCheck(False, "foreign")
    version_char, encoded = payload[len(PREFIX) : len(PREFIX) + 1], payload[len(PREFIX) + 1 :]
    # ASCII only: str.isdigit() also takes "²" (int() then raises) and "١" (int() reads it as
    # 1, so a non-canonical copy of a badge would pass).
    if version_char not in _ASCII_DIGITS:
        return BadgeCheck(False, "foreign")
    if int(version_char) != FORMAT_VERSION:
        return BadgeCheck(False, "wrong_version")
    if not _BASE32_CHARS.fullmatch(encoded):
        return BadgeCheck(False, "malformed")
    try:
        raw = _b32decode(encoded)
    except (binascii.Error, ValueError):
        return BadgeCheck(False, "malformed")
    # base32 leaves spare bits in the last character: several strings decode to the same bytes.
    # Only the canonical one is a badge, so a copied-and-altered token cannot pass as the original.
    if _b32encode(raw) != encoded or len(raw) < _MIN_RAW:
        return BadgeCheck(False, "malformed")
    body, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
    version, key_id, day, serial, id_len = _HEADER.unpack_from(body)
    ident = body[_HEADER.size :]
    if version != FORMAT_VERSION:
        return BadgeCheck(False, "wrong_version")
    if len(ident) != id_len:
        return BadgeCheck(False, "malformed")
    try:
        cadre_id = ident.decode("ascii")
    except UnicodeDecodeError:
        return BadgeCheck(False, "malformed")
    if not CADRE_ID_PATTERN.fullmatch(cadre_id):
        return BadgeCheck(False, "malformed")
    issued = EPOCH + timedelta(days=day)
    key = public_keys.get(key_id)
    if key is None:
        # Nothing from an unverified token is reported as fact, so no cadre id here.
        return BadgeCheck(False, "unknown_key", key_id=key_id)
    try:
        key.verify(signature, DOMAIN + body)
    except InvalidSignature:
        return BadgeCheck(False, "bad_signature", key_id=key_id)
    revoked = (revoked_through or {}).get(cadre_id)
    if revoked is not None and serial <= revoked:
        return BadgeCheck(False, "revoked", cadre_id, serial, key_id, issued)
    return BadgeCheck(True, "ok", cadre_id, serial, key_id, issued)
