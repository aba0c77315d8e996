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


@main.command("enroll")
@click.argument("url_or_qr")
@click.argument("code", required=False)
@click.option("--force", is_flag=True, help="Enrol again although this kiosk has a token.")
@click.pass_obj
def enroll_command(instance: Path, url_or_qr: str, code: str | None, force: bool) -> None:
    """Enrol with the centre: `kiosk enroll URL CODE`, or the text of the enrolment QR code.

    Stores the kiosk's token (mode 0600), its id and site in kiosk.toml, the roster, public
    keys and revocations. The code works once.
    """
    from kiosk import enrolment
    from sync.client import SyncError
    from sync.protocol import check_central_url, parse_enrolment_qr

    try:
        if code is None:
            url, code = parse_enrolment_qr(url_or_qr)
        else:
            url = check_central_url(url_or_qr)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if enrolment.load_token(instance) and not force:
        raise click.ClickException(
            f"{instance} is enrolled already; --force enrols it again (as a new kiosk if the "
            "code is for another one)"
        )
    try:
        answer = enrolment.enroll(instance, url, code)
    except (SyncError, enrolment.EnrolmentError, OSError) as exc:
        raise click.ClickException(f"enrolment failed: {exc}") from exc
    click.echo(
        f"enrolled as kiosk {answer.kiosk_id} of site {answer.site_id} ({answer.site_name}): "
        f"{len(answer.roster.cadres)} cadres, {len(answer.public_keys.keys)} public keys"
    )
