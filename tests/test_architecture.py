"""DESIGN.md's import rules are enforced by import-linter's contracts in pyproject.toml.

`make test` runs `lint-imports` on the tree as it is; these tests show that the contracts are not
toothless: each forbidden arrow, added to a copy of the code, breaks a contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kiosk", "scanner", "sync", "central")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("sync/events.py", "import kiosk", "kiosk and central sit above scanner and sync"),
        ("sync/events.py", "import central", "kiosk and central sit above scanner and sync"),
        ("scanner/repeat.py", "import sync", "scanner and sync never import each other"),
        ("central/keys.py", "import kiosk", "kiosk and central never import each other"),
        ("kiosk/clock.py", "import central", "kiosk and central never import each other"),
        ("central/keys.py", "import scanner", "the centre never imports the scanner"),
        ("scanner/repeat.py", "import scanner.loop", "no import cycle inside any package"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tree: Path, module: str, line: str, contract: str
) -> None:
    target = tree / module
    original = target.read_text(encoding="utf-8")
    target.write_text(original + f"\n{line}  # added by the test\n", encoding="utf-8")
    try:
        result = lint(tree)
    finally:
        target.write_text(original, encoding="utf-8")
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout
