"""A real kiosk on 127.0.0.1 whose camera can be unplugged and whose disk can fill up.

    with faulty_kiosk(tmp_path, key, monkeypatch) as kiosk:
        kiosk.live.camera.show(kiosk.live.kit.badge("C001"))
        kiosk.disk.fill_up()          # every write of the store now fails with ENOSPC
        kiosk.live.camera.unplug()    # reads and opens fail, as with a USB camera pulled out

The disk is the store's DiskIO seam (kiosk/store/diskio.py): the event log and the failed-scan
log of the app are built over it. The camera is the browser tests' BadgeCamera (a printed badge
held up to a textured room), with a plug. Used by the robustness tests and bench/kiosk_faults.py.
"""

from __future__ import annotations

import errno
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.store import DiskIO, EventLog, FailedScanLog
from scanner.sources import SourceError
from tests.kiosk_web.badge_camera import BadgeCamera
from tests.kiosk_web.live import LiveKiosk, live_kiosk


class FullableDisk(DiskIO):
    """A disk that runs out of space on demand: writes, syncs and new files fail with ENOSPC.

    Cutting a file back (ftruncate) and removing one still work, as they do on a full disk."""

    def __init__(self) -> None:
        self._full = threading.Event()
        self.refused = 0

    @property
    def full(self) -> bool:
        return self._full.is_set()

    def fill_up(self) -> None:
        self._full.set()

    def free_up(self) -> None:
        self._full.clear()

    def _check(self) -> None:
        if self._full.is_set():
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write(self, fd: int, data: bytes) -> int:
        self._check()
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self._check()
        super().fsync(fd)

    def open_new(self, path: Path) -> int:
        self._check()
        return super().open_new(path)

    def open_append(self, path: Path) -> int:
        self._check()
        return super().open_append(path)

    def replace(self, source: Path, target: Path) -> None:
        self._check()
        super().replace(source, target)


class PluggableCamera(BadgeCamera):
    """BadgeCamera with a cable: unplugged, open() and read() fail as a USB camera's do."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._plugged = threading.Event()
        self._plugged.set()
        self.opens = 0

    def unplug(self) -> None:
        self._plugged.clear()

    def plug(self) -> None:
        self._plugged.set()

    def open(self) -> None:
        self.opens += 1
        if not self._plugged.is_set():
            raise SourceError("usb 0: no such device (unplugged)")
        super().open()

    def read(self) -> np.ndarray | None:
        if not self._plugged.is_set():
            time.sleep(0.005)  # a driver takes a moment to notice
            raise SourceError("usb 0 returned no frame")
        return super().read()


@dataclass
class FaultyKiosk:
    live: LiveKiosk
    disk: FullableDisk
    camera: PluggableCamera

    @property
    def services(self) -> Any:
        return self.live.services


@contextmanager
def faulty_kiosk(
    tmp_path: Path,
    key: Ed25519PrivateKey,
    patch: Callable[[Any, str, Any], None],
    status_period_s: float | None = None,
    **overrides: object,
) -> Iterator[FaultyKiosk]:
    """`patch(module, name, value)` is monkeypatch.setattr (or a bench's stand-in): the app's
    store classes are swapped for ones over the fullable disk while the app is built.
    `status_period_s` makes the status ticker (1 s) tick faster, for quick tests; a bench
    measuring what the screen sees keeps the real one."""
    import kiosk.app
    import kiosk.services

    disk = FullableDisk()
    camera = PluggableCamera()
    patch(kiosk.app, "EventLog", functools.partial(EventLog, disk=disk))
    patch(kiosk.app, "FailedScanLog", functools.partial(FailedScanLog, disk=disk))
    if status_period_s is not None:
        patch(kiosk.services, "STATUS_PERIOD_S", status_period_s)
    with live_kiosk(tmp_path, key, camera=camera, **overrides) as live:
        yield FaultyKiosk(live, disk, camera)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    """Seconds until `predicate()` is true; AssertionError after `timeout`."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)
