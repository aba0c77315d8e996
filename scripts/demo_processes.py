"""The demo's child processes: `central serve`, `kiosk run` and a browser, each in its own session
with its output in a log file, waited for until they answer and stopped with their helpers.

Imported by scripts/demo.py, which runs with scripts/ on its import path.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 60.0


class DemoError(Exception):
    """A step failed; the message says which and why."""


def shown_path(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(ROOT))
    return str(path)


def child_env() -> dict[str, str]:
    """This shell's environment without KIOSK_* / CENTRAL_* settings: the demo's own files
    decide, whatever is exported here."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "CENTRAL_"))} | {
        "PYTHONUNBUFFERED": "1"
    }


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the demo itself dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    required: bool = True  # the demo stops when a required child exits by itself

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(f"  | {line}" for line in text.splitlines()[-lines:])

    def stop(self) -> int | None:
        """SIGTERM to its process group (a browser's helpers too), SIGKILL if it lingers."""
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} still running after {STOP_TIMEOUT_S:.0f} s: killing it")
                self._signal_group(signal.SIGKILL)
                self.process.wait()
        # Helpers left in its group (a browser's) go too.
        self._signal_group(signal.SIGKILL)
        return self.process.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


def spawn(name: str, command: Sequence[str], log_path: Path, *, required: bool = True) -> Child:
    """Start `command` in its own session (Ctrl-C reaches only the demo, which then stops the
    children in order), its output in `log_path`."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    return Child(name, process, log_path, required)


def wait_until_ready(child: Child, url: str) -> None:
    """Poll `url` until it answers 200; fail with the child's log when it dies or takes long."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not child.alive():
            raise DemoError(
                f"{child.name} exited with code {child.process.returncode} before it was ready; "
                f"the end of {shown_path(child.log_path)}:\n{child.log_tail()}"
            )
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise DemoError(f"{child.name} did not answer {url} within {READY_TIMEOUT_S:.0f} s")
