"""Camera health: what the pages show about the camera, from the frames themselves.

States, worst first: failed (gave up reopening), restarting (dead camera, reopening with backoff),
no_frames, frozen (identical frames: a stuck driver or a still picture), dark, blurry (out of
focus, or nothing but a flat surface in view), ok. "starting" until the first frame; "stopped"
after the loop ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import cv2
import numpy as np

_SIGNATURE_STEP = 8  # frozen detection compares every 8th pixel of every 8th row
_MEASURE_EVERY_NS = 250_000_000  # brightness and sharpness are measured at most 4 times a second
_FPS_WINDOW_NS = 2_000_000_000


class HealthState(StrEnum):
    STARTING = "starting"
    OK = "ok"
    BLURRY = "blurry"
    DARK = "dark"
    FROZEN = "frozen"
    NO_FRAMES = "no_frames"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class CameraHealth(Mapping[str, Any]):
    """A snapshot. Also a read-only mapping (health["state"]), ready for JSON."""

    state: HealthState
    detail: str
    source: str
    brightness: float | None  # mean grey level 0-255 of recent frames
    sharpness: float | None  # variance of the Laplacian on a 160x120 copy
    fps: float  # frames per second over the last two seconds
    frames: int  # frames read since the loop started
    restarts: int  # reopenings in a row without a steady run
    total_restarts: int
    last_frame_age_s: float | None
    decode_ms: float | None  # average decode time of recent frames
    zbar: bool | None  # None until the decoder has needed to know

    @property
    def ok(self) -> bool:
        return self.state is HealthState.OK

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        value = getattr(self, key)
        return str(value) if isinstance(value, HealthState) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def frame_brightness_sharpness(grey: np.ndarray) -> tuple[float, float]:
    """Mean grey level, and the variance of the Laplacian of a 160x120 copy (focus measure)."""
    small = cv2.resize(grey, (160, 120), interpolation=cv2.INTER_AREA)
    brightness = float(small.mean())
    sharpness = float(cv2.Laplacian(small, cv2.CV_32F).var())
    return brightness, sharpness


class HealthMonitor:
    """Fed by the scan loop (one thread); `snapshot` may be called from any thread."""

    def __init__(
        self,
        source: str,
        *,
        frozen_after_s: float,
        no_frame_timeout_s: float,
        dark_below: float,
        blurry_below: float,
    ) -> None:
        self.source = source
        self.frozen_after_ns = int(frozen_after_s * 1e9)
        self.no_frame_timeout_ns = int(no_frame_timeout_s * 1e9)
        self.dark_below = dark_below
        self.blurry_below = blurry_below
        self.frames = 0
        self.restarts = 0
        self.total_restarts = 0
        self.brightness: float | None = None
        self.sharpness: float | None = None
        self.decode_ms: float | None = None
        self.zbar: bool | None = None
        self._last_frame_ns: int | None = None
        self._last_measure_ns: int | None = None
        self._signature: np.ndarray | None = None
        self._same_since_ns: int | None = None
        self._frame_times: deque[int] = deque()
        self._problem: tuple[HealthState, str] | None = None  # restarting / failed / stopped

    # Fed by the loop ---------------------------------------------------------------------

    def frame(self, grey: np.ndarray, now_ns: int) -> None:
        self.frames += 1
        self._last_frame_ns = now_ns
        self._problem = None
        self._frame_times.append(now_ns)
        while self._frame_times and now_ns - self._frame_times[0] > _FPS_WINDOW_NS:
            self._frame_times.popleft()
        signature = grey[::_SIGNATURE_STEP, ::_SIGNATURE_STEP]
        if self._signature is not None and np.array_equal(signature, self._signature):
            if self._same_since_ns is None:
                self._same_since_ns = now_ns
        else:
            self._same_since_ns = None
            self._signature = signature.copy()
        if self._last_measure_ns is None or now_ns - self._last_measure_ns >= _MEASURE_EVERY_NS:
            self.brightness, self.sharpness = frame_brightness_sharpness(grey)
            self._last_measure_ns = now_ns

    def decoded(self, ms: float) -> None:
        self.decode_ms = ms if self.decode_ms is None else 0.9 * self.decode_ms + 0.1 * ms

    def frozen_for_ns(self, now_ns: int) -> int:
        return 0 if self._same_since_ns is None else now_ns - self._same_since_ns

    def restarting(self, reason: str, delay_s: float, attempt: int, cap: int) -> None:
        self.restarts = attempt
        self.total_restarts += 1
        limit = f" of {cap}" if cap else ""
        self._problem = (
            HealthState.RESTARTING,
            f"{reason}; reopening in {delay_s:.2f} s (attempt {attempt}{limit})",
        )

    def failed(self, reason: str) -> None:
        self._problem = (HealthState.FAILED, reason)

    def steady(self) -> None:
        self.restarts = 0

    def stopped(self) -> None:
        self._problem = (HealthState.STOPPED, "the scan loop is not running")

    # Read by the pages -------------------------------------------------------------------

    def snapshot(self, now_ns: int) -> CameraHealth:
        state, detail = self._state(now_ns)
        age = None if self._last_frame_ns is None else (now_ns - self._last_frame_ns) / 1e9
        fps = 0.0
        if len(self._frame_times) >= 2 and age is not None and age < 2.0:
            span = (self._frame_times[-1] - self._frame_times[0]) / 1e9
            fps = (len(self._frame_times) - 1) / span if span > 0 else 0.0
        return CameraHealth(
            state=state,
            detail=detail,
            source=self.source,
            brightness=None if self.brightness is None else round(self.brightness, 1),
            sharpness=None if self.sharpness is None else round(self.sharpness, 1),
            fps=round(fps, 1),
            frames=self.frames,
            restarts=self.restarts,
            total_restarts=self.total_restarts,
            last_frame_age_s=None if age is None else round(age, 2),
            decode_ms=None if self.decode_ms is None else round(self.decode_ms, 2),
            zbar=self.zbar,
        )

    def _state(self, now_ns: int) -> tuple[HealthState, str]:
        if self._problem is not None:
            return self._problem
        if self._last_frame_ns is None:
            return HealthState.STARTING, f"waiting for the first frame from {self.source}"
        age_ns = now_ns - self._last_frame_ns
        if age_ns > self.no_frame_timeout_ns:
            return HealthState.NO_FRAMES, f"no frame from {self.source} for {age_ns / 1e9:.0f} s"
        frozen_ns = self.frozen_for_ns(now_ns)
        if frozen_ns >= self.frozen_after_ns:
            return HealthState.FROZEN, f"the picture has not changed for {frozen_ns / 1e9:.0f} s"
        if self.brightness is not None and self.brightness < self.dark_below:
            return (
                HealthState.DARK,
                f"too dark (brightness {self.brightness:.0f} of 255): more light, or uncover "
                "the lens",
            )
        if self.sharpness is not None and self.sharpness < self.blurry_below:
            return (
                HealthState.BLURRY,
                f"out of focus or nothing in view (sharpness {self.sharpness:.0f}): clean the "
                "lens or check the focus",
            )
        return HealthState.OK, "camera working"
