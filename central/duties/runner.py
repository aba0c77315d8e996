"""Periodic duties run under a lease: whichever `central serve` process holds a duty's lease does
its work; the others wait and take over when the holder stops renewing (central/duties/lease.py).

A duty is a name, a `step` that does one bounded piece of work inside a transaction the runner
opens (and returns how many items it did: 0 means there was nothing to do), an optional cheap
read-only `has_work` check, and how long to wait when idle. The runner gives each duty a thread
of its own, so a slow duty never delays another:

    loop: hold the lease (take it, or renew it when a third of it has passed)
          if held and there is work: one transaction = fence + step + a `duty_runs` row
          wait `idle_s` (or until `wake()`), or `retry_s` when another process holds the lease

Each step's transaction begins with the fence, so a step commits only while its lease holds;
the `duty_runs` row it writes (holder, generation, start and end by the database's clock) is the
record that no two processes ever did a duty's work at once.

Other streams add their duties with `central_of(app).duties.add(Duty(...))` before `start()`
(central/app.py starts the runner for `central serve`; tests run steps by hand).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, insert

from central.db.bulk import write_transaction
from central.db.schema import duty_runs
from central.duties import lease as leases
from central.duties.lease import Lease, LeaseLost

log = logging.getLogger(__name__)


@dataclass
class Duty:
    name: str
    # One piece of work in the given write transaction; returns the items done (0: none).
    step: Callable[[Connection], int]
    idle_s: float = 1.0  # wait after a step that found nothing to do
    # Cheap read-only check run before opening a write transaction; None: always try `step`.
    has_work: Callable[[Connection], bool] | None = None
    # Called before each step on the holder (e.g. let the process's own requests go first).
    before_step: Callable[[], None] | None = None


@dataclass
class DutyStatus:
    """What this process knows of one duty, for logs and `central duties`."""

    name: str
    holding: bool = False
    generation: int | None = None
    steps: int = 0
    items: int = 0
    last_error: str | None = None
    taken_over: int = 0  # times this process took the lease (first take included)


@dataclass
class _Running:
    duty: Duty
    status: DutyStatus
    wake: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    lease: Lease | None = None
    renewed_at: float = 0.0
    next_step_at: float = 0.0  # monotonic; 0: at once


class DutyRunner:
    """Runs the duties of this process under their leases, one thread per duty.

    holder: this process's name in the lease table (central.duties.lease.new_holder_id()).
    lease_s: how long a lease lasts unrenewed: a dead holder's duties move within about this.
    retry_s: how often a process that does not hold a lease asks for it.
    """

    def __init__(
        self,
        engine: Engine,
        holder: str | None = None,
        lease_s: float = 5.0,
        retry_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.holder = holder or leases.new_holder_id()
        self.lease_s = lease_s
        self.retry_s = retry_s
        self._duties: dict[str, _Running] = {}
        self._stopping = threading.Event()
        self._started = False

    def add(self, duty: Duty) -> None:
        if duty.name in self._duties:
            raise ValueError(f"duty {duty.name!r} added twice")
        running = _Running(duty, DutyStatus(duty.name))
        self._duties[duty.name] = running
        if self._started:
            self._start_one(running)

    @property
    def names(self) -> list[str]:
        return list(self._duties)

    def status(self) -> list[DutyStatus]:
        return [r.status for r in self._duties.values()]

    def threads(self) -> list[tuple[str, str, bool]]:
        """(duty, running | stopped | dead, holding its lease) for /healthz: "dead" is a thread
        that ended while the runner was meant to run; "stopped" one never started here."""
        out = []
        for name, running in self._duties.items():
            thread = running.thread
            if thread is None or not self._started:
                state = "stopped"
            elif thread.is_alive():
                state = "running"
            else:
                state = "stopped" if self._stopping.is_set() else "dead"
            out.append((name, state, running.lease is not None))
        return out

    def wake(self, name: str) -> None:
        """There may be work for `name` (e.g. ingest queued stays): the holder looks at once."""
        running = self._duties.get(name)
        if running is not None:
            running.wake.set()

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for running in self._duties.values():
            self._start_one(running)

    def _start_one(self, running: _Running) -> None:
        running.thread = threading.Thread(
            target=self._loop, args=(running,), name=f"duty-{running.duty.name}", daemon=True
        )
        running.thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every duty thread after its current step and release the leases held."""
        self._stopping.set()
        for running in self._duties.values():
            running.wake.set()
        deadline = time.monotonic() + timeout_s
        for running in self._duties.values():
            if running.thread is not None:
                running.thread.join(max(0.0, deadline - time.monotonic()))

    # --- one duty's thread -------------------------------------------------------------------

    def _loop(self, running: _Running) -> None:
        while not self._stopping.is_set():
            try:
                pause = self._turn(running)
            except Exception as exc:  # the database is away, a bug in a step: log, wait, retry
                log.exception("duty %s failed", running.duty.name)
                running.status.last_error = f"{type(exc).__name__}: {exc}"
                pause = max(self.retry_s, 1.0)
            if pause > 0 and running.wake.wait(pause):
                running.wake.clear()
                running.next_step_at = 0.0
        self._release(running)

    def _turn(self, running: _Running) -> float:
        """One turn of the loop; returns how long to wait before the next."""
        if not self._hold(running):
            return self.retry_s
        # A holder that waits out a long idle_s still renews its lease in time.
        renew_in = self.lease_s / 3
        duty = running.duty
        wait = running.next_step_at - time.monotonic()
        if wait > 0:
            return min(wait, renew_in)
        running.next_step_at = time.monotonic() + duty.idle_s
        if duty.has_work is not None:
            with self.engine.connect() as conn:
                if not duty.has_work(conn):
                    return min(duty.idle_s, renew_in)
        if duty.before_step is not None:
            duty.before_step()
        if self.run_step(running):
            running.next_step_at = 0.0
            return 0.0
        return min(duty.idle_s, renew_in)

    def _hold(self, running: _Running) -> bool:
        """Whether this process holds the duty's lease now, taking or renewing it when due."""
        due = running.lease is None or (time.monotonic() - running.renewed_at >= self.lease_s / 3)
        if due:
            with write_transaction(self.engine) as conn:
                lease = leases.acquire(conn, running.duty.name, self.holder, self.lease_s)
            self._set_lease(running, lease)
        return running.lease is not None

    def _set_lease(self, running: _Running, lease: Lease | None) -> None:
        previous = running.lease
        if lease is not None and (previous is None or previous.generation != lease.generation):
            running.status.taken_over += 1
            running.next_step_at = 0.0  # what the last holder left undone is due now
            log.info("duty %s: this process holds it (generation %d)", lease.duty, lease.generation)
        elif lease is None and previous is not None:
            log.info("duty %s: another process holds it now", running.duty.name)
        running.lease = lease
        running.renewed_at = time.monotonic()
        running.status.holding = lease is not None
        running.status.generation = lease.generation if lease else None

    def run_step(self, running: _Running) -> int:
        """The duty's step in one fenced transaction that records itself when it did work."""
        lease = running.lease
        assert lease is not None
        try:
            with write_transaction(self.engine) as conn:
                started = leases.fence(conn, lease, self.lease_s)
                done = running.duty.step(conn)
                if done:
                    conn.execute(
                        insert(duty_runs).values(
                            duty=lease.duty,
                            holder=lease.holder,
                            generation=lease.generation,
                            started_at=started,
                            ended_at=leases.database_now(conn),
                            items=done,
                        )
                    )
        except LeaseLost:
            self._set_lease(running, None)
            return 0
        running.renewed_at = time.monotonic()
        running.status.steps += 1
        running.status.items += done
        running.status.last_error = None
        return done

    def _release(self, running: _Running) -> None:
        if running.lease is None:
            return
        try:
            with write_transaction(self.engine) as conn:
                leases.release(conn, running.lease)
        except Exception:  # stopping anyway: the lease then simply expires
            log.warning("duty %s: could not release its lease", running.duty.name, exc_info=True)
        self._set_lease(running, None)

    # --- for tests and the command line ------------------------------------------------------

    def run_once(self, name: str) -> int:
        """Take the lease of `name` if free and run one step now, on the calling thread."""
        running = self._duties[name]
        if not self._hold(running):
            return 0
        return self.run_step(running)
