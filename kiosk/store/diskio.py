"""Every change the store makes on disk goes through `DiskIO`, so tests can make the disk fail
or record what it was asked to do.

A real disk fills up, turns read-only after an SD-card error, or dies mid-write. Tests pass a
subclass that raises ENOSPC or EROFS from `write` or `fsync` at a chosen moment; the store must
then refuse cleanly and leave what it stored intact. The power-cut tests pass one that records
every operation (open, write, fsync, rename, mkdir, unlink, fsync of a folder) and replays them
as a power cut may have left them. Reads go to the file system directly: they change nothing.

The kiosk's other files (clock, roster, settings, enrolment) are written with the same helpers:
`atomic_write_bytes` (temp file, fsync, rename, fsync the folder) and `make_dirs` (each folder
made, then its parent fsync'd, so a power cut cannot drop it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"


class StoreWriteError(OSError):
    """The disk refused a write (full, read-only, failing). Nothing confirmed was damaged."""

    def __init__(self, what: str, cause: OSError):
        self.cause = cause
        self.what = what
        super().__init__(cause.errno, f"{what}: {describe_os_error(cause)}")


def describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.EROFS:
        return "the disk is read-only"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is exhausted"
    if exc.errno == errno.EIO:
        return "the disk reported an input/output error"
    return exc.strerror or str(exc)


class DiskIO:
    """Thin wrapper over the os calls the store needs. Subclass it to inject faults."""

    def open_append(self, path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def open_new(self, path: Path, mode: int = 0o640) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def close(self, fd: int) -> None:
        os.close(fd)

    def replace(self, source: Path, target: Path) -> None:
        os.replace(source, target)

    def unlink(self, path: Path) -> None:
        os.unlink(path)

    def mkdir(self, path: Path) -> bool:
        """Make one folder (its parent must exist); False when it was there already."""
        try:
            os.mkdir(path, 0o750)
        except FileExistsError:
            return False
        return True

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_all(self, fd: int, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            written = self.write(fd, data[offset:] if offset else data)
            if written <= 0:
                raise OSError(errno.EIO, "write returned no progress")
            offset += written


def atomic_write_bytes(disk: DiskIO, path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write `path` so a crash leaves either the old content or the new, never a mix.

    tmp file, fsync, rename over the target, fsync the folder (so the rename itself survives a
    power cut). On failure the temp file is removed and the old file is untouched. `mode` (say
    0o600 for a secret) is given to a temp file made afresh, never to one a crash left behind.
    """
    tmp = path.with_name(path.name + TEMP_SUFFIX)
    if mode is not None and os.path.lexists(tmp):
        disk.unlink(tmp)
    fd = disk.open_new(tmp) if mode is None else disk.open_new(tmp, mode)
    try:
        try:
            disk.write_all(fd, data)
            disk.fsync(fd)
        finally:
            disk.close(fd)
        disk.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            disk.unlink(tmp)
        raise
    disk.fsync_dir(path.parent)


def atomic_write_json(disk: DiskIO, path: Path, value: Any) -> None:
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    atomic_write_bytes(disk, path, data)


def make_dirs(disk: DiskIO, path: Path) -> list[Path]:
    """Make `path` and the folders above it that are missing, each followed by an fsync of its
    parent: a folder's name is durable only once its parent is synced. Returns those made."""
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    made: list[Path] = []
    for folder in reversed(missing):
        if disk.mkdir(folder):
            made.append(folder)
        disk.fsync_dir(folder.parent)
    return made


def remove_stale_temp_files(disk: DiskIO, folder: Path) -> list[Path]:
    """Temp files are only ever left by a crash mid-write; their content was never committed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.glob("*" + TEMP_SUFFIX)):
        # A read-only disk keeps them; they are ignored all the same.
        with contextlib.suppress(OSError):
            disk.unlink(path)
            removed.append(path)
    return removed
