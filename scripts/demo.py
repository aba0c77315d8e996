"""`make demo`: the centre and one kiosk on this machine, for real, with the demo camera.

Every step runs the product's own commands (`central ...`, `kiosk ...` from the venv) against a
fresh folder, then serves both until Ctrl-C:

1. a central instance (`central init`), a sample roster of cadres with Chinese names at three
   sites (a GB18030 CSV, as Chinese Excel saves it), a staff admin, badge sheets as PDF;
2. `central serve` on 127.0.0.1:8000;
3. a kiosk enrolled for one site (`central kiosk add`, `kiosk enroll`), with the demo camera fed
   the badges read back from the printed PDF, plus a forged, a foreign and a revoked code;
4. `kiosk run` on 127.0.0.1:8080, and Chromium on the kiosk screen when there is a display.

The console then shows each scan as the kiosk screen does, and how many records the centre holds.
Ctrl-C (or SIGTERM) stops the kiosk, the centre and the browser, and waits for them. The sample
roster and badges come from demo_data.py, the child processes are handled by demo_processes.py.

    .venv/bin/python scripts/demo.py [--central-port 8000] [--kiosk-port 8080]
                                     [--dir instance/demo] [--no-browser] [--exit-after SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from demo_data import CADRES, KIOSK_SITE, SITES, Shown, badges_by_cadre, forge, write_sample_roster
from demo_processes import ROOT, Child, DemoError, child_env, shown_path, spawn, wait_until_ready

HOST = "127.0.0.1"

# Settings that make the story show within a minute; the product's defaults are in parentheses.
REPEAT_WINDOW_S = 20  # (120) a badge seen again later than this is the next arrival/departure
SYNC_INTERVAL_S = 5  # (30) pulls and heartbeats; scans are pushed at once either way
DEMO_SEED = 3  # the demo camera's scene


class Stop(Exception):
    """SIGTERM or SIGHUP: stop like Ctrl-C."""


@dataclass
class Demo:
    folder: Path
    central_port: int
    kiosk_port: int
    bin_dir: Path
    lead_pin: str = field(default_factory=lambda: f"{secrets.randbelow(10**6):06d}")
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(9))
    children: list[Child] = field(default_factory=list)

    @property
    def central_dir(self) -> Path:
        return self.folder / "central"

    @property
    def kiosk_dir(self) -> Path:
        return self.folder / "kiosk"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def central_url(self) -> str:
        return f"http://{HOST}:{self.central_port}/"

    @property
    def kiosk_url(self) -> str:
        return f"http://{HOST}:{self.kiosk_port}/"


# ------------------------------------------------------------------ console


def step(title: str) -> None:
    print(f"\n== {title}")


def run(demo: Demo, program: str, *args: str, stdin: str | None = None) -> str:
    """Run `central` or `kiosk` with the demo's instance folder; echo the command and its
    output; raise DemoError when it fails."""
    instance = demo.central_dir if program == "central" else demo.kiosk_dir
    print(f"$ {program} --instance {shown_path(instance)} {' '.join(args)}")
    result = subprocess.run(
        [str(demo.bin_dir / program), "--instance", str(instance), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    for line in (result.stdout + result.stderr).splitlines():
        print(f"  {line}")
    if result.returncode != 0:
        raise DemoError(f"`{program} {' '.join(args)}` failed with exit code {result.returncode}")
    return result.stdout


# ------------------------------------------------------------------ child processes


def start_child(demo: Demo, name: str, command: Sequence[str], *, required: bool = True) -> Child:
    """A long-running child, its output in logs/<name>.log; stopped by `stop_children`."""
    demo.logs.mkdir(parents=True, exist_ok=True)
    child = spawn(name, command, demo.logs / f"{name}.log", required=required)
    demo.children.append(child)
    return child


def stop_children(demo: Demo) -> None:
    """Browser first (it would only show the kiosk going away), then the kiosk (it closes its
    log cleanly), then the centre."""
    order = {"browser": 0, "kiosk": 1, "central": 2}
    for child in sorted(demo.children, key=lambda c: order.get(c.name, 3)):
        was_running = child.alive()
        code = child.stop()
        if was_running:
            how = f"by {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
            print(f"  stopped {child.name} ({how})")
    demo.children.clear()


# ------------------------------------------------------------------ 1. the centre's data


def check_ports_free(demo: Demo) -> None:
    for port, what in ((demo.central_port, "central"), (demo.kiosk_port, "kiosk")):
        with socket.socket() as probe:
            # As the servers do: a port left in TIME_WAIT is free, a listening one is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((HOST, port))
            except OSError as exc:
                raise DemoError(
                    f"port {port} on {HOST} (for the {what}) is taken: {exc.strerror}. "
                    f"Stop what listens there (another demo?) or pick another port with "
                    f"--{what}-port."
                ) from exc


def make_central_instance(demo: Demo) -> None:
    step(f"1. A fresh central instance in {shown_path(demo.central_dir)}")
    shutil.rmtree(demo.folder, ignore_errors=True)
    demo.folder.mkdir(parents=True)
    run(demo, "central", "init")
    with (demo.central_dir / "central.toml").open("a", encoding="utf-8") as settings:
        settings.write(
            "\n# set by scripts/demo.py\n"
            f"listen_host = {json.dumps(HOST)}\n"
            f"listen_port = {demo.central_port}\n"
            f"public_url = {json.dumps(demo.central_url)}  # what enrolment codes carry\n"
            f"repeat_window_s = {REPEAT_WINDOW_S}.0\n"
        )


def import_roster(demo: Demo) -> None:
    step(f"2. A sample roster: {CADRES} cadres with Chinese names at {len(SITES)} sites")
    roster_file = demo.folder / "sample-roster.csv"
    write_sample_roster(roster_file)
    print(f"wrote {shown_path(roster_file)} (GB18030, as Chinese Excel saves it)")
    run(demo, "central", "roster", "import", str(roster_file))


def add_staff_admin(demo: Demo) -> None:
    step("3. A staff admin for the centre's pages")
    run(
        demo,
        "central",
        "user",
        "add",
        "admin",
        "--role",
        "admin",
        "--password-stdin",
        stdin=demo.admin_password + "\n",
    )
    print(f"  user admin, password {demo.admin_password}")


def print_badges(demo: Demo) -> Path:
    step("4. Badge sheets for every cadre (PDF, A6 badges on A4)")
    sheet = demo.folder / "badges.pdf"
    run(demo, "central", "badges", "print", "--all", "--out", str(sheet))
    return sheet


# ------------------------------------------------------------------ 2. the centre serves


def start_centre(demo: Demo) -> None:
    step(f"5. The centre: central serve on {demo.central_url}")
    command = [str(demo.bin_dir / "central"), "--instance", str(demo.central_dir), "serve"]
    command += ["--host", HOST, "--port", str(demo.central_port)]
    log_path = shown_path(demo.logs / "central.log")
    print(
        f"$ central --instance {shown_path(demo.central_dir)} serve --host {HOST} "
        f"--port {demo.central_port}   (log: {log_path})"
    )
    child = start_child(demo, "central", command)
    wait_until_ready(child, f"{demo.central_url}api/v1/time")
    print("  the centre answers")


# ------------------------------------------------------------------ 3. the kiosk and its camera


def enrol_kiosk(demo: Demo) -> None:
    step(f"6. A kiosk for site {KIOSK_SITE}, enrolled at the centre")
    demo.kiosk_dir.mkdir(parents=True)
    answer = run(demo, "central", "kiosk", "add", "--site", KIOSK_SITE, "--name", "demo kiosk")
    found = re.search(r"kiosk enroll (\S+) (\S+) --centre-key (\S+)", answer)
    if found is None:
        raise DemoError("`central kiosk add` printed no `kiosk enroll URL CODE --centre-key` line")
    url, code, centre_key = found.groups()
    write_kiosk_settings(demo)
    run(demo, "kiosk", "enroll", url, code, "--centre-key", centre_key)
    run(demo, "kiosk", "set-pin", "--pin-stdin", stdin=demo.lead_pin + "\n")
    print(f"  site lead PIN: {demo.lead_pin}")


def write_kiosk_settings(demo: Demo) -> None:
    """Before enrolment, which adds the kiosk's id, site and the centre's URL to the same file."""
    payload_file = demo.folder / "camera-badges.txt"
    settings = {
        "listen_host": HOST,
        "listen_port": demo.kiosk_port,
        # The demo's centre is on this machine's loopback, where nobody else can listen or
        # change what passes: plain http is allowed here, and only here (a real kiosk uses https).
        "sync_plain_http_allowed": True,
        "camera_source": "demo",
        "camera_device": str(payload_file),
        "camera_demo_seed": DEMO_SEED,
        # A photo with each check-in: the demo room then has a person holding the badges.
        "photo_capture": True,
        "repeat_window_s": float(REPEAT_WINDOW_S),
        "sync_interval_s": float(SYNC_INTERVAL_S),
    }
    lines = ["# set by scripts/demo.py"]
    lines += [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in settings.items()]
    (demo.kiosk_dir / "kiosk.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {shown_path(demo.kiosk_dir / 'kiosk.toml')}:")
    for line in lines[1:]:
        print(f"  {line}")


def camera_script(demo: Demo, sheet: Path) -> list[Shown]:
    """What the demo camera shows, in a loop of about 55 s: cadres of the site come, one shows
    a badge twice (a repeat), and after the repeat window they leave; a visitor from another
    site, a forged badge, a foreign QR code and a revoked badge come in between."""
    step("7. The demo camera: badges read back from the printed sheet")
    badges = badges_by_cadre(demo.central_dir / "issuing_key.pem", sheet)
    print(f"  read {len(badges)} badges from {shown_path(sheet)}")
    site = [f"BJ{n:05d}" for n in range(1, CADRES + 1, len(SITES))]
    missing = [cadre for cadre in site if cadre not in badges]
    if missing:
        raise DemoError(f"badges not read back from the sheet: {', '.join(missing)}")
    visitor = "BJ00002"  # of the next site: accepted and flagged "not on this site's roster"
    lost = site[9]
    old_badge = badges[lost]
    run(demo, "central", "badges", "revoke", lost)
    reissued = demo.folder / f"reissued-{lost}.pdf"
    run(demo, "central", "badges", "print", "--cadre", lost, "--out", str(reissued))
    new_badge = badges_by_cadre(demo.central_dir / "issuing_key.pem", reissued)[lost]
    s = [Shown(badges[c], c) for c in site]
    script = [
        s[0], s[1], s[2],
        Shown(forge(badges[site[4]]), f"forged copy of {site[4]}'s badge"),
        Shown(badges[site[0]], f"{site[0]} again: a repeat"),
        s[3],
        s[4],
        Shown(badges[visitor], f"{visitor}, a visitor from another site"),
        s[5],
        Shown(old_badge, f"{lost}'s lost badge, revoked"),
        Shown(badges[site[1]], f"{site[1]} leaves"),
        Shown(new_badge, f"{lost}'s re-issued badge"),
        Shown("https://example.com/not-a-badge", "a foreign QR code"),
        s[6],
        Shown(badges[site[2]], f"{site[2]} leaves"),
        s[7],
    ]  # fmt: skip
    payload_file = demo.folder / "camera-badges.txt"
    payload_file.write_text("".join(f"{shown.payload}\n" for shown in script), encoding="ascii")
    print(f"  wrote {shown_path(payload_file)}: {len(script)} showings, over and over:")
    print("  " + "; ".join(shown.label for shown in script))
    return script


def start_kiosk(demo: Demo) -> None:
    step(f"8. The kiosk: kiosk run on {demo.kiosk_url}")
    command = [str(demo.bin_dir / "kiosk"), "--instance", str(demo.kiosk_dir), "run"]
    command += ["--host", HOST, "--port", str(demo.kiosk_port)]
    print(
        f"$ kiosk --instance {shown_path(demo.kiosk_dir)} run --host {HOST} "
        f"--port {demo.kiosk_port}   (log: {shown_path(demo.logs / 'kiosk.log')})"
    )
    child = start_child(demo, "kiosk", command)
    wait_until_ready(child, f"{demo.kiosk_url}healthz")
    print("  the kiosk answers; its camera is running")


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def open_browser(demo: Demo) -> None:
    """The kiosk screen in Chromium at the official display's 800x480, when there is a
    display to show it on."""
    chromium = find_chromium()
    if chromium is None or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        print("\n(no Chromium or no display: open the kiosk screen yourself)")
        return
    command = [
        chromium,
        f"--app={demo.kiosk_url}",
        "--window-size=800,480",
        f"--user-data-dir={demo.folder / 'chromium-profile'}",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
    ]
    if os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    start_child(demo, "browser", command, required=False)
    print("\nopened the kiosk screen in Chromium")


# ------------------------------------------------------------------ 4. running


def announce(demo: Demo) -> None:
    step("Ready")
    print(f"  kiosk screen   {demo.kiosk_url}")
    print(f"  site lead      {demo.kiosk_url}lead      PIN {demo.lead_pin}")
    print(f"  centre         {demo.central_url}staff/   user admin, password {demo.admin_password}")
    print(
        f"  demo settings  repeat window {REPEAT_WINDOW_S} s at the kiosk and the centre "
        f"(default 120 s), sync every {SYNC_INTERVAL_S} s (default 30 s)"
    )
    print(
        "  trust          the kiosk pinned the centre's key at enrolment and checks every "
        "answer; plain http is allowed only because both run on this machine's loopback "
        "(sync_plain_http_allowed)"
    )
    print(f"  files          {shown_path(demo.folder)} (badges.pdf, logs/, central/, kiosk/)")
    print("Check-ins appear within seconds. Ctrl-C stops everything.\n", flush=True)


def watch_scans(demo: Demo, printer: Callable[[str], None]) -> threading.Thread:
    """Print each scan result as the kiosk screen gets it (its server-sent events)."""

    def follow() -> None:
        request = urllib.request.Request(f"{demo.kiosk_url}stream")
        with (
            contextlib.suppress(OSError, urllib.error.URLError, ValueError),
            urllib.request.urlopen(request, timeout=None) as stream,
        ):
            event = ""
            for raw in stream:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "scan":
                    printer(scan_line(json.loads(line[5:])))

    thread = threading.Thread(target=follow, name="demo-scans", daemon=True)
    thread.start()
    return thread


def scan_line(message: dict[str, object]) -> str:
    """One scan as the screen words it, at the kiosk's own time."""
    parts = [str(message.get(k) or "") for k in ("headline", "name", "detail", "extra")]
    words = " · ".join(p for p in parts if p)
    outcome, who = message.get("outcome") or "?", message.get("cadre_id") or ""
    return f"  {message.get('time', '')}  kiosk: {outcome:<9} {who:<8} {words}"


