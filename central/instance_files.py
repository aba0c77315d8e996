"""The centre's instance folder holds secrets and personal data: only its owner may read it.

- the folder itself 0700; central.toml (may hold a database password), the SQLite store (every
  name and record; its -wal and -shm files take the database file's mode), the keys and the
  session secret 0600;
- an enrolment QR (`enrol-<kiosk>.png`) holds a live one-time code: written 0600, removed once
  the code is used or has expired (`sweep_enrolment_images`, run when a kiosk enrols, when the
  centre starts and by every `central kiosk` command).

Files are tightened when found looser (an instance made by an older version), never loosened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from central.db.schema import enrolment_codes
from central.settings import SETTINGS_FILE, CentralSettings
from central.timefix import to_utc_naive

log = logging.getLogger(__name__)

ENROL_IMAGE_GLOB = "enrol-*.png"
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def tighten(path: Path, mode: int) -> bool:
    """Take group and other permissions away from `path` if it has any; True when changed."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return False
    if current & ~mode & 0o077 == 0:
        return False
    os.chmod(path, current & mode)
    log.info("%s was mode %04o, now %04o", path, current, current & mode)
    return True


def sqlite_file(settings: CentralSettings, instance: Path) -> Path | None:
    url = make_url(settings.database_url_for(instance))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def create_private_file(path: Path) -> None:
    """An empty file at mode 0600 unless one is there (SQLite takes an empty file as an empty
    database, and its -wal and -shm files then get the same mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


def make_private(instance: Path, settings: CentralSettings) -> None:
    """The instance folder and every secret or personal file in it: owner only."""
    instance.mkdir(parents=True, exist_ok=True)
    tighten(instance, PRIVATE_DIR)
    database = sqlite_file(settings, instance)
    if database is not None:
        create_private_file(database)
    files = [
        instance / SETTINGS_FILE,
        settings.issuing_key_path(instance),
        settings.centre_key_path(instance),
        instance / "session_secret",
    ]
    if database is not None:
        files += [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    files += sorted(instance.glob(ENROL_IMAGE_GLOB))
    for path in files:
        tighten(path, PRIVATE_FILE)


def write_private(path: Path, data: bytes) -> None:
    """Write `path` at mode 0600 (replacing a file there, whatever its mode was)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def enrolment_image(instance: Path, kiosk_id: str) -> Path:
    return instance / f"enrol-{kiosk_id}.png"


def sweep_enrolment_images(instance: Path, engine: Engine, now: datetime) -> list[Path]:
    """Remove each enrol-<kiosk>.png whose kiosk has no code left that is unused and unexpired."""
    images = sorted(instance.glob(ENROL_IMAGE_GLOB))
    if not images:
        return []
    now = to_utc_naive(now)
    with engine.connect() as conn:
        live = set(
            conn.execute(
                select(enrolment_codes.c.kiosk_id).where(
                    enrolment_codes.c.used_at.is_(None), enrolment_codes.c.expires_at > now
                )
            ).scalars()
        )
    removed = []
    for image in images:
        kiosk_id = image.name[len("enrol-") : -len(".png")]
        if kiosk_id not in live:
            image.unlink(missing_ok=True)
            removed.append(image)
    return removed
