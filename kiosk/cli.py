"""The `kiosk` command: everything an installer or a site lead does from a shell on the Pi."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk import settings as kiosk_settings
from sync.cli_support import check_config, load_or_exit


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


@main.command("decode")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
def decode_command(images: tuple[Path, ...]) -> None:
    """Read the QR codes in image files with the kiosk's own decode pipeline.

    Prints one JSON object per line and file: {"file", "texts", "ms"}, or {"file", "error"} for
    a file that cannot be read as an image; exits 1 at the end when any file could not be read.
    """
    import json
    import time

    from scanner import ImageReadError, decode_frame, read_image

    unreadable = 0
    for path in images:
        try:
            frame = read_image(path)
        except ImageReadError as exc:
            unreadable += 1
            click.echo(json.dumps({"file": str(path), "error": str(exc)}, ensure_ascii=False))
            continue
        started = time.perf_counter()
        texts = decode_frame(frame)
        ms = (time.perf_counter() - started) * 1000.0
        line = {"file": str(path), "texts": texts, "ms": round(ms, 2)}
        click.echo(json.dumps(line, ensure_ascii=False))
    if unreadable:
        raise SystemExit(1)


@main.command("run")
@click.option("--host", default=None, help="Address to listen on [default: listen_host].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: listen_port].")
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING...")
@click.pass_obj
def run_command(instance: Path, host: str | None, port: int | None, log_level: str) -> None:
    """Serve the kiosk screen and the lead page; run the scan loop and the sync agent."""
    import logging

    from kiosk.app import create_app
    from kiosk.server import run_forever
    from kiosk.store import StoreError

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_or_exit(kiosk_settings.load_at_start, instance)
    try:
        app = create_app(instance, settings)
    except StoreError as exc:
        click.echo(f"error: the local log cannot be opened: {exc}", err=True)
        raise SystemExit(1) from exc
    try:
        run_forever(
            app,
            host or settings.listen_host,
            port or settings.listen_port,
            settings.server_threads,
        )
    except OSError as exc:
        click.echo(f"error: cannot serve on port {port or settings.listen_port}: {exc}", err=True)
        raise SystemExit(1) from exc


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
