"""The centre's keys: the badge-issuing key and the centre key. Only the centre holds private
keys."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sync.badge_token import key_id_of
from sync.centre_key import Rotation, fingerprint, sign_rotation


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


# --- the centre key: signs every answer to kiosks (and, later, kiosk releases) ----------------
#
# A key of its own rather than the issuing key: it is used on every kiosk request by the serving
# process, while the issuing key signs badges; each can then be rotated without the other (a new
# issuing key is a signed pull answer; a new centre key is a rotation signed by the old one, and no
# badge needs reprinting), and a signature of one kind can never pass for the other.


def create_centre_key(path: Path) -> bool:
    """Write a new centre key at `path` (mode 0600) unless one is there. True when written."""
    return create_issuing_key(path)


def load_centre_key(path: Path) -> Ed25519PrivateKey:
    try:
        return load_issuing_key(path)
    except KeyFileError as exc:
        raise KeyFileError(str(exc).replace("no issuing key", "no centre key")) from exc


def rotations_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rotations.json")


def load_rotations(path: Path) -> list[Rotation]:
    """Every rotation of the centre key so far, oldest first."""
    try:
        data = json.loads(rotations_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise KeyFileError(f"{rotations_path(path)}: not readable JSON ({exc})") from exc
    return [Rotation.model_validate(item) for item in data]


def rotate_centre_key(path: Path, now: datetime) -> Rotation:
    """Replace the centre key with a new one, announced by a rotation the old key signs.

    Order matters for a crash: the statement is written (with the new key beside it) before the
    new key replaces the old, and the old private key is deleted last; only its public half is
    kept, since an old private key could sign a rotation for kiosks still pinned to it.
    """
    old = load_centre_key(path)
    new = Ed25519PrivateKey.generate()
    rotation = sign_rotation(old, new.public_key(), now)
    history = [r.model_dump(mode="json") for r in load_rotations(path)]
    history.append(rotation.model_dump(mode="json"))
    _write_private(rotations_path(path), json.dumps(history, indent=1).encode("utf-8"))
    retired = path.with_name(f"{path.stem}.retired-{fingerprint(old.public_key())}.pub.pem")
    _write_private(
        retired,
        old.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    _write_private(
        path,
        new.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return rotation


def _write_private(path: Path, data: bytes) -> None:
    """Temp file at 0600, fsync, rename over `path`."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)


class CentreSigner:
    """The centre key as the serving processes use it: read again when the file changes (a
    `central centre-key rotate` while the centre serves), so every process signs with the
    current key without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._key: Ed25519PrivateKey | None = None
        self._rotations: list[Rotation] = []

    def _load(self) -> tuple[Ed25519PrivateKey, list[Rotation]]:
        info = self.path.stat()
        stamp = (info.st_mtime_ns, info.st_ino)
        with self._lock:
            if self._key is None or stamp != self._stamp:
                self._key = load_centre_key(self.path)
                self._rotations = load_rotations(self.path)
                self._stamp = stamp
            return self._key, self._rotations

    def key(self) -> Ed25519PrivateKey:
        return self._load()[0]

    def rotations(self) -> list[Rotation]:
        return list(self._load()[1])

    def fingerprint(self) -> str:
        return fingerprint(self.key().public_key())
