"""Where installed versions live, and the two links that say which one runs.

    <root>/venv             the venv the installer made: the first version, and the base whose
                            site-packages every later venv sees (its dependencies)
    <root>/venvs/<version>  one venv per release installed since, beside the others
    <root>/current          -> the venv systemd starts (ExecStart=<root>/current/bin/kiosk run)
    <root>/good             -> the last version that passed its trial; the guard runs from it
    <root>/trial.json       a switch not yet proven: which version, from which, since when
    <root>/updates.json     what the kiosk remembers: rollbacks, versions it will not take again
    <root>/downloads/       wheels as they arrive, checked before anything installs them
    <root>/constraints.txt  the installer's pins (pi/constraints.txt), held for every release

Links are replaced atomically (a new link beside, then rename over the old): a power cut leaves
either the old target or the new one, never none. The root is $CADRE_UPDATE_ROOT (the unit sets
it), else found from where the running interpreter lives.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk.private_files import atomic_write
from sync.protocol import Rollback

ROOT_ENV = "CADRE_UPDATE_ROOT"
MAX_ROLLBACKS_KEPT = 10
TORN = "?"  # the version of a trial whose record no longer reads
MAX_STARTS_TORN = 99


@dataclass(frozen=True)
class Trial:
    version: str
    previous: str
    switched_at: datetime
    starts: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "previous": self.previous,
            "switched_at": self.switched_at.isoformat(),
            "starts": self.starts,
        }


class UpdateLayout:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def find(
        cls, env: dict[str, str] | None = None, prefix: str | None = None
    ) -> UpdateLayout | None:
        """The layout this kiosk runs from; None when it was not installed into one (a clone
        with a venv of its own: updates then say so rather than install anything)."""
        env = dict(os.environ) if env is None else env
        if env.get(ROOT_ENV):
            return cls(Path(env[ROOT_ENV]))
        venv = Path(prefix or sys.prefix)
        for root in (venv.parent, venv.parent.parent):
            if (root / "current").is_symlink():
                return cls(root)
        return None

    @property
    def base(self) -> Path:
        return self.root / "venv"

    @property
    def venvs(self) -> Path:
        return self.root / "venvs"

    @property
    def constraints(self) -> Path:
        """The pins the installer used (pi/constraints.txt): a release is held to them too."""
        return self.root / "constraints.txt"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def good(self) -> Path:
        return self.root / "good"

    @property
    def trial_path(self) -> Path:
        return self.root / "trial.json"

    @property
    def memory_path(self) -> Path:
        return self.root / "updates.json"

    def venv_of(self, version: str) -> Path:
        return self.venvs / version

    # --- links ------------------------------------------------------------------------------

    def target(self, link: Path) -> Path | None:
        try:
            return (link.parent / os.readlink(link)).resolve()
        except OSError:
            return None

    def version_at(self, link: Path) -> str:
        """The version a link points at: the venv's folder name under venvs/, or the installed
        package's version for the installer's own venv."""
        target = self.target(link)
        if target is None:
            return ""
        if target.parent == self.venvs.resolve():
            return target.name
        return installed_version(target)

    def point(self, link: Path, venv: Path) -> None:
        """Make `link` point at `venv`, atomically (relative, so the root may move)."""
        temp = link.with_name(f".{link.name}.new")
        temp.unlink(missing_ok=True)
        os.symlink(os.path.relpath(venv, link.parent), temp)
        os.replace(temp, link)
        _sync_dir(link.parent)

    # --- the trial --------------------------------------------------------------------------

    def trial(self) -> Trial | None:
        try:
            data = json.loads(self.trial_path.read_text(encoding="utf-8"))
            return Trial(
                version=str(data["version"]),
                previous=str(data["previous"]),
                switched_at=datetime.fromisoformat(data["switched_at"]),
                starts=int(data.get("starts", 0)),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # A torn trial file: treat it as a trial that failed, so the guard switches back.
            return Trial(TORN, TORN, datetime.fromtimestamp(0, UTC), starts=MAX_STARTS_TORN)

    def save_trial(self, trial: Trial) -> None:
        atomic_write(self.trial_path, json.dumps(trial.as_json()).encode("utf-8"), mode=0o600)

    def end_trial(self) -> None:
        self.trial_path.unlink(missing_ok=True)
        _sync_dir(self.root)

    # --- what the kiosk remembers -----------------------------------------------------------

    def memory(self) -> dict[str, Any]:
        try:
            data = json.loads(self.memory_path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}

    def rollbacks(self) -> list[Rollback]:
        found = []
        for item in self.memory().get("rollbacks", []):
            try:
                found.append(Rollback.model_validate(item))
            except ValueError:
                continue
        return found[-MAX_ROLLBACKS_KEPT:]

    def refused_versions(self) -> set[str]:
        """Versions this kiosk switched back from: it never installs them again (the centre's
        offer stays until staff halt it; the kiosk must not try it over and over)."""
        return {r.from_version for r in self.rollbacks()} | set(self.memory().get("refused", []))

    def remember_rollback(self, rollback: Rollback) -> None:
        memory = self.memory()
        kept = [r.model_dump(mode="json") for r in self.rollbacks()] + [
            rollback.model_dump(mode="json")
        ]
        memory["rollbacks"] = kept[-MAX_ROLLBACKS_KEPT:]
        refused = set(memory.get("refused", [])) | {rollback.from_version}
        memory["refused"] = sorted(refused)
        atomic_write(self.memory_path, json.dumps(memory, indent=1).encode("utf-8"), mode=0o600)


def installed_version(venv: Path) -> str:
    """The kiosk package's version installed in `venv`, from its dist-info folder name."""
    for info in sorted(venv.glob("lib/python3*/site-packages/cadre_kiosk-*.dist-info")):
        return info.name[len("cadre_kiosk-") : -len(".dist-info")]
    return ""


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
