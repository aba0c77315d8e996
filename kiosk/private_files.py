"""The kiosk's instance folder holds secrets and personal data: only the kiosk's user reads it.

The folder is 0700 (the log, the roster with names, the token, the PIN hash and sessions inside);
files holding a secret are written 0600; a rewrite keeps the mode a file had (an installer who
made kiosk.toml 0600 keeps it so), and a new file starts at 0600.

`atomic_write` is the one place the enrolment, settings and lead-login files are written: temp
file, fsync, rename, fsync the folder, so a power cut leaves the old content or the new.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from kiosk.store.diskio import DiskIO, atomic_write_bytes, make_dirs

log = logging.getLogger(__name__)

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def make_private_dir(path: Path) -> None:
    """Make `path` (0700 when made here) and take group/other access away if it has any."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        try:
            os.chmod(path, current & PRIVATE_DIR)
        except PermissionError:  # not ours (a folder made by root for us): say so, go on
            log.warning("%s is mode %04o and cannot be made private", path, current)
            return
        log.info("instance folder %s was mode %04o, now %04o", path, current, current & 0o700)


def mode_of(path: Path, default: int = PRIVATE_FILE) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return default


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace `path` with `data`: a crash leaves the old content or the new, never a mix
    (kiosk.store's helper, through the DiskIO seam the power-cut tests replay).

    mode None keeps the mode the file had (0600 for a new one).
    """
    mode = mode_of(path) if mode is None else mode
    disk = DiskIO()
    make_dirs(disk, path.parent)
    atomic_write_bytes(disk, path, data, mode=mode)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (the running kiosk and a `kiosk` command) for a
    read-modify-write of a file; `path` is the lock file beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
