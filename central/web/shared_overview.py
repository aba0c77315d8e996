"""The all-sites figures, worked out once for everyone who watches them.

The all-sites page and its live JSON aggregate every stay of the day (about 100 ms of database
and Python at 40,000 cadres). Worked out per request, each person watching adds that again, and
during the dawn surge, when everyone watches, the page queued behind the pushes (bench/dawn.py:
p95 574 ms to 1.1 s on the page alone). Here a process works the figures out at most every
`overview_refresh_s`, in a thread of its own while anyone asked for them lately, and every
request reads the latest: its cost is the rendering only, however many watch. The figures a
request gets are at most about `overview_refresh_s` older than the request, as the stays are
already a moment behind the pushes (the stays duty pairs them after the kiosk is answered).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

Figures = TypeVar("Figures")
log = logging.getLogger(__name__)

# Stop refreshing a day nobody asked for in this long (two of the pages' live polls).
WATCHED_FOR_S = 30.0


@dataclass
class _Held(Generic[Figures]):
    started: float  # when its working out began: what it shows is no older than that
    figures: Figures


class SharedFigures(Generic[Figures]):
    """Figures per day, worked out by `work_out(day)` at most every `every_s` per process.

    `get(day)` answers with figures whose working out began at most 2 x `every_s` ago, or
    works them out itself (one caller at a time per day; the others wait for its result). While
    a day was asked for within `watched_for_s`, a background thread works it out again every
    `every_s`, so a request finds fresh figures waiting. `every_s` 0: worked out on every
    request, as before."""

    def __init__(
        self,
        work_out: Callable[[date], Figures],
        every_s: float,
        watched_for_s: float = WATCHED_FOR_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._work_out = work_out
        self.every_s = every_s
        self._watched_for_s = watched_for_s
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[date, _Held[Figures]] = {}
        self._asked: dict[date, float] = {}
        self._day_locks: dict[date, threading.Lock] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.worked_out = 0  # how many times figures were worked out (tests, benches)

    def get(self, day: date) -> Figures:
        if self.every_s <= 0:
            self.worked_out += 1
            return self._work_out(day)
        now = self._clock()
        with self._lock:
            self._asked[day] = now
            held = self._held.get(day)
            self._keep_refreshing()
        if self._fresh(held, now):
            assert held is not None
            return held.figures
        return self._refresh(day, anew=False)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _fresh(self, held: _Held[Figures] | None, now: float) -> bool:
        return held is not None and now - held.started <= 2 * self.every_s

    def _refresh(self, day: date, anew: bool) -> Figures:
        """Work the day's figures out; unless `anew`, take those another caller worked out
        while this one waited for its turn."""
        with self._lock:
            day_lock = self._day_locks.setdefault(day, threading.Lock())
        with day_lock:
            with self._lock:
                held = self._held.get(day)
            if not anew and self._fresh(held, self._clock()):
                assert held is not None
                return held.figures
            started = self._clock()
            figures = self._work_out(day)
            with self._lock:
                self.worked_out += 1
                current = self._held.get(day)
                if current is None or current.started < started:
                    self._held[day] = _Held(started, figures)
            return figures

    def _keep_refreshing(self) -> None:
        """Start the background thread if it is not running (called with the lock held)."""
        if self._thread is not None and self._thread.is_alive():
            return
        if self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._run, name="shared-overview", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            now = self._clock()
            with self._lock:
                for day in [d for d, at in self._asked.items() if now - at > self._watched_for_s]:
                    del self._asked[day]
                    self._held.pop(day, None)
                watched = list(self._asked)
                if not watched:
                    self._thread = None
                    return
            for day in watched:
                try:
                    self._refresh(day, anew=True)
                except Exception as error:  # a request works them out itself, and says why
                    log.warning("working out the all-sites figures of %s failed: %s", day, error)
                    with self._lock:
                        self._held.pop(day, None)
