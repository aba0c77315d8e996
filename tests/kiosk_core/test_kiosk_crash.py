"""SIGKILL a process that appends to the log, 300 times: every confirmed event survives once.

The long version is bench/crash.py (more kills, slow fsync); this is the same trial, CI-sized.
"""

from __future__ import annotations

from bench.crash import run_trial
from kiosk.store import StoreConfig


def test_sigkill_at_random_moments_loses_no_confirmed_event(tmp_path):
    result = run_trial(
        tmp_path / "log",
        300,
        seed=5,
        config=StoreConfig(segment_events=40, checkpoint_events=9),
        max_delay_s=0.004,
        confirm_at_most=15,
    )
    assert result.problems == []
    assert result.kills == 300
    # The kills hit a log that was really working: events confirmed, acknowledged and archived.
    assert result.confirmed > 300
    assert result.acknowledged > 100
    assert result.archived_segments > 0
