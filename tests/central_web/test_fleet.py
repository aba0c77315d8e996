"""The fleet view: a real kiosk app reports its machine in its heartbeat, through the real agent
and the kiosk API; the kiosks page shows it, sorts and filters by it, and marks old versions,
filling disks, hot and throttled Pis and logs that lost records.

The kiosk's machine is a fake Raspberry Pi (tests/fakes/machine.py): /sys/class/thermal, the
board's model, /etc/os-release and `vcgencmd get_throttled` say what a Pi would.
"""

from __future__ import annotations

import platform
import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kiosk.app import _default_sync_agent, fleet_facts
from kiosk.fleet import (
    HostMachine,
    cpu_temperature,
    fleet_report,
    os_name,
    throttled_bits,
    uptime_seconds,
)
from sync.agent import SyncAgent
from sync.protocol import FleetReport, RecoveryNote
from tests.central_web import seed
from tests.central_web.helpers import NOW
from tests.central_web.kiosk_app import enrolled_kiosk
from tests.fakes.machine import FakeMachine, raspberry_pi
from tests.proofs import badge, write_issuing_key


def test_the_machine_is_read_as_a_pi_says_it() -> None:
    pi = raspberry_pi(temp_c=81.2, throttled=0x50005)
    assert cpu_temperature(pi) == 81.2  # the cpu-thermal zone, not the cooler one before it
    assert throttled_bits(pi.run(("vcgencmd", "get_throttled"))) == 0x50005
    assert os_name(pi.read_text(Path("/etc/os-release"))) == "Debian GNU/Linux 12 (bookworm)"
    assert uptime_seconds("93784.52 180000.11") == 93784
    # Off a Pi: no thermal zone, no vcgencmd, garbage where a number should be.
    bare = FakeMachine(files={"/sys/class/thermal/thermal_zone0/temp": "n/a"})
    assert cpu_temperature(bare) is None
    assert throttled_bits(bare.run(("vcgencmd", "get_throttled"))) is None
    assert throttled_bits("error=2 error_msg=...") is None
    assert uptime_seconds("") is None


def test_this_machine_answers_through_the_host_seam(tmp_path: Path) -> None:
    machine = HostMachine()
    (tmp_path / "a").write_bytes(b"x" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 24)
    assert machine.tree_bytes(tmp_path) == 1024
    usage = machine.disk_usage(tmp_path)
    assert usage is not None and usage[0] >= usage[1] > 0
    assert machine.run(("no-such-command-here",)) is None
    try:
        expected = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        expected = ""
    assert os_name(machine.read_text(Path("/etc/os-release"))) == expected


@pytest.fixture
def centre(app: Flask) -> Flask:
    """The staff pages' app (the one `admin` is logged in to), seeded, with an issuing key."""
    write_issuing_key(Path(app.instance_path) / "issuing_key.pem")  # kiosks get its public key
    seed.seed(app)
    return app


def test_a_hot_throttled_pi_is_marked_on_the_kiosks_page(
    tmp_path: Path, centre: Flask, admin: FlaskClient
) -> None:
    pi = raspberry_pi(temp_c=81.2, throttled=0x50005, disk=(16 * 2**30, 300 * 2**20))
    app, monotonic, kiosk_id, session = enrolled_kiosk(tmp_path, centre, "S01", pi)
    services = app.extensions["kiosk"]
    assert services.handle_payload(badge("C001"), "wedge")["outcome"] == "arrival"
    monotonic[0] += 3725  # the kiosk has been up 1 h 2 min 5 s

    report = fleet_report(fleet_facts(services))
    assert report.cpu_temp_c == 81.2 and report.throttled == 0x50005
    assert report.board == "Raspberry Pi 4 Model B Rev 1.4"
    assert report.os == "Debian GNU/Linux 12 (bookworm)"
    assert report.kiosk_uptime_s == 3725 and report.uptime_s == 93784
    assert report.python == platform.python_version()
    assert report.disk_total_bytes == 16 * 2**30
    assert report.log_bytes is not None and report.log_bytes > 0  # the scan is in it
    assert report.recovery is not None and report.recovery.clean

    # The agent `kiosk run` starts (kiosk.app), run once here rather than on its own thread.
    agent = _default_sync_agent(services, session=session)
    assert isinstance(agent, SyncAgent)
    assert agent.run_cycle(), agent.snapshot().last_error

    page = admin.get("/staff/kiosks").get_data(as_text=True)
    row = _row(page, kiosk_id)
    assert "81.2 °C" in row and "0x50005" in row and "Raspberry Pi 4 Model B" in row
    assert 'data-mark="hot"' in row and 'data-mark="throttled"' in row
    assert 'data-mark="disk_low"' in row  # 300 MB free of 16 GB
    assert "300 MB" in row

    hot = admin.get("/staff/kiosks?mark=hot").get_data(as_text=True)
    assert kiosk_id in hot and len(re.findall(r'<tr data-kiosk="', hot)) == 1


def test_sorted_and_filtered_by_the_fleet_fields(
    tmp_path: Path, centre: Flask, admin: FlaskClient
) -> None:
    engine = centre.extensions["central"].engine
    fleet = {
        "cool": FleetReport(cpu_temp_c=48.0, throttled=0, log_bytes=10 * 2**20),
        "warm": FleetReport(cpu_temp_c=66.5, throttled=0x50000, log_bytes=900 * 2**20),
        "lost": FleetReport(
            cpu_temp_c=55.0,
            recovery=RecoveryNote(clean=False, lost=True, summary="dropped seq 41-42"),
        ),
    }
    versions = {"cool": "1.9.0", "warm": "1.10.0", "lost": "1.10.0"}
    ids = {}
    for name, report in fleet.items():
        kiosk = seed.enrol(engine, "S01", NOW - timedelta(days=1))
        ids[name] = kiosk.identity.kiosk_id
        seed.heartbeat(
            engine,
            kiosk,
            NOW - timedelta(seconds=20),
            centre,
            fleet=report,
            app_version=versions[name],
        )

    def order(query: str) -> list[str]:
        page = admin.get(f"/staff/kiosks?{query}").get_data(as_text=True)
        shown = re.findall(r'<tr data-kiosk="([^"]+)"', page)
        return [n for i in shown for n, k in ids.items() if k == i]

    assert order("sort=temp&dir=desc") == ["warm", "lost", "cool"]
    assert order("sort=temp&dir=asc") == ["cool", "lost", "warm"]
    assert order("sort=log&dir=desc")[:2] == ["warm", "cool"]  # "lost" said nothing: last
    # 1.9.0 is older than 1.10.0 (numbers, not text): of these, only it is marked old.
    assert order("mark=old_version") == ["cool"]
    assert order("mark=throttled_before") == ["warm"]
    assert order("mark=log_lost") == ["lost"]
    assert sorted(order("version=1.10.0")) == ["lost", "warm"]
    assert order("sort=version&dir=desc")[-1] == "cool"
    page = admin.get("/staff/kiosks?mark=log_lost").get_data(as_text=True)
    assert "dropped seq 41-42" in page


def _row(page: str, kiosk_id: str) -> str:
    start = page.index(f'<tr data-kiosk="{kiosk_id}"')
    return page[start : page.index("</tr>", start)]
