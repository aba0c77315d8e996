"""The thread that works through the queue of stays to recompute, behind the ingest API."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Engine

from central.stays.pairing import StayRules
from central.stays.store import refresh


class StayRefresher:
    """Keeps the stays up to date behind the ingest API, on a thread of its own.

    `poke()` after queueing pairs: the thread starts if needed, works through the queue in
    chunks (letting ingest transactions in between) and ends after `idle_exit_s` without work,
    so an app that is not pushed to holds no thread. Without `autostart` (tests) nothing runs
    until `drain()` is called.
    """

    def __init__(
        self,
        engine: Engine,
        rules: StayRules,
        chunk: int = 250,
        idle_exit_s: float = 30.0,
        max_yield_s: float = 2.0,
        now: Callable[[], datetime] | None = None,
        autostart: bool = True,
    ):
        self.engine = engine
        self.autostart = autostart
        self.rules = rules
        self.chunk = chunk
        self.idle_exit_s = idle_exit_s
        self.max_yield_s = max_yield_s
        self._now = now
        self._work = threading.Event()
        self._lock = threading.Lock()
        self._quiet = threading.Condition()
        self._ingesting = 0
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def poke(self) -> None:
        self._work.set()
        if not self.autostart:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stays", daemon=True)
                self._thread.start()

    @contextmanager
    def ingesting(self) -> Iterator[None]:
        """Wrap an ingest: the refresher lets it go first (it waits, at most `max_yield_s`)."""
        with self._quiet:
            self._ingesting += 1
        try:
            yield
        finally:
            with self._quiet:
                self._ingesting -= 1
                self._quiet.notify_all()

    def _let_ingest_go_first(self) -> None:
        with self._quiet:
            self._quiet.wait_for(lambda: self._ingesting == 0, timeout=self.max_yield_s)

    def drain(self) -> int:
        """Work through the whole queue on the calling thread; returns pairs recomputed."""
        total = 0
        while done := refresh(self.engine, self.rules, self._clock(), self.chunk):
            total += done
        return total

    def _clock(self) -> datetime | None:
        return self._now() if self._now else None

    def _run(self) -> None:
        while True:
            if not self._work.wait(self.idle_exit_s):
                with self._lock:
                    if not self._work.is_set():
                        self._thread = None
                        return
                continue
            self._work.clear()
            try:
                while True:
                    # Kiosks are waiting for their answers; pairing can wait a moment.
                    self._let_ingest_go_first()
                    if not refresh(self.engine, self.rules, self._clock(), self.chunk):
                        break
                self.last_error = None
            except Exception as exc:  # keep the thread; the queue is still there to retry
                logging.getLogger(__name__).exception("stays refresh failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(1.0)
                self._work.set()
