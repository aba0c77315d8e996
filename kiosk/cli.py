"""The `kiosk` command: everything an installer or a site lead does from a shell on the Pi."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk import settings as kiosk_settings
from sync.cli_support import check_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--instance",
    type=click.Path(file_okay=False, path_type=Path),
    default=kiosk_settings.default_instance,
    envvar=kiosk_settings.INSTANCE_ENV,
    show_default="$STATE_DIRECTORY or ./instance/kiosk",
    help="Instance folder: kiosk.toml, the local log, enrolment.",
)
@click.pass_context
def main(ctx: click.Context, instance: Path) -> None:
    """Cadre check-in kiosk."""
    ctx.obj = instance


@main.command("check-config")
@click.pass_obj
def check_config_command(instance: Path) -> None:
    """Print the effective settings; exit non-zero when any is invalid."""
    check_config(kiosk_settings.load, instance)
