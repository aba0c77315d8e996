"""Changing kiosk.toml from the kiosk itself (enrolment, settings from the centre, a PIN moved out
of it): one `key = value` line at a time, every other line and comment kept, the file's mode
kept (kiosk/private_files.py), and the result read back before it replaces the file.

Before each rewrite the file as it was is kept as kiosk.toml.prev (same mode), for a start that
finds kiosk.toml torn by a power cut (kiosk.settings.load_at_start). A file that no longer reads
as TOML keeps only its lines that read on their own, and is no copy worth keeping. A key removed
for good (a PIN in clear) is removed from the copy too.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from kiosk.private_files import atomic_write, mode_of
from sync.config import render_toml_value

PREVIOUS_SUFFIX = ".prev"

_KEY_LINE = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=")


class SettingsFileError(Exception):
    pass


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def _reads_alone(line: str) -> bool:
    try:
        tomllib.loads(line)
    except ValueError:
        return False
    return True


def _current(path: Path) -> tuple[str, list[str], bool]:
    """The file's text, its lines worth keeping, and whether it reads as TOML."""
    current = path.read_bytes().decode("utf-8", errors="replace") if path.exists() else ""
    try:
        tomllib.loads(current)
    except ValueError:
        return current, [line for line in current.splitlines() if _reads_alone(line)], False
    return current, current.splitlines(), True


def _write(path: Path, current: str, intact: bool, lines: list[str]) -> dict[str, Any]:
    text = "\n".join(lines) + "\n"
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsFileError(f"{path.name}: the change would not read back ({exc})") from exc
    if current and intact:
        atomic_write(previous_path(path), current.encode("utf-8"), mode_of(path))
    atomic_write(path, text.encode("utf-8"))
    return parsed


def update_toml(path: Path, values: Mapping[str, Any]) -> None:
    """Set top-level `key = value` lines in a flat TOML file, keeping every other line.

    The result is parsed back before it replaces the file, so a value that would not read back
    the same leaves the file untouched.
    """
    current, lines, intact = _current(path)
    pending = dict(values)
    out = []
    for line in lines:
        match = _KEY_LINE.match(line)
        if match and match.group(1) in pending:
            key = match.group(1)
            out.append(f"{key} = {render_toml_value(pending.pop(key))}")
        else:
            out.append(line)
    out.extend(f"{key} = {render_toml_value(value)}" for key, value in pending.items())
    text = "\n".join(out) + "\n"
    parsed = tomllib.loads(text)
    for key, value in values.items():
        if parsed.get(key) != value:
            raise SettingsFileError(f"{path.name}: {key} would not read back as {value!r}")
    _write(path, current, intact, out)


def _without(lines: list[str], keys: Collection[str]) -> tuple[list[str], bool]:
    kept, dropped = [], False
    for line in lines:
        match = _KEY_LINE.match(line)
        if match and match.group(1) in keys:
            dropped = True
            continue
        kept.append(line)
    return kept, dropped


def remove_keys(path: Path, keys: Collection[str]) -> bool:
    """Drop the `key = ...` lines of `keys`, from the file and from its copy; True when any was
    dropped. A file that no longer reads as TOML is left as it is, for the lead's readiness to
    show (rewriting it would hide the damage): its keys go at the first start after its repair.
    """
    dropped_any = False
    previous = previous_path(path)
    if previous.exists():
        lines = previous.read_bytes().decode("utf-8", errors="replace").splitlines()
        kept, dropped = _without(lines, keys)
        if dropped:
            atomic_write(previous, ("\n".join(kept) + "\n").encode("utf-8"))
            dropped_any = True
    current, lines, intact = _current(path)
    kept, dropped = _without(lines, keys)
    if dropped and intact:
        # The copy is made without them too: a removed secret stays removed.
        _write(path, "\n".join(_without(current.splitlines(), keys)[0]) + "\n", intact, kept)
        dropped_any = True
    return dropped_any
