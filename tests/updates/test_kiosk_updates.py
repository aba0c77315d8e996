"""The kiosk's side of an update, piece by piece: checks before installing, the guard's trial and
switch back, and when the worker acts (quiet hours, scans, versions it will not take)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.settings import KioskSettings
from kiosk.updates import guard
from kiosk.updates.install import install
from kiosk.updates.layout import Trial, UpdateLayout
from kiosk.updates.worker import Updater, in_busy_hours
from sync.protocol import Rollback
from sync.releases import ReleaseManifest, ReleaseRefused, SignedRelease, sha256_of, sign_release

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
WHEEL = "cadre_kiosk-0.2.0-py3-none-any.whl"


def a_layout(tmp_path: Path) -> UpdateLayout:
    root = tmp_path / "opt"
    for version in ("0.1.0", "0.2.0"):
        (root / "venvs" / version).mkdir(parents=True)
    layout = UpdateLayout(root)
    layout.point(layout.current, layout.venv_of("0.1.0"))
    layout.point(layout.good, layout.venv_of("0.1.0"))
    return layout


def signed_wheel(
    tmp_path: Path, key: Ed25519PrivateKey, body: bytes = b"wheel"
) -> tuple[SignedRelease, Path]:
    wheel = tmp_path / "dl" / WHEEL
    wheel.parent.mkdir(parents=True, exist_ok=True)
    wheel.write_bytes(body)
    manifest = ReleaseManifest(
        version="0.2.0", wheel=WHEEL, size=len(body), sha256=sha256_of(wheel), made_at=NOW
    )
    return sign_release(key, manifest), wheel


def never_run(command):
    raise AssertionError(f"nothing may be run for a refused release: {command}")


def test_bad_signature_or_wrong_hash_is_refused_and_nothing_installed(tmp_path):
    layout = a_layout(tmp_path)
    centre, impostor = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed, wheel = signed_wheel(tmp_path, impostor)
    with pytest.raises(ReleaseRefused, match="not by this kiosk's centre"):
        install(layout, centre.public_key(), signed, wheel, run=never_run)

    signed, wheel = signed_wheel(tmp_path, centre)
    forged = SignedRelease(
        manifest=signed.manifest.model_copy(update={"sha256": "0" * 64}),
        signer=signed.signer,
        signature=signed.signature,
    )
    with pytest.raises(ReleaseRefused, match="signature does not match"):
        install(layout, centre.public_key(), forged, wheel, run=never_run)

    wheel.write_bytes(b"WHEEL")  # same size, other bytes: a changed file
    with pytest.raises(ReleaseRefused, match="sha256"):
        install(layout, centre.public_key(), signed, wheel, run=never_run)
    assert sorted(p.name for p in layout.venvs.iterdir()) == ["0.1.0", "0.2.0"]  # none new
    assert os.readlink(layout.current) == "venvs/0.1.0"


def test_guard_promotes_a_version_that_passes(tmp_path):
    layout = a_layout(tmp_path)
    layout.save_trial(Trial("0.2.0", "0.1.0", NOW))
    layout.point(layout.current, layout.venv_of("0.2.0"))
    assert guard.before_start(layout, NOW) == "trial of 0.2.0: start 1"
    calls = []

    def self_test():
        calls.append(1)
        return True, ""

    assert guard.after_start(layout, lambda: (True, ""), self_test, now=lambda: NOW)
    assert calls == [1]
    assert layout.version_at(layout.good) == "0.2.0" and layout.trial() is None
    assert layout.rollbacks() == []


def test_guard_switches_back_when_health_or_self_test_fails_within_its_minute(tmp_path):
    layout = a_layout(tmp_path)
    layout.save_trial(Trial("0.2.0", "0.1.0", NOW))
    layout.point(layout.current, layout.venv_of("0.2.0"))
    guard.before_start(layout, NOW)
    clock = {"now": NOW}

    def sleep(seconds: float) -> None:
        clock["now"] += timedelta(seconds=seconds)

    passed = guard.after_start(
        layout,
        lambda: (True, ""),
        lambda: (False, "self-test failed: the scanner read []"),
        now=lambda: clock["now"],
        sleep=sleep,
    )
    assert not passed
    assert clock["now"] - NOW == timedelta(seconds=guard.TRIAL_S)  # it kept trying till then
    assert layout.version_at(layout.current) == "0.1.0"
    assert layout.version_at(layout.good) == "0.1.0" and layout.trial() is None
    (back,) = layout.rollbacks()
    assert (back.from_version, back.to_version) == ("0.2.0", "0.1.0")
    assert "scanner" in back.reason
    assert "0.2.0" in layout.refused_versions()


def test_guard_switches_back_from_a_version_that_never_starts(tmp_path):
    layout = a_layout(tmp_path)
    layout.save_trial(Trial("0.2.0", "0.1.0", NOW))
    layout.point(layout.current, layout.venv_of("0.2.0"))
    for start in range(1, guard.MAX_STARTS + 1):
        assert guard.before_start(layout, NOW + timedelta(seconds=start)).endswith(f"start {start}")
    said = guard.before_start(layout, NOW + timedelta(seconds=10))
    assert said.startswith("switched back from 0.2.0")
    assert layout.version_at(layout.current) == "0.1.0"


def test_guard_after_a_power_cut_mid_switch_or_a_torn_trial(tmp_path):
    layout = a_layout(tmp_path)
    layout.save_trial(Trial("0.2.0", "0.1.0", NOW))  # the link never moved
    assert "dropped" in guard.before_start(layout, NOW)
    assert layout.trial() is None and layout.rollbacks() == []

    layout.point(layout.current, layout.venv_of("0.2.0"))
    layout.trial_path.write_text('{"version": "0.2', encoding="utf-8")
    assert "damaged" in guard.before_start(layout, NOW)
    assert layout.version_at(layout.current) == "0.1.0"


class FakeSupervisor:
    def __init__(self) -> None:
        self.restarts: list[str] = []

    def restart(self, reason: str) -> None:
        self.restarts.append(reason)


def an_updater(tmp_path, key, **settings):
    layout = a_layout(tmp_path)
    (layout.venvs / "0.2.0").rmdir()
    signed, wheel = signed_wheel(tmp_path / "src", key)
    supervisor = FakeSupervisor()
    state = {"now": NOW, "last_scan": None, "downloads": 0}
    values = {"update_busy_hours": "04:00-10:00,16:00-21:00", "update_idle_s": 300, **settings}

    def download(release: SignedRelease, into: Path) -> None:
        state["downloads"] += 1
        into.write_bytes(wheel.read_bytes())

    def fake_install(lay, public, release, path):
        from kiosk.updates.install import verified

        verified(public, release, path)
        venv = lay.venv_of(release.manifest.version)
        venv.mkdir(parents=True)
        return venv

    updater = Updater(
        layout,
        "0.1.0",
        settings=lambda: KioskSettings(**values),
        pinned_key=key.public_key,
        download=download,
        supervisor=supervisor,
        now=lambda: state["now"],
        last_scan_at=lambda: state["last_scan"],
        install=fake_install,
    )
    return updater, signed, supervisor, state, layout


def test_worker_waits_for_quiet_then_installs_switches_and_restarts(tmp_path):
    key = Ed25519PrivateKey.generate()
    updater, signed, supervisor, state, layout = an_updater(tmp_path, key)
    assert updater.step() == "idle"  # nothing offered
    updater.offer(signed)
    assert updater.step() == "waiting" and "busy hours" in updater.status.detail  # 20:00 local
    state["now"] = NOW + timedelta(hours=2)  # 22:00
    state["last_scan"] = state["now"] - timedelta(seconds=30)
    assert updater.step() == "waiting" and "scanned" in updater.status.detail
    assert state["downloads"] == 0 and supervisor.restarts == []
    state["last_scan"] = state["now"] - timedelta(minutes=10)
    assert updater.step() == "trial"
    assert supervisor.restarts == ["release 0.2.0"]
    assert layout.version_at(layout.current) == "0.2.0"
    trial = layout.trial()
    assert trial is not None and (trial.version, trial.previous) == ("0.2.0", "0.1.0")
    report = updater.report()
    assert (report.offered, report.state) == ("0.2.0", "trial")


def test_worker_refuses_a_release_from_another_key_once_and_never_switches(tmp_path):
    key = Ed25519PrivateKey.generate()
    updater, _signed, supervisor, state, layout = an_updater(tmp_path, key, update_busy_hours="")
    foreign, _ = signed_wheel(tmp_path / "other", Ed25519PrivateKey.generate())
    updater.offer(foreign)
    assert updater.step() == "refused" and "not by this kiosk's centre" in updater.status.detail
    assert updater.step() == "refused"
    assert state["downloads"] == 1  # not fetched again
    assert supervisor.restarts == [] and layout.version_at(layout.current) == "0.1.0"
    assert not (layout.downloads / WHEEL).exists()  # a refused wheel is not kept


def test_worker_never_takes_again_a_version_it_switched_back_from(tmp_path):
    key = Ed25519PrivateKey.generate()
    updater, signed, supervisor, state, layout = an_updater(tmp_path, key, update_busy_hours="")
    layout.remember_rollback(Rollback(from_version="0.2.0", to_version="0.1.0", at=NOW))
    updater.offer(signed)
    assert updater.step() == "refused" and "before" in updater.status.detail
    assert state["downloads"] == 0 and supervisor.restarts == []
    assert [r.from_version for r in updater.report().rollbacks] == ["0.2.0"]


def test_worker_takes_no_older_version_and_nothing_outside_a_layout(tmp_path):
    key = Ed25519PrivateKey.generate()
    updater, signed, supervisor, _state, _layout = an_updater(tmp_path, key, update_busy_hours="")
    updater.running = "0.3.0"
    updater.offer(signed)
    assert updater.step() == "idle"
    updater.running = "0.1.0"
    updater.layout = None
    assert updater.step() == "refused" and "layout" in updater.status.detail
    assert supervisor.restarts == []


@pytest.mark.parametrize(
    ("hhmm", "ranges", "busy"),
    [
        ("05:00", "04:00-10:00", True),
        ("10:00", "04:00-10:00", False),
        ("23:30", "22:00-02:00", True),
        ("01:59", "22:00-02:00", True),
        ("02:00", "22:00-02:00", False),
        ("12:00", "", False),
    ],
)
def test_busy_hours(hhmm, ranges, busy):
    hour, minute = (int(p) for p in hhmm.split(":"))
    assert in_busy_hours(datetime(2026, 3, 2, hour, minute), ranges) is busy
