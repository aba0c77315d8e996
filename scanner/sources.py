"""Frame sources: cameras, files and the demo scene behind one small interface.

    source = open_source(options)     # chosen by options.source
    source.open()                     # SourceError(reason) when it cannot
    frame = source.read()             # greyscale uint8 frame, None for "nothing yet"
    source.close()                    # open() may be called again afterwards

`read()` raises SourceError when the source is broken (the scan loop then reopens it with
backoff). Frames are greyscale: decoding needs no colour and the Pi camera's Y plane is free.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from scanner.decode import to_grey
from scanner.demo import DemoScene, sample_payloads
from scanner.options import ScannerOptions

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})


class SourceError(RuntimeError):
    """A source that cannot be opened or stopped delivering frames; the message says why."""


class FrameSource(ABC):
    """Where frames come from. One thread (the scan loop's) calls open/read/close."""

    #: a real camera: identical frames then mean a stuck driver, not a still picture
    live: bool = False

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> np.ndarray | None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str: ...

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pacer:
    """Holds file and demo sources to a frame rate, as a camera would be."""

    def __init__(
        self,
        fps: float,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.period = 1.0 / fps
        self.enabled = enabled
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        if not self.enabled:
            return
        now = self._clock()
        if self._next is None or now - self._next > 1.0:  # first frame, or we fell far behind
            self._next = now
        elif self._next > now:
            self._sleep(self._next - now)
        self._next += self.period


class OpenCvSource(FrameSource):
    """A USB webcam (index or /dev/videoN) or an HTTP/RTSP stream, through cv2.VideoCapture."""

    def __init__(
        self,
        target: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        live: bool = True,
        kind: str = "usb",
    ) -> None:
        self.target = target
        self.width = width
        self.height = height
        self.fps = fps
        self.live = live
        self.kind = kind
        self._capture: Any = None

    def describe(self) -> str:
        return f"{self.kind} {self.target}"

    def open(self) -> None:
        self.close()
        try:
            capture = cv2.VideoCapture(self.target)
        except cv2.error as exc:
            raise SourceError(f"cannot open {self.describe()}: {exc}") from exc
        if not capture.isOpened():
            capture.release()
            hint = " (is it plugged in, and is the user in group 'video'?)" if self.live else ""
            raise SourceError(f"cannot open {self.describe()}{hint}")
        if self.width and self.height:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        # Keep at most one frame queued: decode the newest, not one from a second ago.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture = capture

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise SourceError(f"{self.describe()} is not open")
        try:
            ok, frame = self._capture.read()
        except cv2.error as exc:
            raise SourceError(f"reading {self.describe()} failed: {exc}") from exc
        if not ok or frame is None:
            raise SourceError(f"{self.describe()} returned no frame")
        return to_grey(frame)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class VideoFileSource(FrameSource):
    """A video file, played at `fps` and looped from the start when it ends."""

    def __init__(self, path: str | Path, *, fps: float = 15.0, paced: bool = True) -> None:
        self.path = Path(path)
        self._pacer = _Pacer(fps, paced)
        self._capture: Any = None
        self._frames_this_pass = 0

    def describe(self) -> str:
        return f"video file {self.path}"

    def open(self) -> None:
        self.close()
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist")
        try:
            capture = cv2.VideoCapture(str(self.path))
        except cv2.error as exc:
            raise SourceError(f"cannot open video file {self.path}: {exc}") from exc
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"cannot open video file {self.path}: not a video, or a format OpenCV cannot read"
            )
        self._capture = capture
        self._frames_this_pass = 0

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise SourceError(f"{self.describe()} is not open")
        self._pacer.wait()
        frame = self._next_frame()
        if frame is None:
            if self._frames_this_pass == 0:
                raise SourceError(f"video file {self.path} has no readable frames (corrupt?)")
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop
            self._frames_this_pass = 0
            frame = self._next_frame()
            if frame is None:
                raise SourceError(f"video file {self.path} cannot be rewound")
        self._frames_this_pass += 1
        return to_grey(frame)

    def _next_frame(self) -> np.ndarray | None:
        try:
            ok, frame = self._capture.read()
        except cv2.error as exc:
            raise SourceError(f"reading video file {self.path} failed: {exc}") from exc
        return frame if ok and frame is not None and frame.size else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFolderSource(FrameSource):
    """The images of a folder in name order, looping; unreadable files are skipped."""

    def __init__(self, folder: str | Path, *, fps: float = 15.0, paced: bool = True) -> None:
        self.folder = Path(folder)
        self._pacer = _Pacer(fps, paced)
        self._files: list[Path] = []
        self._index = 0
        self._bad: set[Path] = set()

    def describe(self) -> str:
        return f"image folder {self.folder}"

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder} does not exist")
        self._files = sorted(
            p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self._files:
            raise SourceError(f"image folder {self.folder} holds no images")
        self._index = 0
        self._bad = set()

    def read(self) -> np.ndarray | None:
        if not self._files:
            raise SourceError(f"{self.describe()} is not open")
        self._pacer.wait()
        for _ in range(len(self._files)):
            path = self._files[self._index]
            self._index = (self._index + 1) % len(self._files)
            if path in self._bad:
                continue
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is not None:
                return image
            self._bad.add(path)
            log.warning("skipping %s: not a readable image", path)
        raise SourceError(f"no image in {self.folder} can be read")

    def close(self) -> None:
        self._files = []


class PicameraSource(FrameSource):
    """The Raspberry Pi camera module through picamera2 (libcamera).

    Decodes the Y (luma) plane of the low-resolution 'lores' YUV420 stream: greyscale at no cost.
    picamera2 comes from apt (python3-picamera2); it is imported only when this source opens.
    """

    live = True

    def __init__(self, *, width: int = 640, height: int = 480, fps: float = 15.0) -> None:
        self.width = width
        self.height = height
        self.fps = fps
        self._camera: Any = None
        self.model = ""

    def describe(self) -> str:
        model = f" {self.model}" if self.model else ""
        return f"picamera{model} {self.width}x{self.height}"

    def open(self) -> None:
        self.close()
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise SourceError(
                "picamera2 is not installed: `apt install python3-picamera2` and make the venv "
                "with --system-site-packages"
            ) from exc
        try:
            camera = Picamera2()
            size = (self.width, self.height)
            config = camera.create_video_configuration(
                main={"size": size},
                lores={"size": size, "format": "YUV420"},
                controls={"FrameRate": self.fps},
                buffer_count=4,
            )
            camera.configure(config)
            camera.start()
        except Exception as exc:  # libcamera reports failures as several exception types
            raise SourceError(f"cannot start the Pi camera: {exc}") from exc
        self._camera = camera
        # The sensor (imx708 for the Camera Module 3): the centre's fleet view lists it.
        properties = getattr(camera, "camera_properties", None) or {}
        self.model = str(properties.get("Model", ""))[:40]

    def read(self) -> np.ndarray | None:
        if self._camera is None:
            raise SourceError(f"{self.describe()} is not open")
        try:
            yuv = self._camera.capture_array("lores")
        except Exception as exc:
            raise SourceError(f"reading the Pi camera failed: {exc}") from exc
        # YUV420 arrives as (height * 3 / 2, stride): the first `height` rows are the Y plane.
        return np.ascontiguousarray(yuv[: self.height, : self.width])

    def close(self) -> None:
        if self._camera is not None:
            try:
                self._camera.stop()
                self._camera.close()
            except Exception:
                log.exception("closing the Pi camera failed")
            self._camera = None


class DemoSource(FrameSource):
    """The synthetic scene of scanner.demo: badges with `payloads` held up in turn.

    Without `payloads`, they are read at open() from `payload_file` (one per line), or sample
    badge-shaped payloads are shown when there is no file either."""

    def __init__(
        self,
        payloads: list[str] | None = None,
        *,
        payload_file: str | Path | None = None,
        width: int = 640,
        height: int = 480,
        fps: float = 15.0,
        seed: int = 0,
        paced: bool = True,
        person: bool = False,
    ) -> None:
        self.payload_file = Path(payload_file) if payload_file else None
        self.width = width
        self.height = height
        self.seed = seed
        self.person = person
        self.scene: DemoScene | None = None
        if payloads:
            self.scene = DemoScene(payloads, width=width, height=height, seed=seed, person=person)
        self._pacer = _Pacer(fps, paced)
        self.index = 0

    @classmethod
    def from_device(
        cls,
        device: str,
        *,
        width: int,
        height: int,
        fps: float,
        seed: int,
        paced: bool,
        person: bool = False,
    ) -> DemoSource:
        """`device` names the payload file; "" or the default "0" means sample payloads."""
        payload_file = None if device.strip() in ("", "0") else device
        return cls(
            payload_file=payload_file,
            width=width,
            height=height,
            fps=fps,
            seed=seed,
            paced=paced,
            person=person,
        )

    def describe(self) -> str:
        if self.scene is not None:
            return f"demo scene ({len(self.scene.payloads)} badges)"
        return f"demo scene ({self.payload_file or 'sample badges'})"

    def open(self) -> None:
        if self.scene is not None:
            return
        payloads = self._load() if self.payload_file else sample_payloads(seed=self.seed)
        self.scene = DemoScene(
            payloads, width=self.width, height=self.height, seed=self.seed, person=self.person
        )

    def _load(self) -> list[str]:
        assert self.payload_file is not None
        path = self.payload_file
        if not path.is_file():
            raise SourceError(f"demo payload file {path} does not exist")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read demo payloads from {path}: {exc}") from exc
        payloads = [line.strip() for line in lines if line.strip()]
        if not payloads:
            raise SourceError(f"demo payload file {path} has no payloads")
        return payloads

    def read(self) -> np.ndarray | None:
        if self.scene is None:
            raise SourceError(f"{self.describe()} is not open")
        self._pacer.wait()
        frame = self.scene.frame(self.index)
        self.index += 1
        return frame.image

    def close(self) -> None:
        pass


def usb_target(device: str) -> int | str:
    """A camera index ("0") or a device path ("/dev/video2")."""
    device = device.strip()
    return int(device) if device.isdigit() else device


def open_source(options: ScannerOptions) -> FrameSource:
    """The frame source named by options.source (not opened yet)."""
    kind = options.source
    if kind == "usb":
        return OpenCvSource(
            usb_target(options.device),
            width=options.width,
            height=options.height,
            fps=options.fps,
        )
    if kind == "url":
        return OpenCvSource(options.device, kind="url")
    if kind == "picamera":
        return PicameraSource(width=options.width, height=options.height, fps=options.fps)
    if kind == "file":
        return VideoFileSource(options.device, fps=options.fps, paced=options.paced)
    if kind == "images":
        return ImageFolderSource(options.device, fps=options.fps, paced=options.paced)
    if kind == "demo":
        return DemoSource.from_device(
            options.device,
            width=options.width,
            height=options.height,
            fps=options.fps,
            seed=options.demo_seed,
            paced=options.paced,
            person=options.demo_person,
        )
    raise ValueError(f"unknown camera source {kind!r}")
