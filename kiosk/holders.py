"""One person, several badges: different badges shown within seconds by the same face.

A proxy brings the badges of absent colleagues and shows them one after another. The kiosk
remembers, for each camera check-in of the last `window_s` seconds, the badge's cadre and the
face seen with it (where it stood in the frame, and a small normalised copy of it). A new
check-in whose face stands in about the same place and looks like one of those, with another
cadre's badge, is flagged `several_badges` (so is every later one of the run); the centre makes
it an anomaly with the photos.

Two people queueing step into the same spot too, so the place alone is not enough: the faces are
compared as 32x32 greyscale patches (normalised cross-correlation). Measured on the test scenes
only: one face again with sensor noise 0.97, moved by 10 px 0.91; the demo's drawn face against
the real one 0.55 (and their boxes overlapping 0.29). Not measured on real queues, so the window
stays short (5 s).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from scanner import FaceBox, FaceSighting

PATCH = 32
MIN_OVERLAP = 0.3  # intersection over union of the two face boxes
MIN_LIKENESS = 0.8  # normalised cross-correlation of the two face patches


@dataclass(frozen=True)
class ShownBadge:
    time_ns: int
    cadre_id: str
    box: FaceBox
    patch: np.ndarray  # PATCH x PATCH float32, zero mean, unit norm


def face_patch(sighting: FaceSighting) -> tuple[FaceBox, np.ndarray]:
    box = sighting.largest
    image = sighting.image
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    crop = grey[box.y : box.y + box.h, box.x : box.x + box.w]
    patch = cv2.resize(crop, (PATCH, PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)
    patch -= patch.mean()
    norm = float(np.linalg.norm(patch))
    return box, patch / norm if norm > 0 else patch


def overlap(a: FaceBox, b: FaceBox) -> float:
    left, top = max(a.x, b.x), max(a.y, b.y)
    right, bottom = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, right - left) * max(0, bottom - top)
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def likeness(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum())


class SeveralBadges:
    def __init__(self, window_s: float = 5.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self._shown: deque[ShownBadge] = deque()
        self._lock = threading.Lock()

    def others(self, time_ns: int, cadre_id: str, sighting: FaceSighting) -> list[str]:
        """Cadres of the other badges this face showed within the window (oldest first)."""
        box, patch = face_patch(sighting)
        with self._lock:
            self._forget(time_ns)
            return [
                shown.cadre_id
                for shown in self._shown
                if shown.cadre_id != cadre_id
                and overlap(shown.box, box) >= MIN_OVERLAP
                and likeness(shown.patch, patch) >= MIN_LIKENESS
            ]

    def note(self, time_ns: int, cadre_id: str, sighting: FaceSighting) -> None:
        box, patch = face_patch(sighting)
        with self._lock:
            self._forget(time_ns)
            self._shown.append(ShownBadge(time_ns, cadre_id, box, patch))

    def _forget(self, now_ns: int) -> None:
        while self._shown and now_ns - self._shown[0].time_ns > self.window_ns:
            self._shown.popleft()
