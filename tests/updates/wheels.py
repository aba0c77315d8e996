"""Real wheels of this package with another version (and, for a broken release, a changed file),
built the way a release is: `pip wheel --no-deps` from a copy of the source."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("kiosk", "scanner", "sync", "central")


def build_wheel(work: Path, version: str, change: Callable[[Path], None] | None = None) -> Path:
    """The wheel of this source with `version` (and `change` applied to the copy), in work/."""
    source = work / f"src-{version}"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    shutil.copy2(REPO / "README.md", source / "README.md")
    project = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    project = re.sub(r'(?m)^version = "[^"]*"$', f'version = "{version}"', project, count=1)
    (source / "pyproject.toml").write_text(project, encoding="utf-8")
    if change is not None:
        change(source)
    out = work / "wheels"
    out.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        cwd=work,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shutil.rmtree(source, ignore_errors=True)
    (found,) = out.glob(f"cadre_kiosk-{version}-*.whl")
    return found


def healthz_fails(source: Path) -> None:
    """A kiosk whose /healthz always answers 503 (it starts, serves, scans, but is not well)."""
    screen = source / "kiosk" / "web" / "screen.py"
    text = screen.read_text(encoding="utf-8")
    marker = "    good, problem = services().health()\n"
    assert marker in text
    text = text.replace(marker, marker + '    good, problem = False, "broken on purpose"\n')
    screen.write_text(text, encoding="utf-8")
