"""This kiosk's peer key, and the site's peers as the centre last named them.

`peer_key` (0600): the raw 32-byte Ed25519 seed, made on the kiosk at enrolment (or at the first
pull of a kiosk enrolled before peers). Its public half goes to the centre with each pull; a
stolen card speaks as this kiosk only, until the kiosk is revoked.

`peers.json`: the pull answer's `peers` (sync/peers.py), replaced whole at each pull. A kiosk
missing from it is no peer any more (revoked, moved, never enrolled): its requests are refused
and its records no longer fetched.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from kiosk.private_files import PRIVATE_FILE, atomic_write, locked
from sync.peers import PeerInfo, PeerKeyError, PeersAnswer, public_key_of

log = logging.getLogger(__name__)

KEY_FILE = "peer_key"
PEERS_FILE = "peers.json"


def new_key(instance: Path) -> Ed25519PrivateKey:
    """A new key pair for this kiosk (at enrolment: a kiosk enrolled again is a new peer)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    atomic_write(instance / KEY_FILE, seed, PRIVATE_FILE)
    return key


def load_key(instance: Path) -> Ed25519PrivateKey:
    """This kiosk's key; made now when there is none or the file is torn."""
    with locked(instance / (KEY_FILE + ".lock")):
        try:
            seed = (instance / KEY_FILE).read_bytes()
            if len(seed) == 32:
                return Ed25519PrivateKey.from_private_bytes(seed)
            log.warning("%s is damaged (%d bytes): a new peer key is made", KEY_FILE, len(seed))
        except FileNotFoundError:
            pass
        return new_key(instance)


class PeerDirectory:
    """The site's peers the centre named last (read by the puller and the endpoint)."""

    def __init__(self, instance: Path, site_id: str) -> None:
        self.path = instance / PEERS_FILE
        self.site_id = site_id
        self._lock = threading.Lock()
        self._peers: dict[str, PeerInfo] = {}
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._load()

    def _load(self) -> None:
        try:
            answer = PeersAnswer.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (ValidationError, ValueError) as exc:
            log.warning("%s unreadable (%s): no peers until the next pull", PEERS_FILE, exc)
            return
        self._take(answer)

    def _take(self, answer: PeersAnswer) -> None:
        peers: dict[str, PeerInfo] = {}
        keys: dict[str, Ed25519PublicKey] = {}
        if answer.site_id == self.site_id:
            for peer in answer.peers:
                try:
                    keys[peer.kiosk_id] = public_key_of(peer.public_key)
                except PeerKeyError:
                    continue
                peers[peer.kiosk_id] = peer
        with self._lock:
            self._peers, self._keys = peers, keys

    def replace(self, answer: PeersAnswer) -> None:
        """The centre's new list (a pull answer): kept on disk and used at once."""
        atomic_write(self.path, answer.model_dump_json().encode(), PRIVATE_FILE)
        self._take(answer)

    def peers(self) -> list[PeerInfo]:
        with self._lock:
            return list(self._peers.values())

    def key_of(self, kiosk_id: str) -> Ed25519PublicKey | None:
        with self._lock:
            return self._keys.get(kiosk_id)
