"""How the kiosk asks to be started again on its new version: behind a seam, so tests use a
fake and the Pi uses systemd.

SystemdSupervisor stops the kiosk as SIGTERM does (the log closed, in-flight requests answered)
and exits with RESTART_EXIT; kiosk.service restarts on it (RestartForceExitStatus=75), through
ExecStartPre (the guard), ExecStart (the `current` link) and ExecStartPost (the trial's check).
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Protocol

log = logging.getLogger(__name__)

RESTART_EXIT = 75  # EX_TEMPFAIL: "try again", which is what it asks of systemd


class Supervisor(Protocol):
    def restart(self, reason: str) -> None: ...


class ExitRequest:
    """The exit status `kiosk run` ends with (set before the SIGTERM that stops it)."""

    code = 0


class SystemdSupervisor:
    def restart(self, reason: str) -> None:
        log.warning("restarting for %s", reason)
        ExitRequest.code = RESTART_EXIT
        os.kill(os.getpid(), signal.SIGTERM)
