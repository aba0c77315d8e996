"""Frames in, badge payloads out: camera sources, decoding, repeat suppression, camera health.

Imports nothing else of this project. The kiosk maps its settings onto ScannerOptions:

    from scanner import ScanLoop, ScannerOptions
    loop = ScanLoop(ScannerOptions(source="usb", device="0"), on_payload)
    loop.start()

`decode_frame` is the one decode pipeline, used by the scan loop and by `kiosk decode`.
"""

from scanner.decode import (
    Decoded,
    ImageReadError,
    QrDecoder,
    decode_frame,
    default_decoder,
    read_image,
    to_grey,
)
from scanner.faces import (
    FaceBox,
    FaceDetector,
    FaceSighting,
    FaceWatcher,
    lower_this_threads_priority,
)
from scanner.health import CameraHealth, HealthState
from scanner.loop import Backoff, BadgeRead, LatestFrame, PayloadCallback, ReadCallback, ScanLoop
from scanner.options import SOURCE_NAMES, ScannerOptions
from scanner.photo import PhotoEncodeError, around_face, reviewer_jpeg
from scanner.repeat import RepeatFilter
from scanner.sources import (
    DemoSource,
    FrameSource,
    ImageFolderSource,
    OpenCvSource,
    PicameraSource,
    SourceError,
    VideoFileSource,
    open_source,
)

__all__ = [
    "SOURCE_NAMES",
    "Backoff",
    "BadgeRead",
    "CameraHealth",
    "Decoded",
    "DemoSource",
    "FaceBox",
    "FaceDetector",
    "FaceSighting",
    "FaceWatcher",
    "FrameSource",
    "HealthState",
    "ImageFolderSource",
    "ImageReadError",
    "LatestFrame",
    "OpenCvSource",
    "PayloadCallback",
    "PhotoEncodeError",
    "PicameraSource",
    "QrDecoder",
    "ReadCallback",
    "RepeatFilter",
    "ScanLoop",
    "ScannerOptions",
    "SourceError",
    "VideoFileSource",
    "around_face",
    "decode_frame",
    "default_decoder",
    "lower_this_threads_priority",
    "open_source",
    "read_image",
    "reviewer_jpeg",
    "to_grey",
]
