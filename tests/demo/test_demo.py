"""`make demo` for real: scripts/demo.py started as a process on free ports, as a user would.

One demo runs for the whole module; the tests run in file order and the last one stops it:
1. a camera check-in reaches the kiosk's log, the lead's summary and the centre (its pages,
   logged in, and its database, as the same event);
2. (browser) screenshots of the kiosk screen, the lead page and the centre's all-sites page;
3. the camera's forged badge is refused and logged as a failed scan, never as an event;
4. Ctrl-C stops the demo and every process it started.

CADRE_UPDATE_SCREENSHOTS=1 also copies the screenshots to docs/screenshots/ for the README.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.browser import ARTIFACTS, chromium

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.py"
SCREENSHOTS = ROOT / "docs" / "screenshots"
KIOSK_SITE = "BJ-DC-01"
# Ten commands, each a Python that imports the app; on a loaded 2-core machine over a minute.
START_TIMEOUT_S = 150.0
WAIT_TIMEOUT_S = 40.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_command(central_port: int, kiosk_port: int, folder: Path) -> list[str]:
    return [
        *(sys.executable, str(DEMO), "--no-browser", "--dir", str(folder)),
        *("--central-port", str(central_port), "--kiosk-port", str(kiosk_port)),
    ]


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT_TIMEOUT_S) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (requests.RequestException, sqlite3.Error, KeyError, ValueError) as exc:
            last_error, result = exc, None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the login form"
    return found.group(1)


@dataclass
class RunningDemo:
    process: subprocess.Popen[bytes]
    console_path: Path
    folder: Path
    central_port: int
    kiosk_port: int

    @property
    def console(self) -> str:
        return self.console_path.read_text(encoding="utf-8", errors="replace")

    @property
    def kiosk_url(self) -> str:
        return f"http://127.0.0.1:{self.kiosk_port}"

    @property
    def central_url(self) -> str:
        return f"http://127.0.0.1:{self.central_port}"

    @property
    def lead_pin(self) -> str:
        return re.search(r"PIN (\d+)", self.console).group(1)  # type: ignore[union-attr]

    @property
    def admin_password(self) -> str:
        return re.search(r"user admin, password (\S+)", self.console).group(1)  # type: ignore[union-attr]

    def children(self) -> list[int]:
        """Processes whose parent is the demo (read from /proc)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.process.pid:
                found.append(int(stat.parent.name))
        return found

    def lead_session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Accept-Language"] = "en"  # the log's words, such as its source
        form = session.get(f"{self.kiosk_url}/lead/login", timeout=10)
        answer = session.post(
            f"{self.kiosk_url}/lead/login",
            data={"pin": self.lead_pin, "name": "测试组长", "csrf_token": csrf_of(form.text)},
            timeout=10,
        )
        assert answer.ok and answer.url.endswith("/lead/"), answer.url
        return session

    def staff_session(self) -> requests.Session:
        session = requests.Session()
        form = session.get(f"{self.central_url}/staff/login", timeout=10)
        answer = session.post(
            f"{self.central_url}/staff/login",
            data={
                "username": "admin",
                "password": self.admin_password,
                "csrf_token": csrf_of(form.text),
            },
            timeout=10,
        )
        assert answer.ok and answer.url.endswith("/staff/"), answer.url
        return session


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[RunningDemo]:
    folder = tmp_path_factory.mktemp("demo")
    console_path = folder / "console.txt"
    central_port, kiosk_port = free_port(), free_port()
    with console_path.open("wb") as console:
        process = subprocess.Popen(
            demo_command(central_port, kiosk_port, folder / "instance"),
            stdout=console,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    running = RunningDemo(process, console_path, folder / "instance", central_port, kiosk_port)
    try:
        eventually(
            lambda: "== Ready" in running.console or process.poll() is not None,
            "the demo to start",
            START_TIMEOUT_S,
        )
        assert process.poll() is None, f"the demo exited early:\n{running.console}"
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_console_tells_the_urls_logins_and_demo_settings(demo):
    console = demo.console
    assert f"kiosk screen   {demo.kiosk_url}/" in console
    assert f"site lead      {demo.kiosk_url}/lead" in console
    assert f"centre         {demo.central_url}/staff/   user admin, password" in console
    assert "repeat window 20 s" in console
    assert "wrote 30 badges" in console
    assert (demo.folder / "badges.pdf").stat().st_size > 10_000


def test_a_camera_check_in_reaches_the_kiosk_log_the_lead_and_the_centre(demo):
    lead = demo.lead_session()

    def first_camera_arrival() -> dict[str, Any] | None:
        events = lead.get(f"{demo.kiosk_url}/lead/api/events", timeout=10).json()["events"]
        arrivals = [e for e in events if e["source"] == "camera" and e["kind"] == "arrival"]
        return arrivals[0] if arrivals else None

    arrival = eventually(first_camera_arrival, "a camera arrival in the kiosk's log")

    def lead_counts_it() -> bool:
        summary = lead.get(f"{demo.kiosk_url}/lead/api/summary", timeout=10).json()
        everyone = summary["present"] + summary["departed"] + summary["no_departure"]
        return summary["counts"]["arrived"] >= 1 and arrival["cadre_id"] in {
            p["cadre_id"] for p in everyone
        }

    eventually(lead_counts_it, "the lead's summary to count the arrival")

    database = demo.folder / "central" / "central.db"

    def centre_holds_it() -> bool:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=2)) as conn:
            row = conn.execute(
                "SELECT kind, cadre_id, site_id FROM events WHERE event_id = ?",
                (arrival["event_id"],),
            ).fetchone()
        return row == ("arrival", arrival["cadre_id"], KIOSK_SITE)

    eventually(centre_holds_it, "the same event in the centre's database")

    staff = demo.staff_session()

    def centre_pages_show_it() -> bool:
        chart = staff.get(
            f"{demo.central_url}/staff/sites/{KIOSK_SITE}/arrivals.json", timeout=10
        ).json()
        cadre_page = staff.get(
            f"{demo.central_url}/staff/cadres/{arrival['cadre_id']}", timeout=10
        ).text
        return sum(s["arrivals"] for s in chart["slots"]) >= 1 and arrival["name"] in cadre_page

    eventually(centre_pages_show_it, "the centre's site chart and cadre page to show it")
    assert f"kiosk: arrival   {arrival['cadre_id']}" in demo.console


