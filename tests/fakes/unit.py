"""kiosk.service as systemd runs it, for the update tests: the same three commands around each
start, the same restart rules, real processes.

    ExecStartPre  = <root>/good/bin/kiosk update-guard pre
    ExecStart     = <root>/current/bin/kiosk run          (Type=notify: READY=1 on $NOTIFY_SOCKET)
    ExecStartPost = <root>/good/bin/kiosk update-guard post   (after READY)
    Restart=on-failure, RestartForceExitStatus=75, RestartSec (shorter here)

A failed ExecStartPre or ExecStartPost fails the start: the main process is stopped (SIGTERM)
and the unit restarts. A main process that exits 0 (a stop) is not restarted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

RESTART_EXIT = 75


@dataclass
class UnitLog:
    """What the unit did, in order: (monotonic seconds, what)."""

    lines: list[tuple[float, str]] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.lines.append((time.monotonic(), text))

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


class FakeSystemdUnit:
    def __init__(
        self,
        root: Path,
        instance: Path,
        *,
        restart_s: float = 1.0,
        start_timeout_s: float = 120.0,
        env: Mapping[str, str] | None = None,
        output: IO[bytes] | None = None,
    ) -> None:
        self.root = root
        self.instance = instance
        self.restart_s = restart_s
        self.start_timeout_s = start_timeout_s
        self.env = dict(os.environ, CADRE_UPDATE_ROOT=str(root), **(env or {}))
        self.output = output
        self.log = UnitLog()
        self.main: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket_path = str(instance.parent / f".notify-{os.getpid()}-{id(self)}")
        self._ready = threading.Event()

    # --- the unit ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-systemd", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """`systemctl stop`: SIGTERM to the main process; its exit status."""
        self._stop.set()
        main = self.main
        code = None
        if main is not None and main.poll() is None:
            main.send_signal(signal.SIGTERM)
            try:
                code = main.wait(timeout_s)
            except subprocess.TimeoutExpired:
                main.kill()
                code = main.wait(5)
        if self._thread is not None:
            self._thread.join(timeout_s)
        return code

    def _command(self, link: str, *args: str) -> list[str]:
        return [str(self.root / link / "bin" / "kiosk"), "--instance", str(self.instance), *args]

    def _exec(self, what: str, link: str, *args: str, timeout_s: float) -> bool:
        done = subprocess.run(
            self._command(link, *args),
            env=self.env,
            cwd=self.instance,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
        self.log.say(f"{what} exited {done.returncode}")
        return done.returncode == 0

    def _run(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._socket_path)
            notify.bind(self._socket_path)
            notify.settimeout(0.2)
            try:
                while not self._stop.is_set():
                    code = self._start_once(notify)
                    if self._stop.is_set():
                        break
                    if code == 0:
                        self.log.say("main exited 0: stopped, not restarted")
                        break
                    self.log.say(f"restarting in {self.restart_s} s (status {code})")
                    time.sleep(self.restart_s)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._socket_path)

    def _start_once(self, notify: socket.socket) -> int | None:
        self.starts += 1
        self.log.say(f"start {self.starts}")
        if not self._exec("ExecStartPre", "good", "update-guard", "pre", timeout_s=60):
            return 1
        self._ready.clear()
        env = dict(self.env, NOTIFY_SOCKET=self._socket_path)
        self.main = subprocess.Popen(
            self._command("current", "run", "--log-level", "WARNING"),
            env=env,
            cwd=self.instance,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        self.log.say(f"main {self.main.pid} from {os.readlink(self.root / 'current')}")
        deadline = time.monotonic() + self.start_timeout_s
        while not self._ready.is_set():
            if self.main.poll() is not None:
                self.log.say(f"main exited {self.main.returncode} before READY")
                return self.main.returncode
            if time.monotonic() > deadline or self._stop.is_set():
                self._kill_main()
                return 1
            self._read(notify)
        self.log.say("READY")
        post = threading.Thread(target=self._post, daemon=True)
        post.start()
        while self.main.poll() is None:
            self._read(notify)
        post.join(90)
        code = self.main.returncode
        self.log.say(f"main exited {code}")
        if getattr(self, "_post_failed", False):
            self._post_failed = False
            return 1
        return RESTART_EXIT if code == RESTART_EXIT else code

    def _post(self) -> None:
        if not self._exec("ExecStartPost", "good", "update-guard", "post", timeout_s=90):
            self._post_failed = True
            self._kill_main()

    def _kill_main(self) -> None:
        main = self.main
        if main is not None and main.poll() is None:
            main.send_signal(signal.SIGTERM)
            try:
                main.wait(20)
            except subprocess.TimeoutExpired:
                main.kill()
                main.wait(5)

    def _read(self, notify: socket.socket) -> None:
        try:
            data = notify.recv(4096)
        except TimeoutError:
            return
        for line in data.decode("utf-8", "replace").splitlines():
            if line == "READY=1":
                self._ready.set()

    def status(self) -> dict[str, Any]:
        return {"starts": self.starts, "log": self.log.text()}
