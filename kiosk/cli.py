"""The `kiosk` command: everything an installer or a site lead does from a shell on the Pi."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from kiosk import settings as kiosk_settings
from sync.cli_support import check_config, load_or_exit
from sync.config import SettingsError


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
    from kiosk.updates.supervisor import ExitRequest

    if ExitRequest.code:
        raise SystemExit(ExitRequest.code)  # systemd starts the kiosk again (a new version)


@main.command("self-test")
def self_test_command() -> None:
    """Scan a made-up badge through this version's scanner, rules and log (a temporary one):
    what the update guard runs before it trusts a new version. Exits 1 when it fails."""
    from kiosk.updates.selftest import self_test

    problem = self_test()
    if problem:
        click.echo(f"self-test failed: {problem}", err=True)
        raise SystemExit(1)
    click.echo("self-test passed: a test badge scanned as an arrival, then as a repeat")


@main.command("update-status")
def update_status_command() -> None:
    """Where this kiosk stands with updates: the version that runs, the last good one, a switch
    on trial, the versions it switched back from (and will not take again)."""
    from kiosk.updates.layout import UpdateLayout

    layout = UpdateLayout.find()
    if layout is None:
        click.echo("not installed in an update layout (scripts/install-pi.sh makes one)")
        return
    click.echo(f"layout:  {layout.root}")
    click.echo(f"current: {layout.version_at(layout.current) or '-'}")
    click.echo(f"good:    {layout.version_at(layout.good) or '-'}")
    trial = layout.trial()
    if trial is not None:
        click.echo(f"trial:   {trial.version} from {trial.previous}, start {trial.starts}")
    for back in layout.rollbacks():
        click.echo(
            f"switched back from {back.from_version} to {back.to_version} "
            f"at {back.at:%Y-%m-%d %H:%M} UTC: {back.reason}"
        )


@main.command("update-guard")
@click.argument("when", type=click.Choice(["pre", "post"]))
@click.option("--port", type=int, default=None, help="The kiosk's port [default: listen_port].")
@click.pass_obj
def update_guard_command(instance: Path, when: str, port: int | None) -> None:
    """Around each start of kiosk.service (ExecStartPre / ExecStartPost): switch back from a
    new version that does not start, or does not answer /healthz and pass `kiosk self-test`
    within a minute. Does nothing when no switch is on trial."""
    import logging
    from datetime import UTC, datetime

    from kiosk.server import probe_http
    from kiosk.updates import guard
    from kiosk.updates.layout import UpdateLayout

    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    layout = UpdateLayout.find()
    if layout is None:
        return  # not installed in an update layout: nothing is ever on trial
    if when == "pre":
        said = guard.before_start(layout, datetime.now(UTC))
        if said:
            click.echo(said)
        return
    settings = load_or_exit(kiosk_settings.load_at_start, instance)
    health = probe_http(settings.listen_host, port or settings.listen_port)
    passed = guard.after_start(
        layout,
        health,
        guard.self_test_of(layout, str(instance)),
        now=lambda: datetime.now(UTC),
    )
    if not passed:
        click.echo("the new version failed its trial: switched back; systemd restarts", err=True)
        raise SystemExit(1)


@main.command("enroll")
@click.argument("url_or_qr")
@click.argument("code", required=False)
@click.option(
    "--centre-key",
    "centre_key",
    default=None,
    help="The centre key's fingerprint (printed with the code); not needed with the QR text.",
)
@click.option("--force", is_flag=True, help="Enrol again although this kiosk has a token.")
@click.pass_obj
def enroll_command(
    instance: Path, url_or_qr: str, code: str | None, centre_key: str | None, force: bool
) -> None:
    """Enrol with the centre: `kiosk enroll URL CODE --centre-key FINGERPRINT`, or the text of
    the enrolment QR code.

    The centre's key must have the fingerprint of the code before the code is sent; the kiosk
    then trusts that key only. Stores the kiosk's token (mode 0600), its id and site in
    kiosk.toml, the roster, public keys and revocations. The code works once.
    """
    from kiosk import enrolment
    from sync.centre_key import parse_fingerprint, shown
    from sync.client import SyncError
    from sync.protocol import check_central_url, parse_enrolment_qr

    try:
        if code is None:
            url, code, fingerprint = parse_enrolment_qr(url_or_qr)
        else:
            url, fingerprint = check_central_url(url_or_qr), None
        if centre_key is not None:
            given = parse_fingerprint(centre_key)
            if fingerprint is not None and given != fingerprint:
                raise ValueError("--centre-key differs from the centre key of the enrolment code")
            fingerprint = given
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if fingerprint is None:
        raise click.ClickException(
            "no centre key given: add --centre-key FINGERPRINT (printed with the code, or "
            "`central centre-key show` at the centre)"
        )
    if enrolment.load_token(instance) and not force:
        raise click.ClickException(
            f"{instance} is enrolled already; --force enrols it again (as a new kiosk if the "
            "code is for another one)"
        )
    try:
        answer = enrolment.enroll(instance, url, code, fingerprint)
    except (SyncError, enrolment.EnrolmentError, OSError) as exc:
        raise click.ClickException(f"enrolment failed: {exc}") from exc
    except SettingsError as exc:
        raise click.ClickException(f"enrolment failed: kiosk.toml: {exc}") from exc
    click.echo(
        f"enrolled as kiosk {answer.kiosk_id} of site {answer.site_id} ({answer.site_name}): "
        f"{len(answer.roster.cadres)} cadres, {len(answer.public_keys.keys)} public keys; "
        f"centre key {shown(fingerprint)} pinned"
    )


@main.command("pin-centre")
@click.argument("fingerprint")
@click.pass_obj
def pin_centre_command(instance: Path, fingerprint: str) -> None:
    """Trust the centre at central_url when its key has FINGERPRINT (`central centre-key show`).

    For a kiosk enrolled before centre keys were pinned, or after the centre's key was replaced.
    """
    from kiosk import enrolment
    from sync.centre_key import parse_fingerprint, shown
    from sync.client import SyncError

    try:
        expected = parse_fingerprint(fingerprint)
        pinned = enrolment.pin_centre(instance, expected)
    except (ValueError, SyncError, enrolment.EnrolmentError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    except SettingsError as exc:
        raise click.ClickException(f"kiosk.toml: {exc}") from exc
    click.echo(f"centre key {shown(pinned)} pinned: the kiosk takes answers signed by it only")


@main.command("verify-log")
@click.option("--live-only", is_flag=True, help="Skip the archived segments (quicker).")
@click.pass_obj
def verify_log_command(instance: Path, live_only: bool) -> None:
    """Check the local log end to end: every record's hash, seqs without gaps or repeats, each
    linked to the one before. Finds what opening the log cannot (a flipped bit that leaves a
    record readable). Exits 1 on any fault. Stop the kiosk first: the log opens in one process
    at a time."""
    from kiosk.app import open_event_log
    from kiosk.store import StoreLocked, verify_log

    settings = load_or_exit(kiosk_settings.load, instance)
    try:
        log = open_event_log(instance, settings)
    except StoreLocked as exc:
        raise click.ClickException(
            f"{exc}: stop the kiosk first (sudo systemctl stop kiosk)"
        ) from exc
    try:
        report = verify_log(log, include_archived=not live_only)
        salvaged = log.recovery
    finally:
        log.close()
    click.echo(f"{report.count} records, last seq {report.last_seq}")
    faults: dict[str, list[Any]] = {
        "records whose hash does not match their fields (seq)": report.bad_hashes,
        "seqs stored twice": report.duplicate_seqs,
        "event ids stored twice": report.duplicate_ids,
        "missing seqs (first, last)": report.gaps,
        "records not linked to the one before (seq)": report.chain_breaks,
    }
    for what, found in faults.items():
        if found:
            shown = ", ".join(str(f) for f in found[:20]) + (" ..." if len(found) > 20 else "")
            click.echo(f"FAULT {what}: {shown}")
    if not salvaged.clean:
        click.echo(f"on opening: {salvaged.summary()}")
    if not report.ok:
        sys.exit(1)
    click.echo("log OK: every record valid and linked")


@main.command("set-pin")
@click.option("--pin-stdin", is_flag=True, help="Read the PIN from the first line of stdin.")
@click.pass_obj
def set_pin_command(instance: Path, pin_stdin: bool) -> None:
    """Set the site lead's PIN (4-12 digits); kept only as a scrypt hash. Every phone logged in
    is logged out, at once (the running kiosk takes the new PIN without a restart)."""
    from kiosk.lead_auth import LeadAuth, PinError, check_pin
    from kiosk.private_files import make_private_dir
    from kiosk.settings_file import remove_keys

    settings = load_or_exit(kiosk_settings.load, instance)
    if pin_stdin:
        pin = sys.stdin.readline().rstrip("\r\n")
    else:
        pin = click.prompt("new PIN", hide_input=True, confirmation_prompt=True)
    try:
        check_pin(pin)
    except PinError as exc:
        raise click.ClickException(str(exc)) from exc
    make_private_dir(instance)
    LeadAuth(instance, settings.lead_session_h).set_pin(pin)
    if remove_keys(instance / kiosk_settings.SETTINGS_FILE, ["lead_pin"]):
        click.echo("removed the PIN in clear (lead_pin) from kiosk.toml")
    click.echo("lead PIN set (kept as a scrypt hash); every lead session has ended")
    if settings.lead_pin and "KIOSK_LEAD_PIN" in os.environ:
        click.echo(
            "warning: KIOSK_LEAD_PIN is set: unset it, or it replaces this PIN at the next start",
            err=True,
        )
