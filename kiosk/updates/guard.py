"""The trial of a new version, and the switch back when it fails: `kiosk update-guard`.

kiosk.service runs the guard from the `good` venv (the last version that passed), around every
start of the `current` one:

    ExecStartPre=<root>/good/bin/kiosk update-guard pre
        a switch whose version has already been started `MAX_STARTS` times without passing, or
        whose minute is over, goes back to `good` before systemd starts anything
    ExecStartPost=<root>/good/bin/kiosk update-guard post
        after the new version said READY: it must answer /healthz and pass `kiosk self-test`
        (run from its own venv) before its minute is over; it then becomes `good`. Otherwise
        `current` goes back to `good` and the guard fails, so systemd stops the new version and
        starts the old one (Restart=on-failure)

The guard is the old version's code on purpose: a new version that cannot start, or whose own
checks are broken, cannot vouch for itself. Without a trial both steps return at once.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from kiosk.updates.layout import TORN, Trial, UpdateLayout
from sync.protocol import Rollback

log = logging.getLogger(__name__)

TRIAL_S = 45.0  # from the first start of the new version to a passed check, or it goes back
MAX_STARTS = 3  # starts of a new version that never passed before it goes back
SELF_TEST_TIMEOUT_S = 40.0

Probe = Callable[[], tuple[bool, str]]


def roll_back(layout: UpdateLayout, trial: Trial, reason: str, now: datetime) -> Rollback:
    """`current` back to `good`; remembered, so this version is not taken again."""
    good = layout.target(layout.good)
    if good is None:
        raise RuntimeError(f"{layout.good} points nowhere: no version to go back to")
    layout.point(layout.current, good)
    rollback = Rollback(
        from_version=trial.version,
        to_version=layout.version_at(layout.good),
        at=now,
        reason=reason[:300],
    )
    layout.remember_rollback(rollback)
    layout.end_trial()
    log.error("switched back from %s to %s: %s", trial.version, rollback.to_version, reason)
    return rollback


def before_start(layout: UpdateLayout, now: datetime) -> str:
    """ExecStartPre: what it did, in words ("" when there is no trial)."""
    trial = layout.trial()
    if trial is None:
        return ""
    if trial.version == TORN:
        if layout.target(layout.current) != layout.target(layout.good):
            torn = Trial(layout.version_at(layout.current), "", now)
            roll_back(layout, torn, "its trial record was damaged", now)
            return f"switched back from {torn.version}: its trial record was damaged"
        layout.end_trial()
        return "damaged trial record dropped: current is the good version"
    if layout.version_at(layout.current) != trial.version:
        layout.end_trial()  # the switch itself never happened (a power cut between the two)
        return f"trial of {trial.version} dropped: current runs {layout.version_at(layout.current)}"
    if trial.starts >= MAX_STARTS:
        reason = f"did not pass its checks in {trial.starts} starts"
        roll_back(layout, trial, reason, now)
        return f"switched back from {trial.version}: {reason}"
    if now - trial.switched_at > timedelta(seconds=TRIAL_S):
        reason = f"did not pass its checks within {TRIAL_S:.0f} s"
        roll_back(layout, trial, reason, now)
        return f"switched back from {trial.version}: {reason}"
    # The minute counts from the first start of the new version, not from the switch: the old
    # one's stop (up to TimeoutStopSec) is not the new one's fault.
    since = now if trial.starts == 0 else trial.switched_at
    layout.save_trial(Trial(trial.version, trial.previous, since, starts=trial.starts + 1))
    return f"trial of {trial.version}: start {trial.starts + 1}"


def after_start(
    layout: UpdateLayout,
    health: Probe,
    self_test: Probe,
    *,
    now: Callable[[], datetime],
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """ExecStartPost: True when there is no trial or it passed (the version becomes `good`),
    False after switching back."""
    trial = layout.trial()
    if trial is None:
        return True
    deadline = trial.switched_at + timedelta(seconds=TRIAL_S)
    problem = "not checked"
    tested = False
    while True:
        good, problem = health()
        if good and not tested:
            good, problem = self_test()
            tested = good
        if good:
            target = layout.target(layout.current)
            assert target is not None
            layout.point(layout.good, target)
            layout.end_trial()
            log.info("version %s passed its trial", trial.version)
            return True
        if now() >= deadline:
            roll_back(layout, trial, problem, now())
            return False
        sleep(1.0)


def self_test_of(layout: UpdateLayout, instance: str) -> Probe:
    """Runs `kiosk self-test` of the `current` venv (the new version's own code)."""

    def check() -> tuple[bool, str]:
        command = [str(layout.current / "bin" / "kiosk"), "--instance", instance, "self-test"]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=SELF_TEST_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"self-test did not run: {exc}"
        if done.returncode != 0:
            said = (done.stdout + done.stderr).strip().splitlines()
            return False, f"self-test failed: {' / '.join(said[-2:])[:250]}"
        return True, ""

    return check
