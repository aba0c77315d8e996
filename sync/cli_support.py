"""Bits both command lines share: reading settings with a clear failure, printing them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from sync.config import SettingsError, StrictSettings, effective_toml

S = TypeVar("S", bound=StrictSettings)


def load_or_exit(loader: Callable[[Path], S], instance: Path) -> S:
    try:
        return loader(instance)
    except SettingsError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        raise SystemExit(2) from exc


def check_config(loader: Callable[[Path], S], instance: Path) -> None:
    """Print the effective settings as TOML; exit 2 listing every problem when they are invalid."""
    settings = load_or_exit(loader, instance)
    click.echo(f"# instance folder: {instance.resolve()}")
    click.echo(effective_toml(settings), nl=False)
