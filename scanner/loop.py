"""The scan loop: a daemon thread that reads frames, decodes them and reports new payloads.

    loop = ScanLoop(options, on_payload)      # on_payload(payload: str, frame_time_ns: int)
    loop.start()
    loop.health()                             # CameraHealth snapshot (also a mapping)
    loop.latest_jpeg()                        # preview JPEG, made on request at a capped rate
    loop.stop()

With `on_read` instead of `on_payload`, the callback gets a `BadgeRead`: the payload, the frame
it was read from and the frame's time, so the kiosk can keep a photo with the check-in. With a
`faces` watcher (scanner/faces.py) every frame is offered to it, which never waits.

The scan thread blocks only on the camera. Payloads go through a queue to a second thread that
calls `on_payload` in order, so a slow callback (the kiosk fsyncs its log there) never holds up
frames, and an exception in it is logged and forgotten. A camera that fails to open, fails to
read, stops sending or freezes is closed and reopened with exponential backoff; after
`max_restarts` reopenings without a steady run in between the loop gives up and says so in its
health, until `restart_camera()` is called.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from scanner.decode import decode_frame, default_decoder
from scanner.faces import FaceWatcher
from scanner.health import CameraHealth, HealthMonitor
from scanner.options import ScannerOptions
from scanner.repeat import RepeatFilter
from scanner.sources import FrameSource, SourceError, open_source

log = logging.getLogger(__name__)

PayloadCallback = Callable[[str, int], None]
Decode = Callable[[np.ndarray], list[str]]
_STOP = object()


@dataclass(frozen=True)
class LatestFrame:
    frame_id: int  # counts up from 1 for every frame read
    image: np.ndarray  # greyscale uint8; never modified after it is published
    time_ns: int  # the loop's monotonic clock when the frame arrived


@dataclass(frozen=True)
class BadgeRead:
    payload: str
    time_ns: int  # the loop's monotonic clock when the frame arrived
    frame_id: int
    image: np.ndarray  # the frame the payload was read from (never modified)


ReadCallback = Callable[[BadgeRead], object]


class Backoff:
    """Exponential delays: start, 2 x start, ... up to cap."""

    def __init__(self, start_s: float, cap_s: float) -> None:
        self.start_s = start_s
        self.cap_s = cap_s
        self._next = start_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.cap_s, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.start_s


class ScanLoop:
    def __init__(
        self,
        options: ScannerOptions,
        on_payload: PayloadCallback,
        *,
        source: FrameSource | None = None,
        decode: Decode = decode_frame,
        clock: Callable[[], int] = time.monotonic_ns,
        on_read: ReadCallback | None = None,
        faces: FaceWatcher | None = None,
    ) -> None:
        """`source` defaults to the one options name; `decode` to the shipped pipeline;
        `clock` (monotonic nanoseconds) stamps frames and times the repeat window. `on_read`,
        when given, is called instead of `on_payload`, with the frame; `faces` is offered
        every frame."""
        self.options = options
        self.on_payload = on_payload
        self.on_read = on_read
        self.faces = faces
        self.source = source if source is not None else open_source(options)
        self._decode = decode
        self._clock = clock
        self._repeats = RepeatFilter(options.repeat_window_s)
        self._monitor = HealthMonitor(
            self.source.describe(),
            frozen_after_s=options.frozen_after_s,
            no_frame_timeout_s=options.no_frame_timeout_s,
            dark_below=options.dark_below,
            blurry_below=options.blurry_below,
        )
        self._backoff = Backoff(options.restart_backoff_s, options.restart_backoff_max_s)
        self._stop = threading.Event()
        self._retry = threading.Event()
        self._state_lock = threading.Lock()
        self._new_frame = threading.Condition()
        self._latest: LatestFrame | None = None
        self._jpeg_lock = threading.Lock()
        self._jpeg: bytes | None = None
        self._jpeg_frame_id = 0
        self._jpeg_at_ns: int | None = None
        self._watchers = 0
        self._deliveries: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._delivery_thread: threading.Thread | None = None
        self.reported = 0
        self.callback_errors = 0

    # Control ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._delivery_thread = threading.Thread(
            target=self._deliver, name="scanner-delivery", daemon=True
        )
        self._thread = threading.Thread(target=self._run, name="scanner", daemon=True)
        self._delivery_thread.start()
        if self.faces is not None:
            self.faces.start()
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading, deliver what was already decoded, and join both threads."""
        self._stop.set()
        self._retry.set()
        with self._new_frame:
            self._new_frame.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "scan loop still blocked on %s after %.0f s", self.source.describe(), timeout
                )
        self._deliveries.put(_STOP)
        if self._delivery_thread is not None:
            self._delivery_thread.join(timeout)
        if self.faces is not None:
            self.faces.stop(timeout)
        self._thread = None
        self._delivery_thread = None
        with self._state_lock:
            self._monitor.stopped()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def restart_camera(self) -> None:
        """Try the camera again now, after the loop gave up (or to skip a backoff wait)."""
        self._retry.set()

    # What the pages read -------------------------------------------------------------------

    def health(self) -> CameraHealth:
        with self._state_lock:
            self._monitor.zbar = default_decoder().stats.zbar_available
            return self._monitor.snapshot(self._clock())

    def latest_frame(self) -> LatestFrame | None:
        return self._latest

    def latest_jpeg(self) -> bytes | None:
        """The newest frame as JPEG, encoded here (in the caller's thread) only when asked, and
        at most options.preview_fps times a second however many pages ask; None before the
        first frame."""
        frame = self._latest
        if frame is None:
            return None
        with self._jpeg_lock:
            now = self._clock()
            fresh_enough = self._jpeg_at_ns is not None and (
                now - self._jpeg_at_ns < 1e9 / self.options.preview_fps
            )
            if self._jpeg is not None and (frame.frame_id == self._jpeg_frame_id or fresh_enough):
                return self._jpeg
            ok, buffer = cv2.imencode(
                ".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, self.options.preview_quality]
            )
            if not ok:
                return self._jpeg
            self._jpeg = buffer.tobytes()
            self._jpeg_frame_id = frame.frame_id
            self._jpeg_at_ns = now
            return self._jpeg

    @property
    def watchers(self) -> int:
        return self._watchers

    def preview_stream(self, idle_timeout_s: float = 10.0) -> Iterator[bytes]:
        """JPEGs for an MJPEG response: each new preview as it comes, at the capped rate.

        Ends when the loop stops, or when no new frame arrives for `idle_timeout_s` (the
        client reconnects); the watcher count drops when the response is closed."""
        period = 1.0 / self.options.preview_fps
        with self._jpeg_lock:
            self._watchers += 1
        try:
            last_id = -1
            waited = 0.0
            while not self._stop.is_set():
                frame = self._latest
                if frame is not None and frame.frame_id != last_id:
                    jpeg = self.latest_jpeg()
                    if jpeg is not None:
                        last_id = self._jpeg_frame_id
                        waited = 0.0
                        yield jpeg
                    self._stop.wait(period)
                    continue
                with self._new_frame:
                    self._new_frame.wait(period)
                waited += period
                if waited >= idle_timeout_s:
                    return
        finally:
            with self._jpeg_lock:
                self._watchers -= 1

    # The scan thread --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            reason = self._open()
            if reason is None:
                reason = self._read_until_failure()
                self._close()
            if self._stop.is_set():
                break
            self._camera_failed(reason)
        self._close()

    def _open(self) -> str | None:
        try:
            self.source.open()
        except SourceError as exc:
            return str(exc)
        except Exception as exc:  # a driver raising something unexpected is still a dead camera
            log.exception("opening %s failed", self.source.describe())
            return f"opening failed: {exc}"
        log.info("camera open: %s", self.source.describe())
        return None

    def _close(self) -> None:
        try:
            self.source.close()
        except Exception:
            log.exception("closing %s failed", self.source.describe())

    def _read_until_failure(self) -> str:
        options = self.options
        opened_ns = self._clock()
        last_frame_ns = opened_ns
        failures = 0
        steady = False
        while not self._stop.is_set():
            try:
                frame = self.source.read()
            except SourceError as exc:
                failures += 1
                if failures >= options.read_failures_before_restart:
                    return f"{exc} ({failures} times in a row)"
                continue
            except Exception as exc:
                log.exception("reading %s failed", self.source.describe())
                failures += 1
                if failures >= options.read_failures_before_restart:
                    return f"reading failed: {exc}"
                continue
            now = self._clock()
            if frame is None:
                if now - last_frame_ns > options.no_frame_timeout_s * 1e9:
                    return f"no frame for {options.no_frame_timeout_s:.0f} s"
                continue
            failures = 0
            last_frame_ns = now
            self._process(frame, now)
            if not steady and now - opened_ns >= options.steady_after_s * 1e9:
                steady = True
                self._backoff.reset()
                with self._state_lock:
                    self._monitor.steady()
            if (
                self.source.live
                and options.frozen_restart_s > 0
                and self._monitor.frozen_for_ns(now) >= options.frozen_restart_s * 1e9
            ):
                return f"the picture has not changed for {options.frozen_restart_s:.0f} s"
        return "stopped"

    def _process(self, frame: np.ndarray, now_ns: int) -> None:
        previous = self._latest
        latest = LatestFrame((previous.frame_id + 1) if previous else 1, frame, now_ns)
        with self._new_frame:
            self._latest = latest
            self._new_frame.notify_all()
        with self._state_lock:
            self._monitor.frame(frame, now_ns)
        if self.faces is not None:
            self.faces.offer(latest.frame_id, frame, now_ns)
        started = time.perf_counter()
        try:
            texts = self._decode(frame)
        except Exception:
            log.exception("decoding a frame failed")
            texts = []
        with self._state_lock:
            self._monitor.decoded((time.perf_counter() - started) * 1000.0)
        for payload in self._repeats.admit(texts, now_ns):
            self.reported += 1
            self._deliveries.put(BadgeRead(payload, now_ns, latest.frame_id, frame))

    def _camera_failed(self, reason: str) -> None:
        options = self.options
        attempt = self._monitor.restarts + 1
        if options.max_restarts and attempt > options.max_restarts:
            message = (
                f"camera {self.source.describe()} gave up after {options.max_restarts} "
                f"reopenings: {reason}"
            )
            log.error(message)
            with self._state_lock:
                self._monitor.failed(message)
            self._retry.clear()
            if not self._stop.is_set():  # stop() sets _stop before _retry: no lost wake-up
                self._retry.wait()  # until restart_camera() or stop()
            self._retry.clear()
            with self._state_lock:
                self._monitor.steady()
            self._backoff.reset()
            return
        delay = self._backoff.next_delay()
        log.warning(
            "camera %s: %s; reopening in %.2f s (attempt %d%s)",
            self.source.describe(),
            reason,
            delay,
            attempt,
            f" of {options.max_restarts}" if options.max_restarts else "",
        )
        with self._state_lock:
            self._monitor.restarting(reason, delay, attempt, options.max_restarts)
        self._retry.clear()
        if not self._stop.is_set():
            self._retry.wait(delay)
        self._retry.clear()

    # The delivery thread -----------------------------------------------------------------

    def _deliver(self) -> None:
        while True:
            item = self._deliveries.get()
            if item is _STOP:
                return
            read = cast(BadgeRead, item)
            try:
                if self.on_read is not None:
                    self.on_read(read)
                else:
                    self.on_payload(read.payload, read.time_ns)
            except Exception:
                self.callback_errors += 1
                log.exception("on_payload failed for a payload of %d characters", len(read.payload))
