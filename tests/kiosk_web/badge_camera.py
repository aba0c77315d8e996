"""A camera a test holds badges up to: `show(payload)` puts a printed QR code in view, `hide()`
takes it away. Frames go through the real decoder, repeat filter and scan loop.

The empty view is textured and noisy, so the scanner's health sees a working camera (neither
frozen nor out of focus). `shown_at_ns` records when the first frame with the badge left read():
the start of the scan path, for bench/latency.py.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from scanner.demo import qr_modules
from scanner.sources import FrameSource

MODULE_PX = 5


def badge_image(payload: str, module_px: int = MODULE_PX) -> np.ndarray:
    modules = qr_modules(payload)
    printed = np.where(modules, 20, 235).astype(np.uint8)
    return np.kron(printed, np.ones((module_px, module_px), dtype=np.uint8))


class BadgeCamera(FrameSource):
    live = True

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        person: np.ndarray | None = None,
    ) -> None:
        """`person`: a greyscale picture (a face) standing in the room's left part."""
        self.width = width
        self.height = height
        self.period_s = 1.0 / fps
        rng = np.random.default_rng(5)
        # A room: a soft gradient with some furniture edges, so the focus measure is sane.
        y, x = np.mgrid[0:height, 0:width]
        room = 90 + 60 * (x / width) + 20 * np.sin(y / 23.0)
        room[height // 3 : height // 3 + 6, :] = 50
        room[:, width // 5 : width // 5 + 5] = 60
        if person is not None:
            h, w = person.shape
            room[20 : 20 + h, 10 : 10 + w] = person
        self._room = room.astype(np.float32)
        self._noise = [rng.normal(0, 4, size=(height, width)).astype(np.float32) for _ in range(4)]
        self._lock = threading.Lock()
        self._badge: np.ndarray | None = None
        self._payload: str | None = None
        self._pending_mark = False
        self._frames = 0
        self._next_at = 0.0
        self.shown_at_ns: int | None = None
        self.shown_at_wall: float | None = None
        self.is_open = False

    def describe(self) -> str:
        return "badge camera (test)"

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def show(self, payload: str) -> None:
        image = badge_image(payload)
        with self._lock:
            self._badge = image
            self._payload = payload
            self._pending_mark = True
            self.shown_at_ns = None
            self.shown_at_wall = None

    def hide(self) -> None:
        with self._lock:
            self._badge = None
            self._payload = None

    def read(self) -> np.ndarray | None:
        now = time.monotonic()
        if now < self._next_at:
            time.sleep(self._next_at - now)
        self._next_at = max(now, self._next_at) + self.period_s
        self._frames += 1
        frame = self._room + self._noise[self._frames % len(self._noise)]
        with self._lock:
            badge = self._badge
            mark = self._pending_mark
            self._pending_mark = False
        if badge is not None:
            h, w = badge.shape
            top, left = (self.height - h) // 2, (self.width - w) // 2
            frame[top : top + h, left : left + w] = badge
        image = np.clip(frame, 0, 255).astype(np.uint8)
        if mark:
            self.shown_at_ns = time.monotonic_ns()
            self.shown_at_wall = time.time()
        return image
