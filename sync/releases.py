"""Kiosk releases: what the centre signs and a kiosk checks before it installs new code.

A release is a wheel of this package. The centre signs its manifest (package name, version,
target, the wheel's file name, size and sha256) with the centre key, the key each kiosk pinned at
enrolment (sync/centre_key.py). The offer travels in the signed pull answer, but the kiosk checks
the manifest's own signature too, and the wheel's sha256 against it: a wheel is trusted because
the centre key signed its hash, not because of the connection it came over, so a copy from a
cache, a peer or a USB stick is as good as one from the centre, and a changed one is refused.

What is signed: a domain string (so a signature of an answer or a rotation can never pass for a
release, nor the other way round) and the manifest as canonical JSON. Which kiosks are offered a
release (sites, a percentage) is not signed: it is the centre's policy and changes as a rollout
widens; what a kiosk may install is only ever a wheel the centre key signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from sync.centre_key import fingerprint, shown

PACKAGE_NAME = "cadre-kiosk"
TARGET = "kiosk"  # what runs a release: the kiosk (the centre is not updated this way)
WHEEL_PATH = "/releases/{version}/wheel"  # under the API prefix; the kiosk's token
MAX_WHEEL_BYTES = 64 * 1024 * 1024
_DOMAIN = b"cadre-release/v1\x00"
_SHA256 = r"^[0-9a-f]{64}$"
# A wheel's file name as pip builds it: name-version-python-abi-platform.whl, no path.
_WHEEL_NAME = re.compile(
    r"^[A-Za-z0-9_.]+-[A-Za-z0-9_.!+]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl$"
)

VersionText = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ReleaseRefused(ValueError):
    """A release this kiosk must not install; str() says why in words for the readiness panel
    and the heartbeat."""


def parse_version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion as exc:
        raise ValueError(f"{text!r} is not a version (PEP 440, e.g. 1.4.2)") from exc


class ReleaseManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(max_length=64)] = PACKAGE_NAME
    version: VersionText
    target: Annotated[str, StringConstraints(max_length=32)] = TARGET
    wheel: Annotated[str, StringConstraints(min_length=5, max_length=200)]
    size: int = Field(ge=1, le=MAX_WHEEL_BYTES)
    sha256: Annotated[str, StringConstraints(pattern=_SHA256)]
    made_at: datetime

    @field_validator("version")
    @classmethod
    def _pep440(cls, value: str) -> str:
        parse_version(value)
        return value

    @field_validator("wheel")
    @classmethod
    def _wheel_name(cls, value: str) -> str:
        if not _WHEEL_NAME.fullmatch(value):
            raise ValueError("not a wheel file name (name-version-py-abi-platform.whl)")
        return value

    def message(self) -> bytes:
        body = self.model_dump(mode="json")
        return _DOMAIN + json.dumps(body, sort_keys=True, ensure_ascii=True).encode("ascii")


class SignedRelease(BaseModel):
    """A manifest with the centre key's signature: what `central release add` stores and what a
    pull answer's `update` offers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    manifest: ReleaseManifest
    signer: Annotated[str, StringConstraints(min_length=32, max_length=32)]  # key fingerprint
    signature: Annotated[str, StringConstraints(max_length=200)]  # base64 Ed25519


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_version(wheel_name: str) -> tuple[str, str]:
    """(distribution, version) from a wheel's file name; ValueError when it is not one."""
    if not _WHEEL_NAME.fullmatch(wheel_name):
        raise ValueError(
            f"{wheel_name!r} is not a wheel file name (name-version-py-abi-platform.whl)"
        )
    parts = wheel_name[: -len(".whl")].split("-")
    return parts[0], parts[1]


def sign_release(key: Ed25519PrivateKey, manifest: ReleaseManifest) -> SignedRelease:
    signature = base64.b64encode(key.sign(manifest.message())).decode("ascii")
    return SignedRelease(
        manifest=manifest, signer=fingerprint(key.public_key()), signature=signature
    )


def verify_release(key: Ed25519PublicKey, release: SignedRelease) -> ReleaseManifest:
    """The manifest when `key` (the pinned centre key) signed it for this package; raises
    ReleaseRefused otherwise."""
    expected = fingerprint(key)
    if release.signer != expected:
        raise ReleaseRefused(
            f"release {release.manifest.version} is signed by key {shown(release.signer)}, "
            f"not by this kiosk's centre ({shown(expected)}): not installed"
        )
    try:
        key.verify(base64.b64decode(release.signature, validate=True), release.manifest.message())
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise ReleaseRefused(
            f"release {release.manifest.version}: the signature does not match its manifest "
            "(changed after signing, or not from the centre): not installed"
        ) from exc
    manifest = release.manifest
    if manifest.name != PACKAGE_NAME or manifest.target != TARGET:
        raise ReleaseRefused(
            f"release {manifest.version} is {manifest.name} for {manifest.target}, "
            f"not {PACKAGE_NAME} for a {TARGET}: not installed"
        )
    return manifest


def check_wheel(manifest: ReleaseManifest, wheel: Path) -> None:
    """Raises ReleaseRefused unless `wheel` is the file the manifest names, byte for byte."""
    size = wheel.stat().st_size
    if size != manifest.size:
        raise ReleaseRefused(
            f"release {manifest.version}: the wheel has {size} bytes, the signed manifest says "
            f"{manifest.size}: not installed"
        )
    got = sha256_of(wheel)
    if got != manifest.sha256:
        raise ReleaseRefused(
            f"release {manifest.version}: the wheel's sha256 is {got[:16]}..., the signed "
            f"manifest says {manifest.sha256[:16]}...: not installed"
        )
