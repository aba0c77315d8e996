"""QR decoding: one greyscale frame in, the texts of the QR codes in it out.

The pipeline (measured in bench/decode.py; most frames at a kiosk show no code, so the common
path must stay cheap):

1. zxing-cpp over the whole frame with its local-average binarizer. It reads most codes, and with
   `return_errors` it also reports symbols it located but could not read.
2. zxing-cpp again on a lightly smoothed frame with the global-histogram binarizer: halftone,
   textured or low-contrast prints that defeat a local threshold.
3. Only when there is reason to believe a code is present: a symbol zxing-cpp located but could
   not read, or a compact patch of dense two-way edges (what a QR code looks like from afar). Each
   such region is cut out with a margin and retried: enlarged when small, contrast-equalised,
   given a light quiet zone (codes cut flush against a dark surround), with both binarizers, and
   finally with zbar (pyzbar), which reads some blurred and noisy codes zxing-cpp does not.

zbar guesses character sets and garbles non-ASCII text, so a zbar result is only accepted when it
is plain ASCII (badge tokens always are). Every decoder call is guarded: an exception from a
decoder is logged and counts as a miss, never as a crash of the scan loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zxingcpp

log = logging.getLogger(__name__)

# Standard (model 2) QR only: badges are that, and with Micro QR allowed zxing-cpp read bits of
# a real code's modules as a Micro QR symbol ("130") in the demo scene.
_QR = zxingcpp.BarcodeFormat.QRCodeModel2
_LOCAL = zxingcpp.Binarizer.LocalAverage
_GLOBAL = zxingcpp.Binarizer.GlobalHistogram

# Regions handed to the fallbacks, and the size a small region is enlarged to.
_MAX_REGIONS = 2
_MIN_REGION_SIDE = 24
_ENLARGE_TO = 320


@dataclass(frozen=True)
class Decoded:
    """One QR code read from a frame."""

    text: str
    quad: tuple[tuple[int, int], ...]  # corners in frame pixels (may be empty for zbar results)
    stage: str  # which step of the pipeline read it, for the bench and the logs


@dataclass
class DecodeStats:
    """What a decoder did so far; the scan loop shows some of it on the health page."""

    frames: int = 0
    decoded: int = 0
    fallback_frames: int = 0
    decoder_errors: int = 0
    zbar_available: bool | None = None
    by_stage: dict[str, int] = field(default_factory=dict)


class ImageReadError(ValueError):
    """An image file that cannot be read as a picture."""


def to_grey(image: np.ndarray) -> np.ndarray:
    """A greyscale uint8 view of a frame in any common layout (grey, BGR, BGRA)."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        else:
            image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def read_image(path: str | Path) -> np.ndarray:
    """A greyscale frame from an image file, or ImageReadError saying why not."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise ImageReadError(f"{path} is empty")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:
        raise ImageReadError(f"{path} is not a readable image: {exc}") from exc
    if image is None:
        raise ImageReadError(f"{path} is not a readable image")
    return image


def _load_zbar() -> Callable[[np.ndarray], list[Any]] | None:
    """pyzbar's decode, or None when pyzbar or the libzbar0 library is missing."""
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError) as exc:
        log.warning("zbar is not available (%s); decoding with zxing-cpp alone", exc)
        return None
    symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(image: np.ndarray) -> list[Any]:
        found: list[Any] = pyzbar.decode(image, symbols=symbols)
        return found

    return decode


