"""Is anyone there? A face-present check on the camera's frames, off the scan thread.

    watcher = FaceWatcher()                  # Haar cascade shipped inside opencv-python-headless
    watcher.offer(frame_id, image, time_ns)  # from the scan thread: never waits
    watcher.sighting(since_ns)               # newest frame with a face seen since then, or None
    watcher.wait_for_face(since_ns, 2.0)     # the same, waiting up to 2 s for one

The detector is OpenCV's frontal-face Haar cascade, which opencv-python-headless 4.x ships in
`cv2.data.haarcascades` on x86-64 and aarch64 alike (OpenCV 5 dropped it: pyproject keeps
OpenCV below 5). Nothing is downloaded at run time.

Detection costs 20-40 ms a frame (at 320 px wide, measured on the development machine), too
much for the scan path, so a thread of its own takes the newest frame offered whenever it is
free (at most `max_fps` a second) and keeps what it found for a few seconds. When a badge is
read, the kiosk asks what was seen in the moment before: the answer is there at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

CASCADE_FILE = "haarcascade_frontalface_default.xml"
# Frames are checked at this width, where a face 60 px across in a 640 px frame (a person two
# metres away) is still 30 px, above the cascade's smallest window (24). Measured on a real face
# (skimage's astronaut) pasted into a room: found from 120 px on at 320, but at 160-200 px wide
# only from 260 px on; 20-36 ms a check at 320 on the development machine.
CHECK_WIDTH = 320


@dataclass(frozen=True)
class FaceBox:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h


@dataclass(frozen=True)
class FaceSighting:
    frame_id: int
    time_ns: int
    image: np.ndarray  # the frame the face was seen in, as the camera gave it
    boxes: tuple[FaceBox, ...]  # in the frame's own pixels, largest first

    @property
    def largest(self) -> FaceBox:
        return self.boxes[0]


def lower_this_threads_priority(niceness: int = 10) -> None:
    """Let the scheduler put the scan loop before this thread: on Linux a thread has a nice
    value of its own (setpriority on its thread id). Elsewhere, or if refused, nothing."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None:
        return
    with contextlib.suppress(OSError):
        setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


def cascade_path() -> Path | None:
    """Where opencv-python-headless keeps the frontal-face cascade; None when it has none."""
    data = getattr(cv2, "data", None)
    folder = getattr(data, "haarcascades", None)
    if not folder:
        return None
    path = Path(folder) / CASCADE_FILE
    return path if path.is_file() else None


class FaceDetector:
    """Faces in one frame (greyscale or BGR), found by the Haar cascade at CHECK_WIDTH."""

    def __init__(self, check_width: int = CHECK_WIDTH) -> None:
        path = cascade_path()
        make = getattr(cv2, "CascadeClassifier", None)
        if path is None or make is None:
            raise RuntimeError(
                "this OpenCV has no Haar cascade for faces (opencv-python-headless 4.x has)"
            )
        self._cascade = make(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"the face cascade {path} did not load")
        self.check_width = check_width
        self._lock = threading.Lock()  # one cascade object is not safe in two threads at once

    def faces(self, image: np.ndarray) -> tuple[FaceBox, ...]:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        height, width = grey.shape[:2]
        scale = min(1.0, self.check_width / width)
        small = grey
        if scale < 1.0:
            size = (round(width * scale), round(height * scale))
            small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            found = self._cascade.detectMultiScale(
                small, scaleFactor=1.1, minNeighbors=4, minSize=(24, 24)
            )
        boxes = [
            FaceBox(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
            for (x, y, w, h) in (found if len(found) else [])
        ]
        return tuple(sorted(boxes, key=lambda b: b.area, reverse=True))


class FaceWatcher:
    """A thread that checks the newest offered frame for faces and remembers what it saw.

    `offer` never blocks: a frame offered while the thread is busy replaces the waiting one.
    Sightings older than `keep_s` are forgotten."""

    def __init__(
        self,
        detector: FaceDetector | None = None,
        *,
        max_fps: float = 5.0,
        keep_s: float = 5.0,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.detector = detector or FaceDetector()
        self.min_interval_ns = int(1e9 / max_fps) if max_fps > 0 else 0
        self.keep_ns = int(keep_s * 1e9)
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: tuple[int, np.ndarray, int] | None = None
        self._sightings: deque[FaceSighting] = deque()
        self._checked_ns = -1  # frame time of the newest frame checked
        self._last_start_ns = -(10**18)
        self._stop = False
        self._thread: threading.Thread | None = None
        self.checked = 0
        self.errors = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="face-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def offer(self, frame_id: int, image: np.ndarray, time_ns: int) -> None:
        """A new frame to check when the thread is free (the scan thread calls this)."""
        with self._cond:
            if time_ns - self._last_start_ns < self.min_interval_ns:
                return
            self._waiting = (frame_id, image, time_ns)
            self._cond.notify_all()

    def check_now(self, frame_id: int, image: np.ndarray, time_ns: int) -> FaceSighting | None:
        """Check one frame in the caller's thread (tests, tools) and remember the result."""
        boxes = self.detector.faces(image)
        return self._remember(frame_id, image, time_ns, boxes)

    def sighting(self, since_ns: int) -> FaceSighting | None:
        """The newest frame with a face whose time is at or after `since_ns`."""
        with self._cond:
            for seen in reversed(self._sightings):
                if seen.time_ns >= since_ns:
                    return seen
                break
            return None

    def wait_for_face(self, since_ns: int, timeout_s: float) -> FaceSighting | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                seen = self._sightings[-1] if self._sightings else None
                if seen is not None and seen.time_ns >= since_ns:
                    return seen
                left = deadline - time.monotonic()
                if left <= 0 or self._stop:
                    return None
                self._cond.wait(left)

    def checked_since(self, since_ns: int) -> bool:
        """Whether any frame at or after `since_ns` has been checked (with or without a face)."""
        with self._cond:
            return self._checked_ns >= since_ns

    def _run(self) -> None:
        lower_this_threads_priority()
        while True:
            with self._cond:
                while self._waiting is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                assert self._waiting is not None
                frame_id, image, time_ns = self._waiting
                self._waiting = None
                self._last_start_ns = time_ns
            try:
                boxes = self.detector.faces(image)
            except Exception:
                self.errors += 1
                log.exception("face check failed")
                continue
            self._remember(frame_id, image, time_ns, boxes)

    def _remember(
        self, frame_id: int, image: np.ndarray, time_ns: int, boxes: tuple[FaceBox, ...]
    ) -> FaceSighting | None:
        seen = FaceSighting(frame_id, time_ns, image, boxes) if boxes else None
        with self._cond:
            self.checked += 1
            self._checked_ns = max(self._checked_ns, time_ns)
            if seen is not None:
                self._sightings.append(seen)
            horizon = self._clock() - self.keep_ns
            while self._sightings and self._sightings[0].time_ns < horizon:
                self._sightings.popleft()
            self._cond.notify_all()
        return seen
