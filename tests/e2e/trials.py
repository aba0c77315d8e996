"""The end-to-end fault trials, sized by their caller: tests run them small, bench/ runs them long.

- `network_trial`: scans through a real kiosk process whose sync goes through the fault proxy
  to a real centre; afterwards every scan is at the centre once, chains whole.
- `power_trial`: the kiosk process SIGKILLed at random moments while the demo camera and a
  keyboard-wedge scanner feed it badges; every result the screen showed is in the log after the
  restarts and at the centre once.
- `clock_trial` (tests/e2e/clock_trial.py): the kiosk's clock stepped back and forward.

Each returns a report with every figure; `report.problems()` says in words what went wrong.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3

from kiosk.store.diskio import TEMP_SUFFIX
from tests.e2e.harness import (
    Centre,
    CentreView,
    Delivery,
    HarnessError,
    KioskLogView,
    KioskProcess,
    RouteCountingProxy,
    ScreenWatcher,
    Stopwatch,
    blank_camera_folder,
    compare,
    forged,
    utc_naive_now,
    wait_drained,
)
from tests.fakes.faulty_proxy import FAULTS, FaultPlan

Progress = Callable[[str], None]

# Sync tuned to retry at once: a trial measures whether anything is lost or doubled, not how
# patiently the agent waits (the defaults back off up to a minute).
FAST_SYNC = {
    "sync_interval_s": 1.0,
    "sync_backoff_base_s": 0.05,
    "sync_backoff_cap_s": 0.5,
    "sync_wake_min_interval_s": 0.0,
    "sync_timeout_s": 5.0,
}


def _quiet(_message: str) -> None:
    pass


# --- network faults --------------------------------------------------------------------------


@dataclass
class NetworkReport:
    scans_sent: int
    outcomes: dict[str, int]
    delivery: Delivery
    faults_all_routes: dict[str, int]
    faults_by_route: dict[str, dict[str, int]]
    answers_after_timeout: int  # delayed past the kiosk's timeout: it had given up and re-sent
    push_answers: dict[str, int]  # what the centre answered per event, over every push it got
    seconds_scanning: float
    seconds_draining: float
    seconds_total: float
    settings: dict[str, Any]

    @property
    def push_faults(self) -> dict[str, int]:
        return self.faults_by_route.get("events", {})

    def problems(self) -> list[str]:
        found = self.delivery.problems()
        if self.delivery.stored != self.scans_sent:
            found.append(f"{self.scans_sent} scans sent, {self.delivery.stored} events stored")
        return found

    def figures(self) -> dict[str, Any]:
        return {
            "scans sent": self.scans_sent,
            "scan outcomes": self.outcomes,
            **self.delivery.figures(),
            "faults (all requests)": self.faults_all_routes,
            **{f"faults on {route}": counts for route, counts in self.faults_by_route.items()},
            "answers that came after the kiosk's timeout": self.answers_after_timeout,
            "centre's answers per pushed event (re-sent ones are duplicates)": self.push_answers,
            "seconds scanning": self.seconds_scanning,
            "seconds draining after the last scan": self.seconds_draining,
            "seconds in all": self.seconds_total,
            "kiosk settings": self.settings,
        }


def network_trial(
    workdir: Path,
    centre: Centre,
    payloads: list[str],
    *,
    kiosk_id: str,
    site_id: str,
    scans: int,
    fault_rate: float = 0.5,
    seed: int = 7,
    delay_s: float = 0.2,
    batch_size: int = 500,
    sync_timeout_s: float = 5.0,
    clients: int = 2,
    every_fault_on_push: bool = False,
    progress: Progress = _quiet,
) -> NetworkReport:
    """`scans` distinct badges through a kiosk whose network fails `fault_rate` of requests.

    With `every_fault_on_push`, scanning goes on in small steps past `scans` (up to every
    payload given) until each kind of fault has hit at least one push of events."""
    if scans > len(payloads):
        raise ValueError(f"{scans} scans of distinct badges need {scans} payloads")
    clock = Stopwatch()
    proxy = RouteCountingProxy(
        "127.0.0.1", centre.port, FaultPlan.everything(fault_rate, seed=seed)
    )
    proxy.plan.delay_s = delay_s
    proxy.start()
    settings = {
        "camera_source": "images",
        "camera_device": str(blank_camera_folder(workdir / "blank-camera")),
        "camera_fps": 2.0,
        "sync_batch_size": batch_size,
        **FAST_SYNC,
        "sync_timeout_s": sync_timeout_s,
    }
    kiosk = KioskProcess(workdir / "kiosk", settings)
    try:
        kiosk.enroll(centre.url, centre.add_kiosk(site_id, kiosk_id), centre.centre_key)
        kiosk.spawn(env={"KIOSK_CENTRAL_URL": proxy.url})
        kiosk.wait_ready()
        answers: list[dict[str, Any]] = []
        failures: list[str] = []
        queue = iter(payloads)
        lock = threading.Lock()

        def scan_some(count: int) -> None:
            def client() -> None:
                with requests.Session() as session:
                    while True:
                        with lock:
                            if count_left[0] <= 0:
                                return
                            count_left[0] -= 1
                            payload = next(queue)
                        try:
                            answer = kiosk.wedge(payload, session)
                        except requests.RequestException as exc:
                            with lock:
                                failures.append(repr(exc))
                            continue
                        with lock:
                            answers.append(answer)

            count_left = [count]
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        scanning = Stopwatch()
        step = max(1, scans // 10)
        while len(answers) + len(failures) < scans:
            scan_some(min(step, scans - len(answers) - len(failures)))
            progress(f"scanned {len(answers)} of {scans}; faults so far {dict(proxy.counts)}")
        if every_fault_on_push:
            while len(answers) + len(failures) + 25 <= len(payloads):
                missing = set(FAULTS) - set(proxy.route_counts("events"))
                if not missing:
                    break
                progress(f"no push has met {sorted(missing)} yet: 25 more scans")
                scan_some(25)
                time.sleep(0.3)
        seconds_scanning = scanning.seconds()
        if failures:
            raise AssertionError(f"{len(failures)} wedge scans failed: {failures[:3]}")

        draining = Stopwatch()
        wait_drained(centre.engine, kiosk_id, utc_naive_now(), timeout_s=600)
        seconds_draining = draining.seconds()
        kiosk.stop()
        log = KioskLogView.read(kiosk.instance)
        centre_view = CentreView.read(centre.engine, kiosk_id)
        shown = [a["event_id"] for a in answers if a.get("event_id")]
        delivery = compare(shown, log, centre_view)
        routes = sorted({route for route, _ in proxy.by_route})
        return NetworkReport(
            scans_sent=len(answers) + len(failures),
            outcomes=dict(Counter(a["outcome"] for a in answers)),
            delivery=delivery,
            faults_all_routes=dict(sorted(proxy.counts.items())),
            faults_by_route={route: proxy.route_counts(route) for route in routes},
            answers_after_timeout=proxy.answers_to_gone_clients,
            push_answers=dict(proxy.centre_said),
            seconds_scanning=seconds_scanning,
            seconds_draining=seconds_draining,
            seconds_total=clock.seconds(),
            settings={**settings, "fault_rate": fault_rate, "delay_s": delay_s, "seed": seed},
        )
    finally:
        kiosk.close()
        proxy.stop()


# --- power loss ------------------------------------------------------------------------------


@dataclass
class PowerReport:
    kills: int
    kills_during_startup: int
    kills_mid_file_replace: int  # left a temp file of an atomic write (segment, manifest...)
    rescans_after_restart: int
    rescans_not_repeat: list[dict[str, Any]]
    spawns: int
    wedge_scans_sent: int
    wedge_answered: int
    wedge_unanswered: int  # in flight when the process died (never shown)
    screen_scan_messages: int
    screen_connections: int
    outcomes_shown: dict[str, int]
    events_by_source: dict[str, int]
    recoveries: dict[str, int]
    ready_s_median: float
    delivery: Delivery
    seconds_total: float
    settings: dict[str, Any]
    tracebacks: int
    faults: dict[str, int]

    def problems(self) -> list[str]:
        found = self.delivery.problems()
        if self.rescans_not_repeat:
            found.append(
                f"{len(self.rescans_not_repeat)} badges shown again after a restart, inside "
                f"the repeat window, were not repeats: {self.rescans_not_repeat[:3]}"
            )
        if self.recoveries.get("events lost"):
            found.append(f"the log reported lost events on {self.recoveries['events lost']} opens")
        return found

    def figures(self) -> dict[str, Any]:
        return {
            "SIGKILLs": self.kills,
            "  of which before the kiosk answered": self.kills_during_startup,
            "  of which left a half-done file replace": self.kills_mid_file_replace,
            "badges shown again just after a restart": self.rescans_after_restart,
            "  answered other than 'repeat'": len(self.rescans_not_repeat),
            "kiosk processes started": self.spawns,
            "wedge scans sent": self.wedge_scans_sent,
            "  answered": self.wedge_answered,
            "  cut off by a kill (never shown)": self.wedge_unanswered,
            "scan results on the screen's stream": self.screen_scan_messages,
            "  over this many stream connections": self.screen_connections,
            "outcomes shown": self.outcomes_shown,
            "events in the log by source": self.events_by_source,
            **self.delivery.figures(),
            "log recoveries at open": self.recoveries or "none",
            "tracebacks in the kiosk's output": self.tracebacks,
            "network faults (all requests)": self.faults,
            "median seconds from start to /healthz": self.ready_s_median,
            "seconds in all": self.seconds_total,
            "kiosk settings": self.settings,
        }


class WedgeDriver:
    """A keyboard-wedge scanner typing badges into the kiosk at a steady rate, through kills.

    Every `invalid_every`-th scan is a forged badge (refused, goes to the failed-scan log)."""

    def __init__(
        self,
        kiosk: KioskProcess,
        next_payload: Callable[[], str],
        rate_per_s: float,
        invalid_every: int = 10,
    ) -> None:
        self.kiosk = kiosk
        self.next_payload = next_payload
        self.period = 1.0 / rate_per_s
        self.invalid_every = invalid_every
        self.answers: list[dict[str, Any]] = []
        self.last_event: tuple[str, dict[str, Any]] | None = None  # (payload, answer)
        self.sent = 0
        self.unanswered = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wedge-driver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(30)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stopping.is_set():
                started = time.monotonic()
                payload = self.next_payload()
                if self.invalid_every and (self.sent + 1) % self.invalid_every == 0:
                    payload = forged(payload)
                try:
                    answer = self.kiosk.wedge(payload, session, timeout_s=5)
                    self.sent += 1
                    self.answers.append(answer)
                    if answer.get("event_id"):
                        self.last_event = (payload, answer)
                except requests.RequestException as exc:
                    if _refused(exc):  # no kiosk listening: the scan never reached one
                        self._stopping.wait(0.05)
                        continue
                    self.sent += 1
                    self.unanswered += 1
                self._stopping.wait(max(0.0, self.period - (time.monotonic() - started)))


def _scan_again(kiosk: KioskProcess, payload: str, shown: dict[str, Any]) -> dict[str, Any]:
    """Show `payload` again; the answer, with what was shown the first time."""
    try:
        answer = dict(kiosk.wedge(payload, timeout_s=5))
    except requests.RequestException as exc:
        answer = {"outcome": f"no answer: {exc!r}"}
    answer["first_shown"] = {k: shown.get(k) for k in ("outcome", "event_id", "time")}
    return answer


def _refused(exc: requests.RequestException) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def _recoveries(run_log: str) -> dict[str, int]:
    """What the kiosk's log said at each open after a kill (kiosk/store/log.py's summary)."""
    found: Counter[str] = Counter()
    for line in run_log.splitlines():
        if "opened:" not in line or "event log" not in line:
            continue
        summary = line.partition("opened:")[2]
        for part in summary.split(";"):
            words = part.strip()
            if not words:
                continue
            key = "events lost" if "events lost" in words else words.split(" of ")[0]
            key = key.split("(")[0].strip()
            for digit in "0123456789":
                key = key.replace(digit, "")
            found[" ".join(key.split())] += 1
    return dict(found)


def power_trial(
    workdir: Path,
    centre: Centre,
    payloads: list[str],
    *,
    kiosk_id: str,
    site_id: str,
    kills: int,
    seed: int = 11,
    live_s: tuple[float, float] = (0.2, 1.5),
    early_kill_share: float = 0.15,
    wedge_rate: float = 30.0,
    camera_fps: float = 30.0,
    camera_badges: int = 12,
    fault_rate: float = 0.0,
    progress: Progress = _quiet,
) -> PowerReport:
    """Kill the kiosk process `kills` times at random moments while badges are scanned.

    A share of the kills land while the process starts (opening and repairing the log, the
    agent's first push); the rest `live_s` after it answered. Badges come from the demo camera
    (`camera_badges` of them per run, shown in turn) and a keyboard-wedge driver, drawn in turn
    from `payloads` (more than two minutes' worth, so most scans make an event). With a
    `fault_rate`, the kiosk's sync also goes through the fault proxy."""
    clock = Stopwatch()
    rng = random.Random(seed)
    rotation = {"next": 0}
    rotation_lock = threading.Lock()

    def next_payload() -> str:
        with rotation_lock:
            payload = payloads[rotation["next"] % len(payloads)]
            rotation["next"] += 1
            return payload

    badge_file = workdir / "demo-badges.txt"
    settings = {
        "camera_source": "demo",
        "camera_device": str(badge_file),
        "camera_fps": camera_fps,
        "camera_demo_seed": seed,
        # Small checkpoints and segments: the multi-file steps of the log (segment write,
        # manifest replace, journal rotation) happen every few scans, so kills land in them.
        "store_checkpoint_events": 20,
        "store_segment_events": 100,
        "server_threads": 8,
        **FAST_SYNC,
    }
    kiosk = KioskProcess(workdir / "kiosk", settings)
    proxy = RouteCountingProxy(
        "127.0.0.1", centre.port, FaultPlan.everything(fault_rate, seed=seed)
    ).start()
    network = {"KIOSK_CENTRAL_URL": proxy.url}
    watcher = ScreenWatcher(kiosk.url)
    driver = WedgeDriver(kiosk, next_payload, wedge_rate)
    ready_times: list[float] = []
    early = 0
    mid_replace = 0
    # After a restart, the badge whose check-in the screen showed last before the kill is
    # shown again (seconds later, inside the repeat window): it must be a repeat, not an event.
    before_kill: tuple[str, dict[str, Any]] | None = None
    rescans: list[dict[str, Any]] = []
    try:
        kiosk.enroll(centre.url, centre.add_kiosk(site_id, kiosk_id), centre.centre_key)
        watcher.start()
        driver.start()
        for round_number in range(1, kills + 1):
            # The demo camera shows the next few badges of the rotation, in turn.
            badge_file.write_text("\n".join(next_payload() for _ in range(camera_badges)) + "\n")
            watcher.forget_connection()
            spawned_at = time.monotonic()
            kiosk.spawn(env=network)
            if rng.random() < early_kill_share:
                early += 1
                time.sleep(rng.uniform(0.0, 1.2))
            else:
                ready_times.append(kiosk.wait_ready())
                try:
                    watcher.wait_connected(10)
                except HarnessError:
                    progress("the screen's stream did not connect before this kill")
                if before_kill is not None:
                    rescans.append(_scan_again(kiosk, *before_kill))
                time.sleep(rng.uniform(*live_s))
            kiosk.kill()
            before_kill = driver.last_event
            if any(kiosk.instance.rglob("*" + TEMP_SUFFIX)):
                mid_replace += 1
            if round_number % 10 == 0 or round_number == kills:
                progress(
                    f"kill {round_number}/{kills} after {time.monotonic() - spawned_at:.2f} s; "
                    f"{len(watcher.shown_event_ids)} events shown so far"
                )
        driver.stop()
        # The last start: no more badges (the camera sees an empty room); the agent drains.
        kiosk.spawn(
            env={
                **network,
                "KIOSK_CAMERA_SOURCE": "images",
                "KIOSK_CAMERA_DEVICE": str(blank_camera_folder(workdir / "blank-camera")),
            }
        )
        kiosk.wait_ready()
        wait_drained(centre.engine, kiosk_id, utc_naive_now(), timeout_s=300)
        kiosk.stop()
        watcher.stop()
        log = KioskLogView.read(kiosk.instance)
        centre_view = CentreView.read(centre.engine, kiosk_id)
        answered_ids = {a["event_id"] for a in driver.answers if a.get("event_id")}
        delivery = compare(watcher.shown_event_ids | answered_ids, log, centre_view)
        run_log = kiosk.log_text()
        return PowerReport(
            kills=kiosk.kills,
            kills_during_startup=early,
            kills_mid_file_replace=mid_replace,
            rescans_after_restart=len(rescans),
            rescans_not_repeat=[r for r in rescans if r.get("outcome") != "repeat"],
            spawns=kiosk.spawned,
            wedge_scans_sent=driver.sent,
            wedge_answered=len(driver.answers),
            wedge_unanswered=driver.unanswered,
            screen_scan_messages=len(watcher.scans),
            screen_connections=watcher.connections,
            outcomes_shown=dict(Counter(s["outcome"] for s in watcher.scans)),
            events_by_source=dict(Counter(e.source for e in log.events)),
            recoveries=_recoveries(run_log),
            ready_s_median=round(statistics.median(ready_times), 2) if ready_times else 0.0,
            delivery=delivery,
            seconds_total=clock.seconds(),
            settings={
                **settings,
                "camera_device": badge_file.name,
                "wedge_rate": wedge_rate,
                "fault_rate": fault_rate,
            },
            tracebacks=run_log.count("Traceback"),
            faults=dict(sorted(proxy.counts.items())),
        )
    finally:
        driver.stop()
        watcher.stop()
        kiosk.close()
        proxy.stop()