def centre_count(demo: Demo) -> int | None:
    """Records the centre holds, read from its SQLite file (read-only)."""
    database = demo.central_dir / "central.db"
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)
        ) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return None


def serve_until_stopped(demo: Demo, exit_after: float | None) -> int:
    """Until Ctrl-C, --exit-after, or a child that exits by itself (exit code 1)."""
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    watch_scans(demo, say)
    started = time.monotonic()
    last_count: int | None = None
    noted: set[str] = set()  # optional children (the browser) that closed
    next_count_at = started + 5
    while exit_after is None or time.monotonic() - started < exit_after:
        time.sleep(0.5)
        for child in demo.children:
            if child.alive() or child.name in noted:
                continue
            if child.required:
                say(
                    f"\ndemo: {child.name} exited by itself (code {child.process.returncode}); "
                    f"the end of {shown_path(child.log_path)}:\n{child.log_tail()}"
                )
                return 1
            noted.add(child.name)
            say(f"  ({child.name} closed; see {shown_path(child.log_path)})")
        if time.monotonic() >= next_count_at:
            next_count_at = time.monotonic() + 10
            count = centre_count(demo)
            if count is not None and count != last_count:
                say(f"         centre: {count} records stored (see {demo.central_url}staff/)")
                last_count = count
    say(f"\n--exit-after {exit_after:g} s: stopping")
    return 0


