"""Clock chaos: a kiosk whose wall clock is stepped back two hours, then forward a day, then
resumes hours behind after power cuts, against a real centre.

The system clock of this machine cannot be changed, so the kiosk runs in this process (its real
app, pages, log, time keeper and sync agent, served by waitress on 127.0.0.1) with a
`SteppedClock`: real time passes, and its wall clock is stepped as a person or a power cut
would step it. The centre is the real `central serve` process on the real clock: the truth.
The kiosk's sync goes through the fault proxy, used here as a switch (all requests dropped:
the site network is down).

The run, as phases (boot, what the kiosk's wall clock shows):
    A  boot-1  synchronised (NTP), right
    B  boot-1  stepped back two hours (a step clears the kernel's synchronised flag)
    C  boot-1  stepped forward: a day ahead
    -- power cut; the network is down
    D  boot-2  resumed five hours behind, never learns its offset before the next cut
    -- power cut; the network is still down
    E1 boot-3  resumed three hours behind, offset not known yet
    -- the network returns: the agent's first exchange gives the offset
    E2 boot-3  three hours behind, offset known
    F  boot-3  NTP steps the clock right and synchronised
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from kiosk.clock import SystemClock
from tests.e2e.harness import (
    Centre,
    CentreView,
    HarnessError,
    KioskLogView,
    KioskProcess,
    RouteCountingProxy,
    Stopwatch,
    utc_naive_now,
    wait_drained,
)
from tests.e2e.trials import FAST_SYNC
from tests.fakes.faulty_proxy import FaultPlan

REPEAT_WINDOW_S = 1.0
# What the centre must make of each phase's events (the kiosk trusts its clock in A and F only).
EXPECTED_STATUS = {
    "A": "trusted",
    "B": "corrected",
    "C": "corrected",
    "D": "uncorrected",
    "E1": "corrected",
    "E2": "corrected",
    "F": "trusted",
}


class SteppedClock(SystemClock):
    """The kiosk's real SystemClock with its two readings of the outside world stepped: the wall
    time (real time plus `shift`) and the kernel's synchronised flag. Its boot id comes from a
    file of its own. A step clears the synchronised flag, as the kernel does when the time is
    set; everything else (monotonic time, how the flag is cached) is the real clock's."""

    def __init__(
        self,
        boot_id: str,
        folder: Path,
        shift: timedelta = timedelta(0),
        synchronized: bool = True,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        boot_file = folder / f"{boot_id}.boot_id"
        boot_file.write_text(boot_id + "\n")
        self.shift = shift
        self.kernel_synchronized = synchronized
        super().__init__(sync_probe=lambda: self.kernel_synchronized, boot_id_path=boot_file)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def step(self, delta: timedelta) -> None:
        self.shift += delta
        self.kernel_synchronized = False

    def ntp_sync(self) -> None:
        self.shift = timedelta(0)
        self.kernel_synchronized = True


class InProcessKiosk:
    """The kiosk app with a given clock, served on 127.0.0.1 like `kiosk run` (no camera)."""

    def __init__(self, instance: Path, clock: SteppedClock, **overrides: Any) -> None:
        from kiosk import settings as kiosk_settings
        from kiosk.app import create_app
        from kiosk.server import KioskServer

        settings = kiosk_settings.load(instance, env={}, **overrides)
        self.clock = clock
        self.app = create_app(instance, settings, clock=clock, scan_loop_factory=lambda _s: None)
        self.services = self.app.extensions["kiosk"]
        self.server = KioskServer(self.app, "127.0.0.1", 0, 8)
        self.services.start()
        self._thread = threading.Thread(target=self.server.run, name="e2e-kiosk", daemon=True)
        self._thread.start()
        self.url = self.server.url()
        self._session = requests.Session()

    def wedge(self, payload: str) -> dict[str, Any]:
        answer = self._session.post(
            f"{self.url}/screen/wedge",
            json={"payload": payload},
            headers={"X-Screen-Token": self.services.screen_token},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()

    def wait_for_offset(self, timeout_s: float = 30) -> None:
        """Until the agent has learned this boot's offset from the centre."""
        deadline = time.monotonic() + timeout_s
        while True:
            anchor = self.services.keeper.anchor(self.clock.boot_id())
            if anchor is not None and anchor.source == "centre":
                return
            if time.monotonic() > deadline:
                raise HarnessError("the kiosk did not learn its offset from the centre")
            time.sleep(0.05)

    def close(self) -> None:
        self._session.close()
        self.server.shutdown()
        self._thread.join(15)


@dataclass
class Scan:
    phase: str
    cadre: int
    boot_id: str
    shift: timedelta  # the kiosk's wall clock minus true time while it scanned
    before: datetime  # true time just before the scan (UTC)
    after: datetime  # true time once the screen answered
    answer: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.answer["event_id"])


@dataclass
class ClockReport:
    scans: list[Scan]
    log: KioskLogView
    centre: CentreView
    seconds_total: float

    def event(self, scan: Scan) -> Any:
        return next(e for e in self.log.events if str(e.event_id) == scan.event_id)

    def row(self, scan: Scan) -> Any:
        return next(r for r in self.centre.rows if r.event_id == scan.event_id)

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for scan in self.scans:
            event, row = self.event(scan), self.row(scan)
            true_mid = scan.before + (scan.after - scan.before) / 2
            device = event.device_time.astimezone(UTC)
            corrected = row.corrected_time.replace(tzinfo=UTC)
            out[f"seq {event.seq} {scan.phase} {scan.boot_id} cadre {scan.cadre}"] = (
                f"{scan.answer['outcome']}; device - true {_s(device - true_mid)}; kiosk trusted "
                f"{event.clock_trusted}; centre {row.time_status}, corrected - true "
                f"{_s(corrected - true_mid)}, service day {row.service_day}"
            )
        out["anomalies open"] = dict(self.centre.anomalies_open)
        out["anomalies resolved"] = dict(self.centre.anomalies_resolved)
        out["events (kiosk / centre)"] = f"{len(self.log.events)} / {len(self.centre.rows)}"
        out["chain"] = f"chain_seq {self.centre.chain_seq}, max_seq {self.centre.max_seq}"
        out["seconds in all"] = self.seconds_total
        return out


def _s(delta: timedelta) -> str:
    return f"{delta.total_seconds():+.3f} s"


def clock_trial(
    workdir: Path,
    centre: Centre,
    payloads: list[str],
    *,
    kiosk_id: str,
    site_id: str,
    progress: Callable[[str], None] = lambda _text: None,
) -> ClockReport:
    """Run phases A-F (see the module's doc) and return what each side holds."""
    watch = Stopwatch()
    proxy = RouteCountingProxy("127.0.0.1", centre.port, FaultPlan({})).start()
    # Enrolled by the real command; the settings here are only what `enroll` needs.
    enrolment = KioskProcess(workdir / "kiosk", {"camera_source": "images"})
    instance = enrolment.instance
    overrides = {**FAST_SYNC, "central_url": proxy.url, "repeat_window_s": REPEAT_WINDOW_S}
    scans: list[Scan] = []
    kiosk: InProcessKiosk | None = None

    def scan(phase: str, cadre: int) -> Scan:
        assert kiosk is not None
        before = datetime.now(UTC)
        answer = kiosk.wedge(payloads[cadre])
        after = datetime.now(UTC)
        done = Scan(phase, cadre, kiosk.clock.boot_id(), kiosk.clock.shift, before, after, answer)
        scans.append(done)
        progress(f"{phase}: cadre {cadre} -> {answer['outcome']} at {answer['time']}")
        return done

    def after_repeat_window() -> None:
        time.sleep(REPEAT_WINDOW_S + 0.2)

    try:
        enrolment.enroll(centre.url, centre.add_kiosk(site_id, kiosk_id), centre.centre_key)
        enrolment.close()

        clock = SteppedClock("boot-1", workdir)
        kiosk = InProcessKiosk(instance, clock, **overrides)
        for cadre in (0, 1, 2):
            scan("A", cadre)
        after_repeat_window()
        clock.step(timedelta(hours=-2))
        scan("B", 0)  # departure of an arrival made before the step
        scan("B", 3)
        scan("B", 4)
        after_repeat_window()
        clock.step(timedelta(days=1, hours=2))  # from two hours behind to a day ahead
        scan("C", 3)  # departure of an arrival made before this step
        scan("C", 5)
        wait_drained(centre.engine, kiosk_id, utc_naive_now(), timeout_s=60)
        kiosk.close()

        proxy.set_rates({"drop": 1.0})
        clock = SteppedClock("boot-2", workdir, shift=timedelta(hours=-5), synchronized=False)
        kiosk = InProcessKiosk(instance, clock, **overrides)
        scan("D", 6)
        scan("D", 1)  # arrived in boot-1 at a time this boot's clock cannot place
        kiosk.close()

        clock = SteppedClock("boot-3", workdir, shift=timedelta(hours=-3), synchronized=False)
        kiosk = InProcessKiosk(instance, clock, **overrides)
        scan("E1", 7)
        proxy.set_rates({})
        kiosk.wait_for_offset()
        scan("E2", 8)
        clock.ntp_sync()
        after_repeat_window()
        scan("F", 9)
        scan("F", 7)  # departure of an arrival made before NTP stepped the clock
        wait_drained(centre.engine, kiosk_id, utc_naive_now(), timeout_s=60)
        kiosk.close()
        kiosk = None
        return ClockReport(
            scans,
            KioskLogView.read(instance),
            CentreView.read(centre.engine, kiosk_id),
            watch.seconds(),
        )
    finally:
        if kiosk is not None:
            kiosk.close()
        proxy.stop()
