"""Signed updates with rollback, on loopback, with real wheels and real venvs.

A kiosk installed in the update layout (its first venv: this checkout's) runs under a fake of
systemd that runs kiosk.service's three commands (tests/fakes/unit.py). Badges are scanned
through the wedge the whole time. The centre offers release 0.2.0 (`central release add
--site`): the kiosk fetches it, checks it, installs it in venvs/0.2.0, switches and restarts,
and 0.2.0 passes its trial. Then 0.3.0, whose /healthz always answers 503: the guard switches
back to 0.2.0 within the minute, and the kiosk never takes 0.3.0 again. Every scan is in the
log afterwards, once.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from tests.e2e.harness import Centre, KioskLogView, KioskProcess, blank_camera_folder
from tests.e2e.trials import FAST_SYNC
from tests.fakes.unit import FakeSystemdUnit
from tests.updates.wheels import build_wheel, healthz_fails

SITE = "E2E-UPD"


@dataclass
class Scanner:
    """Wedge scans of distinct badges, one after another, each sent again until the kiosk
    answers (while it restarts, the connection is refused: a person scans again)."""

    kiosk: KioskProcess
    payloads: list[str]
    pause_s: float = 0.25
    answered: list[int] = field(default_factory=list)
    retries: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def _run(self) -> None:
        session = requests.Session()
        for index, payload in enumerate(self.payloads):
            if self._stop.is_set():
                return
            while not self._stop.is_set():
                try:
                    answer = self.kiosk.wedge(payload, session=session, timeout_s=10)
                except requests.RequestException:
                    self.retries += 1
                    time.sleep(0.2)
                    continue
                assert answer.get("outcome") in ("arrival", "repeat"), answer
                self.answered.append(index)
                break
            time.sleep(self.pause_s)


def _wait(check: object, timeout_s: float, what: str, unit: FakeSystemdUnit) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s\n{unit.log.text()}")
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.fixture
def layout_root(tmp_path: Path) -> Path:
    """The /opt/cadre-kiosk of a fresh install: venv is this checkout's own."""
    root = tmp_path / "opt"
    root.mkdir()
    (root / "venv").symlink_to(Path(sys.prefix))
    (root / "current").symlink_to("venv")
    (root / "good").symlink_to("venv")
    return root


@pytest.fixture
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    work = tmp_path_factory.mktemp("wheels")
    yield {
        "0.2.0": build_wheel(work, "0.2.0"),
        "0.3.0": build_wheel(work, "0.3.0", healthz_fails),
    }


def test_release_installs_switches_and_a_broken_one_rolls_back(
    centre: Centre,
    badges: dict[str, list[str]],
    wheels: dict[str, Path],
    layout_root: Path,
    tmp_path: Path,
) -> None:
    from central.db.schema import kiosk_status
    from kiosk.updates.layout import UpdateLayout

    layout = UpdateLayout(layout_root)
    kiosk = KioskProcess(
        tmp_path / "kiosk",
        {
            "camera_source": "images",
            "camera_device": str(blank_camera_folder(tmp_path / "blank-camera")),
            "camera_fps": 2.0,
            **FAST_SYNC,
            "update_busy_hours": "",
            # Scans come all the time here: the quiet wait is tested on its own (tests/updates);
            # this is the switch under the worst load.
            "update_idle_s": 0,
        },
    )
    kiosk.enroll(centre.url, centre.add_kiosk(SITE, "k-upd"), centre.centre_key)
    output = (tmp_path / "unit.log").open("ab")
    unit = FakeSystemdUnit(layout_root, kiosk.instance, output=output)
    scanner = Scanner(kiosk, badges[SITE])
    try:
        unit.start()
        _wait(kiosk.healthy, 90, "the kiosk's first start", unit)
        scanner.start()
        time.sleep(2)

        centre.cli("release", "add", str(wheels["0.2.0"]), "--site", SITE)
        took = _wait(
            lambda: layout.version_at(layout.good) == "0.2.0" and layout.trial() is None,
            180,
            "0.2.0 installed, switched to and passed",
            unit,
        )
        print(f"0.2.0 offered -> passed its trial: {took:.1f} s")
        assert layout.version_at(layout.current) == "0.2.0"
        _wait(kiosk.healthy, 30, "0.2.0 answers", unit)

        centre.cli("release", "add", str(wheels["0.3.0"]), "--site", SITE)
        _wait(lambda: (layout.root / "trial.json").exists(), 120, "switched to 0.3.0", unit)
        switched = time.monotonic()
        rolled = _wait(
            lambda: any(r.from_version == "0.3.0" for r in layout.rollbacks()),
            90,
            "0.3.0 rolled back",
            unit,
        )
        print(f"0.3.0 switched -> rolled back: {rolled:.1f} s")
        assert time.monotonic() - switched < 60  # its trial (45 s from its start) and restarts
        assert layout.version_at(layout.current) == "0.2.0"
        assert layout.version_at(layout.good) == "0.2.0"
        _wait(kiosk.healthy, 60, "0.2.0 answers again", unit)

        # The centre hears of it: version and rollback in the heartbeat.
        def reported() -> bool:
            with centre.engine.connect() as conn:
                row = conn.execute(
                    select(kiosk_status.c.app_version, kiosk_status.c.report).where(
                        kiosk_status.c.kiosk_id == "k-upd"
                    )
                ).first()
            if row is None or row.app_version != "0.2.0":
                return False
            update = json.loads(row.report).get("update") or {}
            return any(r["from_version"] == "0.3.0" for r in update.get("rollbacks", []))

        _wait(reported, 60, "the heartbeat reports 0.2.0 and the rollback", unit)
        time.sleep(3)  # scans go on after the switch back; none is taken again
        assert "0.3.0" in layout.refused_versions()
    finally:
        scanner.stop()
        unit.stop()
        output.close()
        kiosk.close()
    log = KioskLogView.read(kiosk.instance)
    assert log.verify_ok, log.verify_problems
    scanned = [badges[SITE][i] for i in scanner.answered]
    arrivals = [e for e in log.events if e.kind == "arrival"]
    by_cadre = {e.cadre_id for e in arrivals}
    assert len(arrivals) == len(by_cadre)  # no scan recorded twice
    expected = {f"{SITE}-{i}" for i in scanner.answered}
    assert expected <= by_cadre, sorted(expected - by_cadre)
    assert len(scanned) > 20
    print(f"{len(scanned)} scans answered, {scanner.retries} sent again during restarts")
    print(unit.log.text())
