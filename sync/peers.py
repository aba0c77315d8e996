"""Kiosks of one site talking to each other: who the peers are and how an exchange is signed.

Each kiosk has its own Ed25519 key pair for its peers (made on the kiosk, the private half never
leaves it). The kiosk sends the public half with each pull; the centre answers, in the signed
pull answer, the site's live peers (`PeersAnswer`): enrolled, not revoked, with a key. A kiosk
talks only to the kiosks of that list, so a kiosk of another site, or one revoked at the centre,
is refused from the next pull on.

    GET /peers/events?origin=K&after=SEQ&limit=N     -> PeerEventsAnswer (signed)

The asker signs the request (`request_message`): which site, who asks, whom, the path with its
query and a fresh nonce. The answerer signs its answer (`answer_message`) over the same nonce and
the sha256 of the body, so an answer cannot be replayed for another request nor changed on the
way. Only the origin kiosk serves its own events: the answer's signature is the origin's word
that these records are its own, and each record's hash chain (seq, prev_hash) shows nothing was
left out between them.

No TLS: what travels is what the kiosk's screen shows and the badge token a cadre holds up at the
gate; an eavesdropper on the site's LAN reads it, cannot change it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from typing import Annotated, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

PEER_EVENTS_PATH = "/peers/events"
MAX_PEERS = 64
MAX_PEER_EVENTS = 500  # events in one answer
MAX_ANSWER_BYTES = 2 * 1024 * 1024  # an answer larger than this is garbage, not read further

KIOSK_HEADER = "X-Peer-Kiosk"
NONCE_HEADER = "X-Peer-Nonce"
SIGNATURE_HEADER = "X-Peer-Signature"
_REQUEST_DOMAIN = b"cadre-peer-request/v1\x00"
_ANSWER_DOMAIN = b"cadre-peer-answer/v1\x00"
_NONCE = re.compile(r"[0-9a-f]{32,64}")

Ident = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
]
PublicKeyText = Annotated[str, StringConstraints(min_length=40, max_length=100)]
# host:port (or [v6]:port) where the kiosk's pages listen on the site's LAN.
Address = Annotated[str, StringConstraints(max_length=100, pattern=r"^[A-Za-z0-9.:\[\]-]*$")]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeerInfo(_Message):
    kiosk_id: Ident
    public_key: PublicKeyText  # base64 of the raw 32 bytes
    address: Address = ""  # "" : not known (found on the LAN, or not at all)


class PeersAnswer(_Message):
    """The site's live peers of the asking kiosk, itself left out (the pull answer's `peers`)."""

    site_id: Annotated[str, StringConstraints(max_length=64)]
    peers: list[PeerInfo] = Field(default_factory=list, max_length=MAX_PEERS)


class PeerEventsAnswer(_Message):
    """The origin's records after `after`, in seq order; `head_seq`: its last record now."""

    origin: Ident
    site_id: Annotated[str, StringConstraints(max_length=64)]
    head_seq: int = Field(ge=0)
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_PEER_EVENTS)


class PeerKeyError(ValueError):
    pass


def new_nonce() -> str:
    return secrets.token_hex(16)


def nonce_is_valid(nonce: str) -> bool:
    return bool(_NONCE.fullmatch(nonce))


def public_text(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode("ascii")


def public_key_of(text: str) -> Ed25519PublicKey:
    """The key `text` holds (base64 of 32 raw bytes); PeerKeyError when it holds none."""
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise PeerKeyError(f"not an Ed25519 public key: {exc}") from None


def _field(text: str) -> bytes:
    # Length-prefixed, so no choice of kiosk ids or paths can make two messages alike.
    data = text.encode("utf-8")
    return len(data).to_bytes(4, "big") + data


def request_message(site_id: str, asker: str, answerer: str, path: str, nonce: str) -> bytes:
    """What the asker signs: `path` with its query string, as sent."""
    return _REQUEST_DOMAIN + b"".join(
        _field(part) for part in (site_id, asker, answerer, path, nonce)
    )


def answer_message(
    site_id: str, answerer: str, asker: str, nonce: str, status: int, body: bytes
) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return _ANSWER_DOMAIN + b"".join(
        _field(part) for part in (site_id, answerer, asker, nonce, str(status), digest)
    )


def sign(private_key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message)).decode("ascii")


def verify(public_key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw, message)
    except InvalidSignature:
        return False
    return True
