"""The `central` command: set-up and administration of the central server."""

from __future__ import annotations

from pathlib import Path

import click

from central import keys
from central import settings as central_settings
from sync.cli_support import check_config, load_or_exit
from sync.config import effective_toml


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--instance",
    type=click.Path(file_okay=False, path_type=Path),
    default=central_settings.default_instance,
    envvar=central_settings.INSTANCE_ENV,
    show_default="./instance/central",
    help="Instance folder: central.toml, the database, the issuing key.",
)
@click.pass_context
def main(ctx: click.Context, instance: Path) -> None:
    """Cadre check-in: central server."""
    ctx.obj = instance


@main.command("check-config")
@click.pass_obj
def check_config_command(instance: Path) -> None:
    """Print the effective settings; exit non-zero when any is invalid."""
    check_config(central_settings.load, instance)


@main.command("init")
@click.pass_obj
def init_command(instance: Path) -> None:
    """Create the instance folder: settings, database and issuing key. Never overwrites a key."""
    instance.mkdir(parents=True, exist_ok=True)
    settings_file = instance / central_settings.SETTINGS_FILE
    if not settings_file.exists():
        defaults = central_settings.CentralSettings()
        commented = "".join(
            line if line.startswith("#") else f"# {line}"
            for line in effective_toml(defaults).splitlines(keepends=True)
        )
        settings_file.write_text(commented, encoding="utf-8")
        click.echo(f"wrote {settings_file}")
    settings = load_or_exit(central_settings.load, instance)
    key_path = settings.issuing_key_path(instance)
    if keys.create_issuing_key(key_path):
        click.echo(f"wrote issuing key {key_path} (mode 0600): back it up, keep it secret")
    else:
        click.echo(f"kept existing issuing key {key_path}")
