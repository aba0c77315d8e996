"""The stays duty: works through the queue of stays to recompute, behind the ingest API.

Ingest only queues (cadre, day) pairs (`stays_dirty`), so a kiosk's answer never waits for
pairing. Whichever `central serve` process holds the duty's lease (central/duties/) works
through the queue, whoever stored the records: it polls the queue every `poll_s`, and a push
answered by the holder itself wakes it at once (`poke`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine

from central.duties import Duty
from central.stays.pairing import StayRules
from central.stays.store import any_queued, refresh, refresh_in

DUTY_NAME = "stays"


class StayRefresher:
    """Keeps the stays up to date behind the ingest API, as the duty `stays`.

    `duty()` is what the DutyRunner runs; `poke()` after queueing pairs wakes it (through
    `wake`, which the application wires to the runner). `drain()` works through the whole
    queue on the calling thread without a lease: for tests and commands that know they are
    alone.
    """

    def __init__(
        self,
        engine: Engine,
        rules: StayRules,
        chunk: int = 250,
        max_yield_s: float = 0.5,
        backlog_yield_s: float = 0.1,
        poll_s: float = 1.0,
        now: Callable[[], datetime] | None = None,
        wake: Callable[[], None] | None = None,
    ):
        self.engine = engine
        self.rules = rules
        self.chunk = chunk
        self.max_yield_s = max_yield_s
        self.backlog_yield_s = backlog_yield_s
        # The last step found a full chunk: a backlog (a surge of arrivals) is waiting.
        self._backlog = False
        self.poll_s = poll_s
        self._now = now
        self._wake = wake
        self._quiet = threading.Condition()
        self._ingesting = 0

    def duty(self) -> Duty:
        return Duty(
            name=DUTY_NAME,
            step=self.step,
            idle_s=self.poll_s,
            has_work=any_queued,
            before_step=self._let_ingest_go_first,
        )

    def poke(self) -> None:
        if self._wake is not None:
            self._wake()

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
        # Kiosks of this process are waiting for their answers; pairing can wait a moment. Not
        # long during a surge: with pushes always in flight, a full wait before every chunk held
        # pairing to ~100 pairs/s, and the all-sites figures fell minutes behind the scans
        # (bench/dawn.py). Behind a backlog it waits a moment only, then takes the next chunk.
        # Without one it still waits at most half a second: with pushes always in flight a 2 s
        # wait before every step was the whole of the 2-2.6 s between a record stored and its
        # stay (bench/dawn.py, 200 kiosks at 174 scans/s), for no gain to ingest.
        timeout = self.backlog_yield_s if self._backlog else self.max_yield_s
        with self._quiet:
            self._quiet.wait_for(lambda: self._ingesting == 0, timeout=timeout)

    def step(self, conn: Connection) -> int:
        """One chunk of the queue in the duty's fenced transaction; pairs recomputed."""
        done = refresh_in(conn, self.rules, self._clock(), self.chunk)
        self._backlog = done >= self.chunk
        return done

    def drain(self) -> int:
        """Work through the whole queue on the calling thread; returns pairs recomputed."""
        total = 0
        while done := refresh(self.engine, self.rules, self._clock(), self.chunk):
            total += done
        return total

    def _clock(self) -> datetime | None:
        return self._now() if self._now else None
