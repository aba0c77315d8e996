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
