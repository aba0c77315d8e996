"""Frames for the photo tests: a room, a real face in it, a badge held up, or both.

The real face is skimage's astronaut.png (NASA, public domain), shipped inside the scikit-image
wheel: nothing is downloaded.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import cv2
import numpy as np

from tests.kiosk_web.badge_camera import badge_image

WIDTH, HEIGHT = 640, 480


def room() -> np.ndarray:
    """An empty room: a soft gradient with furniture edges and a little noise."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = 90 + 60 * (x / WIDTH) + 20 * np.sin(y / 23.0)
    image[HEIGHT // 3 : HEIGHT // 3 + 6, :] = 50
    image[:, WIDTH // 5 : WIDTH // 5 + 5] = 60
    noise = np.random.default_rng(7).normal(0, 3, size=(HEIGHT, WIDTH))
    return np.clip(image + noise, 0, 255).astype(np.uint8)


@cache
def astronaut_head(width: int = 220) -> np.ndarray:
    path = files("skimage") / "data" / "astronaut.png"
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None, f"cannot read {path}"
    head = image[0:260, 100:330]
    return cv2.resize(head, (width, int(width * 260 / 230)), interpolation=cv2.INTER_AREA)


def with_face(frame: np.ndarray, left: int = 30, top: int = 20) -> np.ndarray:
    frame = frame.copy()
    head = astronaut_head()
    frame[top : top + head.shape[0], left : left + head.shape[1]] = head
    return frame


def with_badge(frame: np.ndarray, payload: str, left: int = 330, top: int = 60) -> np.ndarray:
    frame = frame.copy()
    code = badge_image(payload, module_px=4)
    frame[top : top + code.shape[0], left : left + code.shape[1]] = code
    return frame
