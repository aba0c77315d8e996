"""The scanner's own options: plain values, so `scanner` needs nothing from the kiosk.

The kiosk maps its settings (kiosk/settings.py) onto these; tests and bench scripts build them
directly.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_NAMES = ("usb", "picamera", "file", "images", "url", "demo")


@dataclass(frozen=True)
class ScannerOptions:
    # Where frames come from (see scanner.sources.open_source).
    source: str = "usb"
    device: str = "0"
    width: int = 640
    height: int = 480
    fps: float = 15.0
    # file, images and demo sources: play at `fps` (True) or as fast as frames can be made.
    paced: bool = True
    demo_seed: int = 0
    # demo source: a person (a drawn face) stands beside each badge held up (for photos).
    demo_person: bool = False

    # One payload is reported once while in view, and again only after it has not been seen
    # for this long.
    repeat_window_s: float = 3.0

    # A dead camera is reopened after restart_backoff_s, doubling up to restart_backoff_max_s;
    # after max_restarts reopenings in a row without a steady run the loop gives up (0: never).
    restart_backoff_s: float = 1.0
    restart_backoff_max_s: float = 5.0
    max_restarts: int = 20
    # Frames flowing this long after a reopening count as a steady run: the count starts over.
    steady_after_s: float = 30.0
    # Reads failing this many times in a row, or no frame for this long, mean a dead camera.
    read_failures_before_restart: int = 5
    no_frame_timeout_s: float = 5.0

    # Health thresholds.
    frozen_after_s: float = 3.0  # identical frames for this long: "frozen"
    frozen_restart_s: float = 15.0  # a live camera frozen this long is reopened (0: never)
    dark_below: float = 25.0  # mean brightness, 0-255
    blurry_below: float = 12.0  # variance of the Laplacian on a 160x120 copy of the frame

    # Preview for the pages: JPEG made on request, at most this often.
    preview_fps: float = 5.0
    preview_quality: int = 70

    def __post_init__(self) -> None:
        if self.source not in SOURCE_NAMES:
            raise ValueError(
                f"unknown camera source {self.source!r}; expected one of {', '.join(SOURCE_NAMES)}"
            )
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError("width, height and fps must be positive")
        if self.repeat_window_s < 0:
            raise ValueError("repeat_window_s must not be negative")
        if self.restart_backoff_s <= 0 or self.restart_backoff_max_s < self.restart_backoff_s:
            raise ValueError("restart backoff must be positive and its cap at least the start")
        if self.max_restarts < 0:
            raise ValueError("max_restarts must not be negative")
        if self.preview_fps <= 0 or not 1 <= self.preview_quality <= 100:
            raise ValueError("preview_fps must be positive and preview_quality within 1-100")