# ---------------------------------------------------------------- screenshots


@pytest.fixture
def browser():
    yield from chromium()


FRESH_ARRIVAL_WATCH = """() => {
  const result = document.getElementById("result");
  window.freshArrival = false;
  new MutationObserver(() => {
    if (result.dataset.outcome === "arrival") window.freshArrival = true;
  }).observe(result, {attributes: true, childList: true, subtree: true, characterData: true});
}"""


def updating_docs() -> bool:
    return os.environ.get("CADRE_UPDATE_SCREENSHOTS") == "1"


def keep(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if updating_docs():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / path.name)
    return path


def keep_sharpest_preview(screen, name: str, shots: int = 10) -> Path:
    """The preview runs a little behind the result: of a few screenshots taken while the result
    is up, keep the one whose preview is sharpest (the badge held still, not moving away)."""
    import cv2
    import numpy as np

    box = screen.locator("#preview").bounding_box()
    assert box is not None
    best: tuple[float, bytes] | None = None
    for _ in range(shots):
        screen.wait_for_timeout(200)
        png = screen.screenshot()
        grey = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
        x, y, w, h = (int(box[k]) for k in ("x", "y", "width", "height"))
        sharpness = float(cv2.Laplacian(grey[y : y + h, x : x + w], cv2.CV_64F).var())
        if best is None or sharpness > best[0]:
            best = (sharpness, png)
    assert best is not None
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(best[1])
    if updating_docs():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / path.name)
    return path


def site_counts(page) -> dict[str, int]:
    """The kiosk's site row on the all-sites page, column by column."""
    row = page.locator("tr", has_text=KIOSK_SITE).first
    numbers = [int(text) for text in row.locator("td.num").all_inner_texts()]
    # The headers name their figure (data-f), so a column added later cannot shift the others.
    columns = page.locator("th.num[data-f]").evaluate_all("ths => ths.map(th => th.dataset.f)")
    return dict(zip(columns, numbers, strict=True))


