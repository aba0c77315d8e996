"""The kiosk's own copy of the roster, the badge public keys and the revocations.

The sync agent pulls a new snapshot from the centre and hands it to `RosterStore.save`; the scan
path reads `RosterStore.current`, which is swapped in one assignment, so a scan never sees half a
roster. On disk it is `roster.json` in the instance folder, replaced atomically, with the previous
snapshot kept as `roster.prev.json` in case the newest one cannot be read.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiosk.store.diskio import DiskIO, atomic_write_bytes, make_dirs
from sync.badge_token import key_id_of, public_key_from_text

log = logging.getLogger(__name__)

ROSTER_FILE = "roster.json"
PREVIOUS_FILE = "roster.prev.json"


class RosterError(ValueError):
    pass


class CadreEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=100)
    unit: str = Field("", max_length=200)
    site_id: str = Field(default="", max_length=64)


class RosterSnapshot(BaseModel):
    """One version of what the centre told this kiosk."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    version: int = Field(default=0, ge=0)
    site_id: str = Field(default="", max_length=64)
    cadres: dict[str, CadreEntry] = Field(default_factory=dict)
    public_keys: dict[int, str] = Field(
        default_factory=dict, description="key id -> raw Ed25519 public key, base64"
    )
    revoked_through: dict[str, int] = Field(
        default_factory=dict, description="cadre id -> highest revoked badge serial"
    )

    @field_validator("public_keys")
    @classmethod
    def _keys_parse(cls, keys: dict[int, str]) -> dict[int, str]:
        for key_id, text in keys.items():
            try:
                public = public_key_from_text(text)
            except ValueError as exc:
                raise ValueError(f"public key {key_id} is not a base64 Ed25519 key") from exc
            if key_id_of(public) != key_id:
                raise ValueError(f"public key listed as {key_id} has id {key_id_of(public)}")
        return keys

    @cached_property
    def keyring(self) -> dict[int, Ed25519PublicKey]:
        return {key_id: public_key_from_text(text) for key_id, text in self.public_keys.items()}

    def entry(self, cadre_id: str) -> CadreEntry | None:
        return self.cadres.get(cadre_id)

    def on_site(self, cadre_id: str) -> bool:
        """Listed, and for this site (an entry without a site counts as this site's)."""
        entry = self.cadres.get(cadre_id)
        if entry is None:
            return False
        return not entry.site_id or not self.site_id or entry.site_id == self.site_id

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(indent=1).encode()


class RosterStore:
    """Loads the saved snapshot at start; `save` replaces it on disk and in memory."""

    def __init__(self, instance: Path, disk: DiskIO | None = None) -> None:
        self.path = Path(instance) / ROSTER_FILE
        self.previous_path = Path(instance) / PREVIOUS_FILE
        self._disk = disk or DiskIO()
        self._save_lock = threading.Lock()
        self.problem: str | None = None  # why the newest snapshot could not be used, if so
        self._current = self._load()

    @property
    def current(self) -> RosterSnapshot:
        return self._current

    def _load(self) -> RosterSnapshot:
        problems = []
        for path in (self.path, self.previous_path):
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                snapshot = RosterSnapshot.model_validate_json(raw)
            except ValidationError as exc:
                problems.append(f"{path.name}: {exc.errors()[0]['msg']}")
                continue
            if problems:
                self.problem = "; ".join(problems) + f" (using {path.name})"
                log.error("roster: %s", self.problem)
            return snapshot
        if problems:
            self.problem = "; ".join(problems) + " (no roster: every badge is refused)"
            log.error("roster: %s", self.problem)
        return RosterSnapshot()

    def reload(self) -> RosterSnapshot:
        """Read the roster file again (another RosterStore of this folder wrote it: enrolment)."""
        self._current = self._load()
        return self._current

    def save(self, snapshot: RosterSnapshot) -> None:
        """Make `snapshot` durable and current. Raises OSError (disk) with the old one intact."""
        if not isinstance(snapshot, RosterSnapshot):
            raise RosterError("save() takes a RosterSnapshot")
        data = snapshot.to_json_bytes()
        with self._save_lock:
            make_dirs(self._disk, self.path.parent)
            if self.path.exists():
                # Keep the last good one; a crash between the two steps leaves at least one.
                with contextlib.suppress(FileNotFoundError):
                    atomic_write_bytes(self._disk, self.previous_path, self.path.read_bytes())
            atomic_write_bytes(self._disk, self.path, data)
            self._current = snapshot
            self.problem = None

    def replace_from_json(self, raw: bytes | str) -> RosterSnapshot:
        """Validate JSON from the centre and save it; bad input leaves the current roster."""
        try:
            snapshot = RosterSnapshot.model_validate_json(raw)
        except ValidationError as exc:
            raise RosterError(f"roster from the centre refused: {exc}") from exc
        self.save(snapshot)
        return snapshot
