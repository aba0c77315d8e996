"""The centre's badge-issuing key. Only the centre ever holds a private key."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sync.badge_token import key_id_of


class KeyFileError(Exception):
    pass


def create_issuing_key(path: Path) -> bool:
    """Write a new key at `path` (mode 0600) unless one is there. True when a key was written.

    O_EXCL makes "never overwrite" hold even when two `central init` run at once.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    return True


def load_issuing_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path}: no issuing key; run `central init` first") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a readable PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def public_keyring(path: Path) -> dict[int, Ed25519PublicKey]:
    """Key id -> public key for the current key and every retired one kept beside it.

    Retired keys live as `<name>.retired-*.pub.pem` so badges printed before a rotation stay valid
    until they are revoked.
    """
    current = load_issuing_key(path).public_key()
    ring = {key_id_of(current): current}
    for retired in sorted(path.parent.glob(f"{path.stem}.retired-*.pub.pem")):
        key = serialization.load_pem_public_key(retired.read_bytes())
        if isinstance(key, Ed25519PublicKey):
            ring[key_id_of(key)] = key
    return ring