class QrDecoder:
    """The decode pipeline. Thread-safe; `decode` is what the scan loop and `kiosk decode` call."""

    def __init__(self, use_zbar: bool = True) -> None:
        self._use_zbar = use_zbar
        self._zbar: Callable[[np.ndarray], list[Any]] | None = None
        self._zbar_loaded = False
        self._lock = threading.Lock()
        self.stats = DecodeStats()

    @property
    def zbar_available(self) -> bool:
        return self._zbar_fn() is not None

    def _zbar_fn(self) -> Callable[[np.ndarray], list[Any]] | None:
        if not self._zbar_loaded:
            with self._lock:
                if not self._zbar_loaded:
                    self._zbar = _load_zbar() if self._use_zbar else None
                    self._zbar_loaded = True
                    self.stats.zbar_available = self._zbar is not None
        return self._zbar

    def decode(self, frame: np.ndarray) -> list[Decoded]:
        """Every QR code found in `frame` (greyscale uint8; colour is converted)."""
        grey = to_grey(frame)
        self.stats.frames += 1
        # Printed badges are dark on light: inverted codes are left to the region passes.
        # zxing-cpp's extra half-size pass pays off only on frames larger than a camera preview
        # (it reads big, blurry codes in photos); at 640x480 it costs a fifth of an idle frame.
        found, located = self._zxing(
            grey, _LOCAL, "zxing", try_invert=False, try_downscale=max(grey.shape) > _PREVIEW_SIDE
        )
        if not found:
            found = self._regions(grey, located)
        if found:
            self.stats.decoded += 1
            for item in found:
                self.stats.by_stage[item.stage] = self.stats.by_stage.get(item.stage, 0) + 1
        return found

    def _regions(self, grey: np.ndarray, located: list[tuple[int, int, int, int]]) -> list[Decoded]:
        """Retry where a code may be: symbols zxing-cpp located, then busy patches."""
        candidates = [(box, True) for box in _merge_regions(located, grey.shape)]
        candidates += [(box, False) for box in _busy_regions(grey)]
        tried: list[tuple[int, int, int, int]] = []
        for box, was_located in candidates[: 2 * _MAX_REGIONS]:
            if any(_inside(box, other) for other in tried):
                continue
            tried.append(box)
            x0, y0, x1, y1 = box
            crop = grey[y0:y1, x0:x1]
            if min(crop.shape) < _MIN_REGION_SIDE:
                continue
            # A global threshold taken over the patch alone: cheap, and it reads textured,
            # halftone and low-contrast prints that defeat the local one, and inverted codes.
            smooth = cv2.GaussianBlur(crop, (3, 3), 0)
            found, _ = self._zxing(smooth, _GLOBAL, "region-global", (x0, y0))
            if found:
                return found
            # The costlier retries only where a symbol was located or a finder pattern shows.
            if was_located or _has_finder(crop):
                self.stats.fallback_frames += 1
                found = self._region_fallbacks(grey, box)
                if found:
                    return found
            if len(tried) >= _MAX_REGIONS + len(located):
                break
        return []

    def texts(self, frame: np.ndarray) -> list[str]:
        return _unique_texts(self.decode(frame))

    # Passes ---------------------------------------------------------------------------------

    def _zxing(
        self,
        image: np.ndarray,
        binarizer: zxingcpp.Binarizer,
        stage: str,
        offset: tuple[int, int] = (0, 0),
        scale: float = 1.0,
        try_downscale: bool = True,
        try_invert: bool = True,
    ) -> tuple[list[Decoded], list[tuple[int, int, int, int]]]:
        """Codes zxing-cpp read, and boxes (x0, y0, x1, y1) of symbols it located but not read."""
        try:
            barcodes = zxingcpp.read_barcodes(
                image,
                # One format converts implicitly at run time (zxing-cpp 2.x has no BarcodeFormats).
                formats=_QR,  # type: ignore[arg-type]
                text_mode=zxingcpp.TextMode.Plain,
                binarizer=binarizer,
                try_downscale=try_downscale,
                try_invert=try_invert,
                return_errors=True,
            )
        except Exception:  # a decoder bug must cost one frame, not the scan loop
            self.stats.decoder_errors += 1
            log.exception("zxing-cpp failed on a %s frame", image.shape)
            return [], []
        found: list[Decoded] = []
        located: list[tuple[int, int, int, int]] = []
        for barcode in barcodes:
            position = barcode.position
            corners = [
                position.top_left,
                position.top_right,
                position.bottom_right,
                position.bottom_left,
            ]
            quad = tuple(
                (round(p.x / scale + offset[0]), round(p.y / scale + offset[1])) for p in corners
            )
            if barcode.valid and barcode.text:
                found.append(Decoded(barcode.text, quad, stage))
            else:
                xs = [p[0] for p in quad]
                ys = [p[1] for p in quad]
                located.append((min(xs), min(ys), max(xs), max(ys)))
        return found, located

    def _zbar_pass(
        self, image: np.ndarray, offset: tuple[int, int], scale: float, stage: str
    ) -> list[Decoded]:
        zbar = self._zbar_fn()
        if zbar is None:
            return []
        try:
            symbols = zbar(image)
        except Exception:
            self.stats.decoder_errors += 1
            log.exception("zbar failed on a %s frame", image.shape)
            return []
        found = []
        for symbol in symbols:
            data = bytes(symbol.data)
            # zbar transcodes by guessing the charset; only ASCII survives that reliably.
            if not data or not data.isascii():
                continue
            quad = tuple(
                (round(p.x / scale + offset[0]), round(p.y / scale + offset[1]))
                for p in (symbol.polygon or [])
            )
            found.append(Decoded(data.decode("ascii"), quad, stage))
        return found

    def _region_fallbacks(self, grey: np.ndarray, box: tuple[int, int, int, int]) -> list[Decoded]:
        x0, y0, x1, y1 = box
        crop = grey[y0:y1, x0:x1]
        if min(crop.shape) < _MIN_REGION_SIDE:
            return []
        scale = 1.0
        short = min(crop.shape)
        if short < _ENLARGE_TO:
            scale = min(4.0, _ENLARGE_TO / short)
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        offset = (x0, y0)
        attempts: list[tuple[str, Callable[[], list[Decoded]]]] = [
            ("region", lambda: self._zxing(crop, _LOCAL, "region", offset, scale, False)[0]),
            (
                "region-equalised",
                lambda: self._zxing(_equalise(crop), _LOCAL, "region-equalised", offset, scale)[0],
            ),
            (
                "region-median",
                lambda: self._zxing(
                    cv2.medianBlur(crop, 3), _GLOBAL, "region-median", offset, scale
                )[0],
            ),
            (
                "region-quiet-zone",
                lambda: self._quiet_zone(crop, offset, scale),
            ),
            ("zbar", lambda: self._zbar_pass(crop, offset, scale, "zbar")),
        ]
        for _name, attempt in attempts:
            found = attempt()
            if found:
                return found
        return []

    def _quiet_zone(self, crop: np.ndarray, offset: tuple[int, int], scale: float) -> list[Decoded]:
        """Retry a code cut flush against a dark surround: without a light quiet zone its finder
        patterns merge with the surround. Everything outside the light blob is painted white."""
        _, light = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        h, w = crop.shape
        border = np.concatenate([light[0], light[-1], light[:, 0], light[:, -1]])
        if np.count_nonzero(border) > 0.5 * border.size:
            return []  # the surround is light already
        # Close over dark modules (not over the surround, which is wider) to get the code's blob.
        k = max(3, min(h, w) // 10)
        closed = cv2.morphologyEx(light, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
        contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return []
        blob = max(contours, key=cv2.contourArea)
        corners = cv2.boxPoints(cv2.minAreaRect(blob)).astype(np.int32)
        inside = np.zeros_like(crop)
        cv2.fillConvexPoly(inside, corners, 255)
        lightened = np.where(inside > 0, crop, np.uint8(255))
        pad = max(8, min(h, w) // 8)
        padded = cv2.copyMakeBorder(lightened, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
        shifted = (offset[0] - pad / scale, offset[1] - pad / scale)
        found, _ = self._zxing(padded, _LOCAL, "region-quiet-zone", shifted, scale)
        return found


def _inside(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> bool:
    return box[0] >= other[0] and box[1] >= other[1] and box[2] <= other[2] and box[3] <= other[3]


def _equalise(image: np.ndarray) -> np.ndarray:
    return _CLAHE.apply(image)


_CLAHE = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))


def _merge_regions(
    boxes: Iterable[tuple[int, int, int, int]], shape: tuple[int, ...]
) -> list[tuple[int, int, int, int]]:
    """Boxes grown by a margin, clipped to the frame, overlapping ones merged, largest first."""
    h, w = shape[:2]
    grown = []
    for x0, y0, x1, y1 in boxes:
        margin = max(8, int(0.25 * max(x1 - x0, y1 - y0)))
        grown.append(
            [max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)]
        )
    merged: list[list[int]] = []
    for box in sorted(grown, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True):
        for other in merged:
            if box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]:
                other[0], other[1] = min(other[0], box[0]), min(other[1], box[1])
                other[2], other[3] = max(other[2], box[2]), max(other[3], box[3])
                break
        else:
            merged.append(box)
    return [(b[0], b[1], b[2], b[3]) for b in merged]


def _busy_regions(grey: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Compact patches of dense edges: where an unread code may be.

    Edges are found on a half-size frame and counted in blocks of 8x8 frame pixels, so this
    costs a fraction of a zxing-cpp pass.
    """
    h, w = grey.shape
    half = cv2.resize(grey, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    grad = cv2.morphologyEx(half, cv2.MORPH_GRADIENT, _KERNEL3)
    hist = cv2.calcHist([grad], [0], None, [256], [0, 256]).ravel()
    cumulative = np.cumsum(hist)
    # The noise floor of this frame, from its quieter quarter (a code filling the frame still
    # leaves flat module interiors there); edges must stand well above it, whatever the exposure.
    floor = int(np.searchsorted(cumulative, cumulative[-1] / 4))
    threshold = min(max(10, 4 * floor), 48)
    _, edges = cv2.threshold(grad, threshold, 255, cv2.THRESH_BINARY)
    block = _BLOCK // 2
    density = cv2.resize(
        edges, (edges.shape[1] // block, edges.shape[0] // block), interpolation=cv2.INTER_AREA
    )
    busy = cv2.dilate((density > 100).astype(np.uint8), _KERNEL3)
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(busy, connectivity=8)
    min_blocks = max(2, _MIN_REGION_SIDE // _BLOCK)
    boxes = []
    for i in range(1, count):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if bw < min_blocks or bh < min_blocks:
            continue
        if max(bw, bh) > 3.5 * min(bw, bh) or area < 0.4 * bw * bh:
            continue  # a line of text or a thin edge, not a square symbol
        boxes.append((area, (x * _BLOCK, y * _BLOCK, (x + bw) * _BLOCK, (y + bh) * _BLOCK)))
    boxes.sort(reverse=True)
    return _merge_regions((b for _, b in boxes[:_MAX_REGIONS]), grey.shape)


_BLOCK = 8
_PREVIEW_SIDE = 800  # frames up to this size are camera previews: see QrDecoder.decode
_KERNEL3 = np.ones((3, 3), np.uint8)


def _has_finder(crop: np.ndarray) -> bool:
    """Whether the patch shows two or more QR finder patterns: a light square hole in dark
    holding one solid dark square (3x3 modules inside 5x5), of about the same size."""
    if min(crop.shape) < _MIN_REGION_SIDE:
        return False
    smooth = cv2.GaussianBlur(crop, (3, 3), 0)
    _, dark = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    contours, hierarchy = cv2.findContours(dark, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return False
    links = hierarchy[0]  # next, previous, first child, parent
    sides: list[float] = []
    for i, hole in enumerate(contours):
        child = links[i][2]
        # A hole (it has a parent) with exactly one child, which has no hole of its own.
        if links[i][3] < 0 or child < 0 or links[child][0] >= 0 or links[child][2] >= 0:
            continue
        hole_box = cv2.boundingRect(hole)
        hole_area = cv2.contourArea(hole)
        if hole_area < _MIN_FINDER_AREA or not _squarish(hole_box, hole_area):
            continue
        core = contours[child]
        core_box = cv2.boundingRect(core)
        core_area = cv2.contourArea(core)
        if not _squarish(core_box, core_area) or not 0.15 < core_area / hole_area < 0.65:
            continue
        x, y, w, h = hole_box
        cx, cy, cw, ch = core_box
        if abs(x + w / 2 - cx - cw / 2) < 0.15 * w and abs(y + h / 2 - cy - ch / 2) < 0.15 * h:
            sides.append(float(max(w, h)))
    sides.sort()
    return any(b < 1.6 * a for a, b in pairwise(sides))


def _squarish(box: Sequence[int], area: float) -> bool:
    """A filled, roughly square blob (a square seen at up to about 45 degrees of tilt)."""
    _, _, w, h = box
    return max(w, h) <= 1.6 * min(w, h) and area >= 0.55 * w * h


_MIN_FINDER_AREA = 30


def _unique_texts(found: Iterable[Decoded]) -> list[str]:
    seen: dict[str, None] = {}
    for item in found:
        seen.setdefault(item.text, None)
    return list(seen)


_default: QrDecoder | None = None
_default_lock = threading.Lock()


def default_decoder() -> QrDecoder:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = QrDecoder()
    return _default


def decode_frame(frame: np.ndarray) -> list[str]:
    """The texts of the QR codes in one frame: the pipeline the scan loop and `kiosk decode` use."""
    return default_decoder().texts(frame)


def timed_decode(frame: np.ndarray) -> tuple[list[str], float]:
    """decode_frame and the milliseconds it took."""
    start = time.perf_counter()
    texts = decode_frame(frame)
    return texts, (time.perf_counter() - start) * 1000.0
