"""The photo kept with a camera check-in: the frame scaled to what a reviewer needs.

A 640x480 frame becomes a 320 px wide JPEG (greyscale, as the scanner reads frames): 10-25 KB,
enough to tell one face from another on a review page, small enough that a month of a site's
check-ins stays in tens of megabytes. Encoding one takes about a millisecond.
"""

from __future__ import annotations

import cv2
import numpy as np

PHOTO_WIDTH = 320
PHOTO_QUALITY = 85


class PhotoEncodeError(RuntimeError):
    pass


def reviewer_jpeg(
    image: np.ndarray, width: int = PHOTO_WIDTH, quality: int = PHOTO_QUALITY
) -> bytes:
    """`image` (greyscale or BGR) scaled down to `width` pixels across (never up), as JPEG."""
    height, current = image.shape[:2]
    if current > width:
        size = (width, max(1, round(height * width / current)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise PhotoEncodeError("the frame could not be encoded as JPEG")
    return bytes(buffer.tobytes())


def around_face(
    image: np.ndarray, box: tuple[int, int, int, int], min_width: int = PHOTO_WIDTH
) -> np.ndarray:
    """The part of `image` a reviewer needs around a face at `box` (x, y, w, h): three faces
    wide (at least `min_width`), 4:3, the face in its upper part (the badge is held below it);
    kept inside the frame."""
    height, width = image.shape[:2]
    x, y, w, h = box
    crop_w = min(width, max(min_width, 3 * w))
    crop_h = min(height, crop_w * 3 // 4)
    left = min(max(0, x + w // 2 - crop_w // 2), width - crop_w)
    top = min(max(0, y - h // 2), height - crop_h)
    return image[top : top + crop_h, left : left + crop_w]
