"""Installing a verified release into a venv of its own, beside the running one.

Offline by design: a kiosk at a gate has no PyPI. The new venv is made with
--system-site-packages (apt's picamera2 and numpy, as the installer's) and a .pth line that puts
the base venv's site-packages after its own, so it sees the dependencies the installer put
there; pip then installs the one wheel with --no-index and the pinned constraints and finds every
requirement already satisfied. A release that needs a dependency the kiosk lacks fails here, with
pip's words, and nothing is switched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.updates.layout import UpdateLayout
from sync.releases import ReleaseManifest, SignedRelease, check_wheel, verify_release

BASE_PTH = "_cadre_base.pth"
MARKER = ".cadre-release.json"
PIP_TIMEOUT_S = 600

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class InstallFailed(RuntimeError):
    """The release was good but could not be installed here; str() says why."""


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
    )


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise InstallFailed(f"{venv} has no lib/python3*/site-packages")
    return found[0]


def base_site_packages(layout: UpdateLayout) -> Path:
    """Where the dependencies live: the installer's venv (or, run from elsewhere, this one)."""
    if layout.base.exists():
        return site_packages(layout.base.resolve())
    return Path(sysconfig.get_paths()["purelib"])


def verified(key: Ed25519PublicKey, signed: SignedRelease, wheel: Path) -> ReleaseManifest:
    """ReleaseRefused unless the pinned key signed the manifest and `wheel` is its file."""
    manifest = verify_release(key, signed)
    check_wheel(manifest, wheel)
    return manifest


def install(
    layout: UpdateLayout,
    key: Ed25519PublicKey,
    signed: SignedRelease,
    wheel: Path,
    *,
    constraints: Path | None = None,
    python: str = sys.executable,
    run: Runner = _run,
) -> Path:
    """The venv of the release, made and checked; raises ReleaseRefused (a bad signature or
    hash: nothing is made) or InstallFailed (nothing is left)."""
    manifest = verified(key, signed, wheel)
    if constraints is None:
        constraints = layout.constraints
    venv = layout.venv_of(manifest.version)
    if (venv / MARKER).is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)  # a half-made one from an interrupted try
    layout.venvs.mkdir(parents=True, exist_ok=True)
    try:
        _make(layout, manifest, wheel, venv, constraints, python, run)
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    (venv / MARKER).write_text(signed.model_dump_json(), encoding="utf-8")
    return venv


def _make(
    layout: UpdateLayout,
    manifest: ReleaseManifest,
    wheel: Path,
    venv: Path,
    constraints: Path | None,
    python: str,
    run: Runner,
) -> None:
    _step(run, [python, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], "venv")
    base = base_site_packages(layout)
    (site_packages(venv) / BASE_PTH).write_text(f"{base}\n", encoding="utf-8")
    pip = [python, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    pip += ["--no-index", "--find-links", str(wheel.parent), "--no-input"]
    pip += ["--disable-pip-version-check", "--no-warn-script-location"]
    if constraints is not None and constraints.is_file():
        pip += ["-c", str(constraints)]
    _step(run, [*pip, str(wheel)], "pip install")
    check = (
        "import importlib.metadata as m, kiosk.app, scanner, sync.releases;"
        "print(m.version('cadre-kiosk'))"
    )
    # -I: not from the current folder (a clone there would answer for the venv).
    done = _step(run, [str(venv / "bin" / "python"), "-I", "-c", check], "import check")
    got = done.stdout.strip().splitlines()[-1:] or [""]
    if got[0] != manifest.version:
        raise InstallFailed(
            f"release {manifest.version}: the new venv says it runs {got[0] or 'nothing'}"
        )


def _step(run: Runner, command: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        done = run(command)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallFailed(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout or "").strip().splitlines()
        raise InstallFailed(f"{what} failed: {' / '.join(said[-3:])[:300]}")
    return done


def release_of(venv: Path) -> dict[str, object]:
    try:
        data = json.loads((venv / MARKER).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}
