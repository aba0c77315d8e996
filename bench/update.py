"""What taking a release costs a kiosk, step by step, on this machine.

Builds a wheel of this checkout with another version (`pip wheel --no-deps`, as a release is
made), then times what the kiosk does with it (kiosk/updates): checking the signature and
sha256, making the venv beside the running one with pip offline (venv, pip, the import check),
and the guard's `kiosk self-test` of the new venv. Baseline in the same run: `kiosk self-test`
of the running venv (the same check without an update) and `kiosk --help` (starting Python and
the CLI, which every guard step pays). Each step is run --runs times into a fresh layout; prints
median and max in seconds. The restart itself (stop, start, READY) is what `kiosk run` costs at
any start; tests/e2e/test_updates.py prints the whole switch as seen from outside.

    .venv/bin/python bench/update.py            # 3 runs
    .venv/bin/python bench/update.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.updates.install import install, verified
from kiosk.updates.layout import UpdateLayout
from sync.releases import ReleaseManifest, sha256_of, sign_release
from tests.updates.wheels import build_wheel

VERSION = "99.0.0"


def timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-update-"))
    built = time.perf_counter()
    wheel = build_wheel(work, VERSION)
    print(
        f"wheel built (pip wheel --no-deps, once): {time.perf_counter() - built:.1f} s, "
        f"{wheel.stat().st_size / 1024:.0f} KiB"
    )
    key = Ed25519PrivateKey.generate()
    manifest = ReleaseManifest(
        version=VERSION,
        wheel=wheel.name,
        size=wheel.stat().st_size,
        sha256=sha256_of(wheel),
        made_at=datetime.now(UTC),
    )
    signed = sign_release(key, manifest)
    kiosk_here = str(Path(sys.prefix) / "bin" / "kiosk")
    figures: dict[str, list[float]] = {}

    def note(name: str, seconds: float) -> None:
        figures.setdefault(name, []).append(seconds)

    for n in range(args.runs):
        root = work / f"opt-{n}"
        root.mkdir()
        (root / "venv").symlink_to(Path(sys.prefix))
        layout = UpdateLayout(root)
        note("baseline: kiosk --help", timed(lambda: run([kiosk_here, "--help"])))
        note("baseline: self-test, running venv", timed(lambda: run([kiosk_here, "self-test"])))
        note("check signature + sha256", timed(lambda: verified(key.public_key(), signed, wheel)))
        started = time.perf_counter()
        venv = install(layout, key.public_key(), signed, wheel)
        note("install: venv + pip offline + import check", time.perf_counter() - started)
        started = time.perf_counter()
        run([str(venv / "bin" / "kiosk"), "self-test"])
        note("guard: self-test, new venv", time.perf_counter() - started)
    width = max(len(name) for name in figures)
    print(f"{'step':<{width}}  median s  max s  (runs: {args.runs})")
    for name, values in figures.items():
        print(f"{name:<{width}}  {statistics.median(values):8.2f}  {max(values):5.2f}")
    print(f"work folder (delete when done): {work}")


if __name__ == "__main__":
    main()
