"""A scripted camera for tests: a scanner FrameSource that plays frames and failures in order.

    camera = FakeCamera(
        [frame_a, frame_a, None, SourceError("unplugged")],   # what read() gives, step by step
        opens=[True, SourceError("no device"), True],          # what open() does, per attempt
        tick=lambda: clock.advance(0.1),                       # time passing per read
    )

A frame step is returned (a copy, as a camera gives a new buffer each time), None means "no
frame yet", an exception is raised. When the script runs out, `after` decides: "hold" keeps
returning the last frame, "none" returns None, "fail" raises SourceError, "loop" starts over.
`opens` past its end always succeed. Every open, close and read is counted for assertions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np

from scanner.sources import FrameSource, SourceError

Step = np.ndarray | None | BaseException


class FakeCamera(FrameSource):
    def __init__(
        self,
        script: Iterable[Step],
        *,
        opens: Iterable[bool | BaseException] = (),
        after: Literal["hold", "none", "fail", "loop"] = "none",
        live: bool = True,
        tick: Callable[[], None] | None = None,
        read_delay_s: float = 0.0,
        name: str = "fake camera",
    ) -> None:
        self.script = list(script)
        self.opens_planned = list(opens)
        self.after = after
        self.live = live
        self.tick = tick
        self.read_delay_s = read_delay_s
        self.name = name
        self.position = 0
        self.is_open = False
        self.open_calls = 0
        self.close_calls = 0
        self.reads = 0
        self.frames_given = 0
        self.exhausted = threading.Event()
        self._last_frame: np.ndarray | None = None
        self._on_open: list[Callable[[int], None]] = []

    def on_open(self, hook: Callable[[int], None]) -> None:
        """Run `hook(attempt_number)` in the scan thread at each open() call."""
        self._on_open.append(hook)

    def describe(self) -> str:
        return self.name

    def open(self) -> None:
        self.open_calls += 1
        for hook in self._on_open:
            hook(self.open_calls)
        plan = self.opens_planned.pop(0) if self.opens_planned else True
        if isinstance(plan, BaseException):
            raise plan
        if plan is False:
            raise SourceError(f"{self.name}: cannot open")
        self.is_open = True

    def close(self) -> None:
        self.close_calls += 1
        self.is_open = False

    def read(self) -> np.ndarray | None:
        self.reads += 1
        if self.read_delay_s:
            time.sleep(self.read_delay_s)
        if self.tick is not None:
            self.tick()
        if not self.is_open:
            raise SourceError(f"{self.name} is not open")
        if self.position >= len(self.script):
            self.exhausted.set()
            if self.after == "loop" and self.script:
                self.position = 0
            elif self.after == "hold" and self._last_frame is not None:
                return self._last_frame.copy()
            elif self.after == "fail":
                raise SourceError(f"{self.name}: script ended")
            else:
                time.sleep(0.001)  # like a camera waiting for its next frame
                return None
        step = self.script[self.position]
        self.position += 1
        if isinstance(step, BaseException):
            raise step
        if step is None:
            return None
        self._last_frame = step
        self.frames_given += 1
        return step.copy()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll `predicate` until true; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.002)