@pytest.mark.browser
def test_screenshots_of_the_kiosk_screen_the_lead_page_and_the_centre(demo, browser):
    failures: list[str] = []

    def watch(page) -> None:
        page.on("pageerror", lambda error: failures.append(str(error)))

    screen = browser.new_page(viewport={"width": 800, "height": 480})
    watch(screen)
    screen.goto(f"{demo.kiosk_url}/")
    screen.wait_for_selector("#camera-badge[data-state='ok']", timeout=20_000)
    # A fresh arrival (not one shown before the page was watched), while the badge is still
    # held up in the preview.
    screen.evaluate(FRESH_ARRIVAL_WATCH)
    # A function, not an expression: the page's CSP allows no eval of strings.
    screen.wait_for_function("() => window.freshArrival === true", timeout=30_000)
    assert screen.locator("#result-name").inner_text().strip()
    # The preview has a picture of the demo camera, not a broken image.
    assert screen.evaluate("document.getElementById('preview').naturalWidth") > 0
    keep_sharpest_preview(screen, "demo-kiosk-screen-800x480")

    # Pictures for the README: wait for the first departure, so that every count has a story.
    wanted = "departed" if updating_docs() else "arrived"
    if updating_docs():
        lead_api = demo.lead_session()
        eventually(
            lambda: lead_api.get(f"{demo.kiosk_url}/lead/api/summary", timeout=10).json()["counts"][
                "departed"
            ],
            "a departure at the kiosk",
            timeout=60,
        )

    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="zh-CN", device_scale_factor=2
    )
    lead = phone.new_page()
    watch(lead)
    lead.goto(f"{demo.kiosk_url}/lead/login")
    lead.fill("input[name=pin]", demo.lead_pin)
    lead.fill("input[name=name]", "张组长")
    lead.click("button[type=submit]")
    lead.wait_for_selector("#present")
    assert int(lead.locator(f"#count-{wanted}").inner_text()) >= 1
    keep(lead, "demo-lead-phone")
    # The photos: the demo room's person, in today's grid of arrivals.
    lead.goto(f"{demo.kiosk_url}/lead/photos")
    lead.wait_for_selector(".photo-tile img")
    lead.wait_for_function(
        "() => [...document.querySelectorAll('.photo-tile img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    keep(lead, "demo-lead-photos")

    laptop = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    staff = laptop.new_page()
    watch(staff)
    staff.goto(f"{demo.central_url}/staff/login")
    staff.fill("input[name=username]", "admin")
    staff.fill("input[name=password]", demo.admin_password)
    staff.click("button[type=submit]")
    staff.wait_for_url(f"{demo.central_url}/staff/")

    def centre_counts_them() -> bool:
        staff.reload()
        return site_counts(staff)[wanted] >= 1

    eventually(centre_counts_them, f"the all-sites page to count {wanted} cadres")
    keep(staff, "demo-central-all-sites")

    def centre_has_a_photo() -> bool:
        staff.goto(f"{demo.central_url}/staff/review?site={KIOSK_SITE}")
        return staff.locator(".review-photo img").count() > 0

    # Photos follow their records on their own channel, at the next sync.
    eventually(centre_has_a_photo, "a photo at the centre's review page", timeout=60)
    staff.wait_for_function("() => document.querySelector('.review-photo img').naturalWidth > 0")
    keep(staff, "demo-central-photo-review")
    assert not failures, failures


def test_refused_codes_are_shown_but_not_recorded(demo):
    """The camera's forged, revoked and foreign codes: refusals on the screen's stream, never
    events (they go to the failed-scan log)."""
    lead = demo.lead_session()

    def refusals_logged() -> bool:
        log = demo.folder / "kiosk" / "failed-scans.log"
        return log.exists() and "bad_signature" in log.read_text(encoding="utf-8")

    eventually(refusals_logged, "the forged badge in the failed-scan log")
    events = lead.get(f"{demo.kiosk_url}/lead/api/events", timeout=10).json()["events"]
    assert events, "check-ins were recorded meanwhile"
    assert all(e["kind"] in ("arrival", "departure") for e in events)


# ---------------------------------------------------------------- stopping (keep it last)


def test_ctrl_c_stops_the_demo_and_everything_it_started(demo):
    children = demo.children()
    assert len(children) == 2, f"expected the centre and the kiosk, found {children}"
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(30) == 0, demo.console
    console = demo.console
    assert "stopped kiosk (exit code 0)" in console
    assert "stopped central" in console
    assert "demo stopped" in console
    left = [pid for pid in children if alive(pid)]
    assert not left, f"processes left running: {left}"
    for port in (demo.central_port, demo.kiosk_port):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # free again


def test_a_taken_port_is_refused_with_a_clear_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            demo_command(port, free_port(), tmp_path / "demo"),
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 (for the central) is taken" in result.stderr
    assert "--central-port" in result.stderr
    assert not (tmp_path / "demo").exists(), "nothing is set up before the ports are checked"