# ------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--central-port", type=int, default=8000)
    parser.add_argument("--kiosk-port", type=int, default=8080)
    parser.add_argument(
        "--dir", type=Path, default=ROOT / "instance" / "demo", help="made afresh on each run"
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open Chromium")
    parser.add_argument(
        "--exit-after", type=float, default=None, metavar="SECONDS", help="stop by itself"
    )
    return parser.parse_args(argv)


def commands_dir() -> Path:
    """The venv's bin folder, where `central` and `kiosk` were installed beside this Python."""
    here = Path(sys.executable).parent
    if (here / "central").exists() and (here / "kiosk").exists():
        return here
    raise DemoError(
        f"no `central` and `kiosk` commands beside {sys.executable}; run `make demo`, which "
        "installs them in .venv"
    )


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
    code = 0
    demo: Demo | None = None
    try:
        demo = Demo(args.dir.resolve(), args.central_port, args.kiosk_port, commands_dir())
        check_ports_free(demo)
        make_central_instance(demo)
        import_roster(demo)
        add_staff_admin(demo)
        sheet = print_badges(demo)
        start_centre(demo)
        enrol_kiosk(demo)
        camera_script(demo, sheet)
        start_kiosk(demo)
        if not args.no_browser:
            open_browser(demo)
        announce(demo)
        code = serve_until_stopped(demo, args.exit_after)
    except DemoError as exc:
        print(f"\ndemo: {exc}", file=sys.stderr)
        code = 1
    except (KeyboardInterrupt, Stop):
        print("\nstopping")
    finally:
        # A second Ctrl-C must not leave children behind half-stopped.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if demo is not None:
            stop_children(demo)
    print("demo stopped" if code == 0 else "demo stopped after an error")
    return code


if __name__ == "__main__":
    sys.exit(main())
