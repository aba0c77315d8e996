"""The `central` command: set-up and administration of the central server."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import Engine, inspect, select

from central import badges, fonts, instance_files, keys, roster, roster_file
from central import settings as central_settings
from central.db import schema
from central.db.engine import create_schema, make_engine
from sync.centre_key import fingerprint, shown
from sync.cli_support import check_config, load_or_exit
from sync.config import effective_toml
from sync.protocol import check_central_url, enrolment_qr_text


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
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings_file = instance / central_settings.SETTINGS_FILE
    if not settings_file.exists():
        defaults = central_settings.CentralSettings()
        commented = "".join(
            line if line.startswith("#") else f"# {line}"
            for line in effective_toml(defaults).splitlines(keepends=True)
        )
        instance_files.write_private(settings_file, commented.encode("utf-8"))
        click.echo(f"wrote {settings_file}")
    settings = load_or_exit(central_settings.load, instance)
    instance_files.make_private(instance, settings)
    key_path = settings.issuing_key_path(instance)
    if keys.create_issuing_key(key_path):
        click.echo(f"wrote issuing key {key_path} (mode 0600): back it up, keep it secret")
    else:
        click.echo(f"kept existing issuing key {key_path}")
    centre_key = settings.centre_key_path(instance)
    made = keys.create_centre_key(centre_key)
    fp = shown(fingerprint(keys.load_centre_key(centre_key).public_key()))
    if made:
        click.echo(f"wrote centre key {centre_key} (mode 0600): back it up, keep it secret")
    else:
        click.echo(f"kept existing centre key {centre_key}")
    click.echo(f"centre key fingerprint (kiosks pin it at enrolment): {fp}")
    engine = make_engine(settings.database_url_for(instance))
    create_schema(engine)
    click.echo(f"database ready: {engine.url.render_as_string(hide_password=True)}")


# --- roster and badges -------------------------------------------------------------------------


def _open_store(instance: Path) -> tuple[central_settings.CentralSettings, Engine]:
    settings = load_or_exit(central_settings.load, instance)
    hint = f"run `central --instance {instance} init` first"
    if not instance.is_dir():
        raise click.ClickException(f"no instance folder {instance}; {hint}")
    instance_files.make_private(instance, settings)
    engine = make_engine(settings.database_url_for(instance))
    if not inspect(engine).has_table(schema.cadres.name):
        raise click.ClickException(f"no roster tables in the database of {instance}; {hint}")
    return settings, engine


@main.group("roster")
def roster_group() -> None:
    """The roster of cadres and sites."""


@roster_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def roster_import_command(instance: Path, file: Path) -> None:
    """Add and update cadres from a CSV (UTF-8 or GB18030) or XLSX file.

    Columns 编号/id and 姓名/name are required; 单位/unit, 站点/site and 站点名称/site_name are
    optional. A file with any bad row changes nothing; every bad row is listed.
    """
    _, engine = _open_store(instance)
    try:
        with click.progressbar(length=1, label="checking", file=sys.stderr) as bar:

            def set_total(rows: int) -> None:
                bar.length = max(rows, 1)

            parsed = roster_file.read_roster_file(file, progress=bar.update, on_total=set_total)
    except roster_file.RosterFileError as exc:
        raise click.ClickException(str(exc)) from exc
    if parsed.ignored_columns:
        click.echo(f"note: ignored columns: {', '.join(parsed.ignored_columns)}", err=True)
    if parsed.skipped_lines:
        lines = ", ".join(str(line) for line in parsed.skipped_lines)
        click.echo(
            f"note: the header is on line {parsed.header_line}; line(s) {lines} above it "
            "were not read",
            err=True,
        )
    try:
        with click.progressbar(length=len(parsed.rows), label="storing", file=sys.stderr) as bar:
            result = roster.import_parsed(engine, parsed, progress=bar.update)
    except roster.RosterRejected as exc:
        click.echo(f"error: {exc}:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        raise SystemExit(1) from exc
    _warn_unprintable(instance, parsed.rows)
    click.echo(
        f"imported {file}: {result.inserted} new, {result.updated} updated, "
        f"{result.unchanged} unchanged cadres; {result.sites_added} new sites; "
        f"roster version {result.version}"
    )


def _warn_unprintable(instance: Path, rows: list[roster_file.RosterRow]) -> None:
    """Name every cadre whose name or unit has characters no badge font can draw."""
    settings = load_or_exit(central_settings.load, instance)
    try:
        font_set, notes = fonts.from_settings(settings)
    except fonts.FontError as exc:
        click.echo(f"note: names not checked against the badge fonts: {exc}", err=True)
        return
    for note in notes:
        click.echo(f"note: {note}", err=True)
    people = ((row.cadre_id, row.name, row.unit or "") for row in rows)
    for row in badges.names_without_glyphs(font_set, people):
        click.echo(
            f"warning: no badge font has {' '.join(row['characters'])} of {row['name']!r} "
            f"({row['cadre_id']}): it would print as {fonts.MISSING_MARK}",
            err=True,
        )


@main.group("badges")
def badges_group() -> None:
    """Print, revoke and check cadres' QR badges."""


@badges_group.command("print")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PDF to write."
)
@click.option("--site", default=None, help="Only the cadres of this site id.")
@click.option("--cadre", "cadre_ids", multiple=True, help="Only this cadre id (repeatable).")
@click.option("--all", "everyone", is_flag=True, help="Every cadre of the roster.")
@click.option(
    "--layout",
    type=click.Choice(list(badges.LAYOUTS)),
    default=None,
    help="Label layout; default: the badge_layout setting.",
)
@click.pass_obj
def badges_print_command(
    instance: Path,
    out: Path,
    site: str | None,
    cadre_ids: tuple[str, ...],
    everyone: bool,
    layout: str | None,
) -> None:
    """Write printable badge sheets, issuing badges to cadres that have none (or a revoked one).

    Choose whom: --site, --cadre (repeatable) or --all. The print is a job like one started from
    the staff pages (listed by `central jobs list`), run here with a progress bar.
    """
    from central.jobs import badge_job

    settings, engine = _open_store(instance)
    chosen = [
        name for name, on in (("--site", site), ("--cadre", cadre_ids), ("--all", everyone)) if on
    ]
    if len(chosen) != 1:
        raise click.UsageError("choose whom to print: one of --site SITE, --cadre ID or --all")
    if site is not None:
        with engine.connect() as conn:
            known = conn.execute(
                select(schema.sites.c.site_id).where(schema.sites.c.site_id == site)
            ).first()
        if known is None:
            raise click.ClickException(f"no site {site!r} in the roster")
    scope = "site" if site else ("ids" if cadre_ids else "all")
    # The issue date printed and signed is the centre's date, whatever the server's zone.
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    params = badge_job.badge_params(
        scope, layout or settings.badge_layout, today, site_id=site, cadre_ids=list(cadre_ids)
    )
    job = _run_job_here(settings, engine, instance, badge_job.KIND, params, "drawing")
    for note in job.summary.get("font_notes") or []:
        click.echo(f"note: {note}", err=True)
    for row in job.summary.get("unprintable") or []:
        click.echo(
            f"warning: no font has {' '.join(row['characters'])} of {row['name']!r} "
            f"({row['cadre_id']}): printed as {fonts.MISSING_MARK}",
            err=True,
        )
    _copy_result(settings, instance, job, out)
    count, pages = job.summary["badges"], job.summary["pages"]
    click.echo(
        f"wrote {count} badge{'s' * (count != 1)} on {pages} "
        f"page{'s' * (pages != 1)} ({job.summary['layout']}) to {out}"
    )


def _run_job_here(
    settings: central_settings.CentralSettings,
    engine: Engine,
    instance: Path,
    kind: str,
    params: dict[str, Any],
    counted_stage: str,
) -> Any:
    """Queue a job, claim it at once and run it in this process with a progress bar on stderr;
    returns the finished job, or exits with its error."""
    from central.jobs import store as job_store
    from central.jobs.kinds import HANDLERS
    from central.jobs.runner import run_claimed

    job, _ = job_store.submit(engine, kind, params, "cli")
    token = job_store.new_worker_token()
    claimed = job_store.claim(engine, token, settings.job_lease_s, job_id=job.job_id)
    if claimed is None:
        raise click.ClickException(f"job {job.job_id} was taken by a worker before this command")
    with click.progressbar(length=1, label=kind, file=sys.stderr, show_pos=True) as bar:
        shown = [0]

        def listen(done: int, total: int | None, stage: str) -> None:
            bar.label = stage
            if stage == counted_stage and total:
                bar.length = total
                bar.update(done - shown[0])
                shown[0] = done

        state = run_claimed(claimed, engine, settings, instance, token, HANDLERS, listener=listen)
    finished = job_store.get(engine, job.job_id)
    assert finished is not None
    if state != "done":
        raise click.ClickException(_job_error_text(finished.error or state))
    return finished


def _job_error_text(error: str) -> str:
    """A job's error code (and detail) as the command line says it, in English."""
    code, _, detail = error.partition(":")
    detail = detail.strip()
    sentences = {
        "unknown_cadre": f"no cadre with id {detail!r} in the roster",
        "nothing_to_print": "no cadres to print; import a roster first",
        "nothing_to_export": "nothing to export for these days and sites",
        "cancelled": "the job was cancelled",
    }
    return sentences.get(code.strip()) or detail or code


def _copy_result(
    settings: central_settings.CentralSettings, instance: Path, job: Any, out: Path
) -> None:
    import shutil

    from central.jobs.runner import result_folder

    source = result_folder(settings, instance) / job.result_file
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    shutil.copyfile(source, partial)
    partial.replace(out)


@badges_group.command("revoke")
@click.argument("cadre_id")
@click.pass_obj
def badges_revoke_command(instance: Path, cadre_id: str) -> None:
    """Revoke every badge of CADRE_ID printed so far; the next print re-issues one."""
    _, engine = _open_store(instance)
    try:
        serial = roster.revoke_badge(engine, cadre_id)
    except (roster.UnknownCadre, roster.NoBadgeIssued) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"revoked badges of {cadre_id} through serial {serial}; "
        f"the next badge printed for {cadre_id} gets serial {serial + 1}"
    )


@badges_group.command("check")
@click.argument("payload")
@click.pass_obj
def badges_check_command(instance: Path, payload: str) -> None:
    """Verify a scanned badge PAYLOAD; print one JSON object; exit 0 when valid, 1 when not."""
    settings, engine = _open_store(instance)
    try:
        keyring = keys.public_keyring(settings.issuing_key_path(instance))
    except keys.KeyFileError as exc:
        raise click.ClickException(str(exc)) from exc
    # A keyboard-wedge scanner or a copy from a terminal adds a line end.
    check, row = badges.check_badge(engine, keyring, payload.strip())
    result = check.as_json()
    result["name"] = row["name"] if row else None
    result["on_roster"] = row is not None if check.cadre_id else None
    click.echo(json.dumps(result, ensure_ascii=False))
    raise SystemExit(0 if check.valid else 1)


# --- staff accounts and exports ------------------------------------------------------------------


@main.group("user")
def user_group() -> None:
    """Central staff accounts for the staff pages."""


@user_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["admin", "viewer"]),
    required=True,
    help="admin: roster, badges, kiosks, corrections; viewer: look and export only.",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.pass_obj
def user_add_command(instance: Path, name: str, role: str, password_stdin: bool) -> None:
    """Add a staff account NAME; asks for its password (twice) unless --password-stdin."""
    from central import users

    _, engine = _open_store(instance)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        user = users.add_user(engine, name, password, role)
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"added {user.role} {user.username}")


@user_group.command("list")
@click.pass_obj
def user_list_command(instance: Path) -> None:
    """List the staff accounts: name, role, active or disabled."""
    from central import users

    _, engine = _open_store(instance)
    for user in users.list_users(engine):
        state = "active" if user.active else "disabled"
        click.echo(f"{user.username}\t{user.role}\t{state}")


@user_group.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(["admin", "viewer"]))
@click.pass_obj
def user_role_command(instance: Path, name: str, role: str) -> None:
    """Give the staff account NAME another role (the last admin keeps it)."""
    from central import users

    _, engine = _open_store(instance)
    try:
        users.set_role(engine, name, role)
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name} is now {role}")


@user_group.command("passwd")
@click.argument("name")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.pass_obj
def user_passwd_command(instance: Path, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME; every session of NAME ends at once."""
    from central import users

    _, engine = _open_store(instance)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("new password", hide_input=True, confirmation_prompt=True)
    try:
        ended = users.set_password(engine, name, password)
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"password of {name} changed; {ended} open session(s) ended")


@user_group.command("disable")
@click.argument("name")
@click.pass_obj
def user_disable_command(instance: Path, name: str) -> None:
    """Disable NAME: no more logins, and every session of NAME ends at once."""
    from central import users

    _, engine = _open_store(instance)
    try:
        ended = users.set_active(engine, name, False)
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name} disabled; {ended} open session(s) ended")


@user_group.command("enable")
@click.argument("name")
@click.pass_obj
def user_enable_command(instance: Path, name: str) -> None:
    """Let NAME log in again."""
    from central import users

    _, engine = _open_store(instance)
    try:
        users.set_active(engine, name, True)
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name} enabled")


@user_group.command("logout")
@click.argument("name")
@click.pass_obj
def user_logout_command(instance: Path, name: str) -> None:
    """End every session of NAME at once (a lost phone, a shared computer)."""
    from central import users

    _, engine = _open_store(instance)
    try:
        ended = users.end_sessions(engine, name)
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{ended} open session(s) of {name} ended")


@main.command("export")
@click.option(
    "--from", "first", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First service day."
)
@click.option(
    "--to", "last", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last service day."
)
@click.option("--site", "sites", multiple=True, help="A site to include (repeat it); none: all.")
@click.option(
    "--what",
    type=click.Choice(["stays", "events", "attendance"]),
    default="stays",
    show_default=True,
    help="attendance: who came and who is absent (XLSX adds counts per site, unit and district "
    "and the arrival curve).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["xlsx", "csv"]),
    default=None,
    help="Default: from the suffix of --out.",
)
@click.option(
    "--language",
    type=click.Choice(["zh-CN", "en"]),
    default=None,
    help="Language of the headers and cells; default: the language setting.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_obj
def export_command(
    instance: Path,
    first: Any,
    last: Any,
    sites: tuple[str, ...],
    what: str,
    fmt: str | None,
    language: str | None,
    out: Path,
) -> None:
    """Write the stays, every record, or the attendance of service days --from..--to as XLSX or
    CSV. Runs as a job (listed by `central jobs list`), here, with a progress bar."""
    from central import exports
    from central.jobs import export_job
    from sync import tabular

    settings, engine = _open_store(instance)
    request = exports.ExportRequest(first.date(), last.date(), sites, what)  # type: ignore[arg-type]
    try:
        chosen = fmt or tabular.format_for(out)
        missing = exports.unknown_sites(engine, sites)
        if missing:
            raise exports.ExportError(f"unknown site(s): {', '.join(missing)}")
        request.check()
    except (ValueError, exports.ExportError) as exc:
        raise click.ClickException(str(exc)) from exc
    params = export_job.export_params(request, chosen, language or settings.language)
    job = _run_job_here(settings, engine, instance, export_job.KIND, params, "exporting")
    _copy_result(settings, instance, job, out)
    click.echo(f"wrote {job.summary['rows']} rows to {out}")


# --- background jobs -----------------------------------------------------------------------------


@main.group("jobs")
def jobs_group() -> None:
    """Background jobs (badge sheets, large exports) started from the pages or this command."""


@jobs_group.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
@click.pass_obj
def jobs_list_command(instance: Path, limit: int) -> None:
    """The newest jobs: id, kind, state, progress, who started it, result."""
    from central.jobs import store as job_store

    _, engine = _open_store(instance)
    for job in job_store.recent(engine, limit=limit):
        progress = f"{job.done}/{job.total}" if job.total else "-"
        result = job.result_name if job.downloadable else (job.error or "")
        click.echo(
            f"{job.job_id}\t{job.kind}\t{job.state}\t{progress}\t{job.started_by}\t"
            f"{job.created_at:%Y-%m-%d %H:%M} UTC\t{result}"
        )


@jobs_group.command("work")
@click.option("--once", is_flag=True, help="Run the jobs queued now, then exit.")
@click.pass_obj
def jobs_work_command(instance: Path, once: bool) -> None:
    """Run queued jobs until stopped (Ctrl-C), as `central serve` does unless run_job_worker is
    false. Any number of these may run, on any machine that sees the database and jobs_folder."""
    import signal
    import threading

    from central.jobs.worker import JobWorker

    settings, engine = _open_store(instance)
    worker = JobWorker(engine, settings, instance)
    if once:
        ran = worker.drain()
        click.echo(f"ran {ran} job{'s' * (ran != 1)}")
        return
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    worker.start()
    click.echo(f"job worker {worker.token} waiting for jobs (Ctrl-C stops it)")
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    worker.stop(timeout=5)


# --- kiosks and the server ---------------------------------------------------------------------


def _centre_url(settings: central_settings.CentralSettings) -> str:
    """Where kiosks reach the centre. Never guessed from a listening address or a request: a
    kiosk pins what its code says, so a wrong address would be trusted for good."""
    url = settings.public_url.strip()
    if not url:
        raise click.ClickException(
            "set public_url in central.toml to the address kiosks reach the centre at "
            "(https://... behind TLS) before making an enrolment code"
        )
    try:
        return check_central_url(url)
    except ValueError as exc:
        raise click.ClickException(f"public_url: {exc}") from exc


def _show_enrolment_code(
    instance: Path,
    settings: central_settings.CentralSettings,
    new: Any,
    qr_out: Path | None,
    write_qr: bool,
) -> None:
    import qrcode

    url = _centre_url(settings)
    centre_key = keys.load_centre_key(settings.centre_key_path(instance))
    fp = fingerprint(centre_key.public_key())
    zone = ZoneInfo(settings.timezone)
    expires = new.expires_at.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
    qr_text = enrolment_qr_text(new.code, fp, url)
    click.echo(f"kiosk {new.kiosk_id} of site {new.site_id}")
    click.echo(f"one-time code: {new.code}  (valid until {expires:%Y-%m-%d %H:%M %Z}, once)")
    click.echo(f"centre key:    {shown(fp)}")
    click.echo(f"on the kiosk:  kiosk enroll {url} {new.code} --centre-key {shown(fp)}")
    if write_qr:
        path = qr_out or instance_files.enrolment_image(instance, new.kiosk_id)
        image = io.BytesIO()
        qrcode.make(qr_text).save(image)
        # It holds a live code: owner only, and removed once the code is used or expires.
        instance_files.write_private(path, image.getvalue())
        click.echo(f"or show the kiosk's camera the QR code in {path} (mode 0600)")
        if qr_out is not None:
            click.echo("  remove it once the kiosk is enrolled: it holds the code")


@main.group("kiosk")
def kiosk_group() -> None:
    """Kiosk enrolment and revocation."""


def _sweep(instance: Path, engine: Engine) -> None:
    from datetime import UTC

    for image in instance_files.sweep_enrolment_images(instance, engine, datetime.now(UTC)):
        click.echo(f"removed {image}: its code was used or has expired", err=True)


QR_HELP = "Where to write the QR image of the code [default: <instance>/enrol-<id>.png]."


@kiosk_group.command("add")
@click.option("--site", "site_id", required=True, help="Site id the kiosk stands at.")
@click.option("--name", default="", help="A name staff will recognise (where it stands).")
@click.option("--id", "kiosk_id", default=None, help="Kiosk id; default: <site>-<n>.")
@click.option("--qr", "qr_out", type=click.Path(dir_okay=False, path_type=Path), help=QR_HELP)
@click.option("--no-qr", is_flag=True, help="Print the code only; write no QR image.")
@click.pass_obj
def kiosk_add_command(
    instance: Path,
    site_id: str,
    name: str,
    kiosk_id: str | None,
    qr_out: Path | None,
    no_qr: bool,
) -> None:
    """Add a kiosk and print its one-time enrolment code (also written as a QR PNG)."""
    from datetime import UTC, timedelta

    from central import kiosks

    settings, engine = _open_store(instance)
    _centre_url(settings)  # before a kiosk is made, not after
    _sweep(instance, engine)
    ttl = timedelta(hours=settings.enrolment_code_ttl_h)
    try:
        new = kiosks.add_kiosk(
            engine, site_id, datetime.now(UTC), ttl, name=name, kiosk_id=kiosk_id, created_by="cli"
        )
    except kiosks.KioskError as exc:
        raise click.ClickException(str(exc)) from exc
    _show_enrolment_code(instance, settings, new, qr_out, not no_qr)


@kiosk_group.command("code")
@click.argument("kiosk_id")
@click.option("--qr", "qr_out", type=click.Path(dir_okay=False, path_type=Path), help=QR_HELP)
@click.option("--no-qr", is_flag=True, help="Print the code only; write no QR image.")
@click.pass_obj
def kiosk_code_command(instance: Path, kiosk_id: str, qr_out: Path | None, no_qr: bool) -> None:
    """A new one-time code for an existing kiosk (its SD card was replaced)."""
    from datetime import UTC, timedelta

    from central import kiosks

    settings, engine = _open_store(instance)
    _centre_url(settings)
    _sweep(instance, engine)
    ttl = timedelta(hours=settings.enrolment_code_ttl_h)
    try:
        new = kiosks.new_enrolment_code(engine, kiosk_id, datetime.now(UTC), ttl)
    except kiosks.KioskError as exc:
        raise click.ClickException(str(exc)) from exc
    _show_enrolment_code(instance, settings, new, qr_out, not no_qr)


@kiosk_group.command("revoke")
@click.argument("kiosk_id")
@click.pass_obj
def kiosk_revoke_command(instance: Path, kiosk_id: str) -> None:
    """Shut a kiosk out at once: every call with its token gets 401."""
    from datetime import UTC

    from central import kiosks

    _, engine = _open_store(instance)
    try:
        kiosks.revoke(engine, kiosk_id, datetime.now(UTC), by="cli")
    except kiosks.KioskError as exc:
        raise click.ClickException(str(exc)) from exc
    _sweep(instance, engine)
    click.echo(f"kiosk {kiosk_id} revoked: its token no longer works")


@kiosk_group.command("setting", hidden=True)
@click.argument("scope")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--remove", is_flag=True, help="Remove the setting at this scope.")
@click.pass_obj
def kiosk_setting_command(
    instance: Path, scope: str, key: str, value: str | None, remove: bool
) -> None:
    """The older form of `central kiosk set`, kept for scripts written against it: SCOPE is *,
    site:<id> or kiosk:<id>; VALUE is JSON (true, 30, "text") or plain text."""
    import json
    from datetime import UTC

    from central import kiosks

    if remove == (value is not None):
        raise click.UsageError("give a VALUE, or --remove")
    parsed: object = None
    if value is not None:
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
    _, engine = _open_store(instance)
    try:
        version = kiosks.set_pushed_setting(engine, scope, key, parsed, datetime.now(UTC), by="cli")
    except kiosks.KioskError as exc:
        raise click.ClickException(str(exc)) from exc
    said = "removed" if parsed is None else f"= {json.dumps(parsed, ensure_ascii=False)}"
    click.echo(f"{scope} {key} {said} (settings version {version})")


@kiosk_group.command("set")
@click.option(
    "--all", "every_kiosk", is_flag=True, help="Every kiosk (a site's or a kiosk's own value wins)."
)
@click.option("--site", "site_id", help="Every kiosk of this site.")
@click.option("--kiosk", "kiosk_id", help="This kiosk only (wins over its site's value).")
@click.option("--remove", is_flag=True, help="Remove the named settings at this scope.")
@click.argument("assignments", nargs=-1, required=True)
@click.pass_obj
def kiosk_set_command(
    instance: Path,
    every_kiosk: bool,
    site_id: str | None,
    kiosk_id: str | None,
    remove: bool,
    assignments: tuple[str, ...],
) -> None:
    """Set kiosk settings from the centre: KEY=VALUE ... (VALUE as JSON: true, 60, "text", or
    plain text). Kiosks take them at their next pull and apply at once what they safely can
    (repeat window, sounds, language, buttons, photo capture); the rest after a restart, which
    the kiosks page shows. With --remove, name the keys only. Examples:

    central kiosk set --site S01 repeat_window_s=60 sounds=false

    central kiosk set --all photo_capture=true

    central kiosk set --kiosk S01-1 --remove sounds"""
    from datetime import UTC

    from central import kiosk_settings
    from central.kiosks import KioskError

    _, engine = _open_store(instance)
    try:
        if remove:
            values: dict[str, object] = dict.fromkeys(a.partition("=")[0] for a in assignments)
        else:
            values = kiosk_settings.parse_assignments(assignments)
        if every_kiosk:
            if site_id or kiosk_id:
                raise kiosk_settings.SettingsInputError("--all names no site or kiosk")
            scope = "*"
        else:
            with engine.connect() as conn:
                scope = kiosk_settings.scope_of(conn, site_id, kiosk_id)
        version = kiosk_settings.set_settings(engine, scope, values, datetime.now(UTC), by="cli")
    except (kiosk_settings.SettingsInputError, KioskError) as exc:
        raise click.ClickException(str(exc)) from exc
    for key, value in values.items():
        said = "removed" if value is None else f"= {json.dumps(value, ensure_ascii=False)}"
        click.echo(f"{scope} {key} {said}")
    click.echo(f"settings version {version}: kiosks take it at their next pull")


@kiosk_group.command("list")
@click.pass_obj
def kiosk_list_command(instance: Path) -> None:
    """Every kiosk with its site and state."""
    from central import kiosks

    _, engine = _open_store(instance)
    _sweep(instance, engine)
    with engine.connect() as conn:
        for row in kiosks.list_kiosks(conn):
            state = (
                "revoked"
                if row["revoked_at"]
                else ("enrolled" if row["enrolled_at"] else "waiting for enrolment")
            )
            pushed = row["last_push_at"]
            last = f", last push {pushed:%Y-%m-%d %H:%M} UTC" if pushed else ""
            click.echo(f"{row['kiosk_id']}\t{row['site_id']}\t{state}{last}\t{row['name']}")


@main.command("backup")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write."
)
@click.option(
    "--keys-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the issuing key, the centre key and the session secret to this separate "
    "file (mode 0600).",
)
@click.pass_obj
def backup_command(instance: Path, out: Path, keys_out: Path | None) -> None:
    """Back up the database while the centre runs (SQLite online backup, or pg_dump).

    The backup holds NO keys: without the issuing key a restored centre cannot issue badges
    kiosks accept, and without the centre key every kiosk refuses its answers. Keep a copy of
    the keys apart (--keys-out FILE).
    """
    from central import backup

    settings = load_or_exit(central_settings.load, instance)
    try:
        manifest = backup.backup(settings, instance, out, keys_out)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = manifest["rows"]
    click.echo(
        f"wrote {out} (mode 0600): {manifest['engine']} database, {rows.get('events', 0)} "
        f"events, {rows.get('cadres', 0)} cadres, {rows.get('kiosks', 0)} kiosks"
    )
    key_path = settings.issuing_key_path(instance)
    if keys_out is not None:
        click.echo(f"wrote the keys to {keys_out} (mode 0600): keep it apart from the backup")
    else:
        click.echo(
            f"WARNING: the backup does not hold the issuing key {key_path} nor the centre key "
            f"{settings.centre_key_path(instance)}. Without them a restored centre cannot issue "
            "badges that kiosks accept, and every kiosk refuses its answers. Keep a copy of "
            "them apart from the backups (or run again with --keys-out FILE).",
            err=True,
        )


@main.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A keys file of `central backup --keys-out`: the issuing and centre keys go back too.",
)
@click.pass_obj
def restore_command(instance: Path, file: Path, keys: Path | None) -> None:
    """Restore a backup into this instance, whose database must be empty.

    Kiosks then send again what the centre lost since the backup (at their next heartbeat);
    kiosks enrolled after the backup must be enrolled again.
    """
    from central import backup

    settings = load_or_exit(central_settings.load, instance)
    try:
        report = backup.restore(settings, instance, file, keys)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    manifest = report.manifest
    click.echo(
        f"restored {file}, made {manifest['made_at']}: {manifest['rows'].get('events', 0)} events, "
        f"{len(manifest['kiosk_chain_heads'])} kiosks"
    )
    for note in report.notes:
        click.echo(f"note: {note}")
    key_path = settings.issuing_key_path(instance)
    if report.key_state == "restored":
        click.echo(f"restored the issuing key to {key_path}")
    elif report.key_state == "same":
        click.echo(f"the issuing key at {key_path} is the one the backup was made with")
    else:
        said = (
            "there is no issuing key"
            if report.key_state == "missing"
            else ("the issuing key there is NOT the one the backup was made with")
        )
        click.echo(
            f"WARNING: {said} ({key_path}). Kiosks pin the centre's key: until the backup's key is "
            "restored (central restore --keys FILE, or copy it there), badges printed now are "
            "refused by kiosks, pulls fail their signature check, and the badges already "
            "printed cannot be checked here.",
            err=True,
        )
    click.echo("kiosks send again what this backup lacks at their next heartbeat")


@main.group("api-token")
def api_token_group() -> None:
    """Tokens of the read API for integrations (/api/read/v1, described by its openapi.json)."""


@api_token_group.command("add")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="What the token may read (repeatable): events, stays, attendance, anomalies, kiosks.",
)
@click.pass_obj
def api_token_add_command(instance: Path, name: str, scopes: tuple[str, ...]) -> None:
    """Make a token NAME for one integration; prints the token once (only its hash is kept)."""
    from central.readapi import tokens
    from central.services import utc_now

    _, engine = _open_store(instance)
    try:
        token, clear = tokens.add_token(
            engine, name, list(scopes), "cli", utc_now().replace(tzinfo=None)
        )
    except tokens.TokenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"made token {token.name} ({' '.join(token.scopes)}); it is shown only now:", err=True
    )
    click.echo(clear)


@api_token_group.command("list")
@click.pass_obj
def api_token_list_command(instance: Path) -> None:
    """List the tokens: name, scopes, active or revoked, last used (UTC)."""
    from central.readapi import tokens

    _, engine = _open_store(instance)
    with engine.connect() as conn:
        for token in tokens.list_tokens(conn):
            state = "active" if token.active else "revoked"
            used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "-"
            click.echo(f"{token.name}\t{','.join(token.scopes)}\t{state}\t{used}")


@api_token_group.command("revoke")
@click.argument("name")
@click.pass_obj
def api_token_revoke_command(instance: Path, name: str) -> None:
    """Revoke the token NAME: every process refuses it from its next request."""
    from central.readapi import tokens
    from central.services import utc_now

    _, engine = _open_store(instance)
    try:
        tokens.revoke_token(engine, name, "cli", utc_now().replace(tzinfo=None))
    except tokens.TokenError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked token {name}")


# --- the centre key ------------------------------------------------------------------------------


@main.group("centre-key")
def centre_key_group() -> None:
    """The key that signs every answer to kiosks; kiosks pin its fingerprint."""


@centre_key_group.command("show")
@click.pass_obj
def centre_key_show_command(instance: Path) -> None:
    """Print the centre key's fingerprint (for `kiosk pin-centre` on a kiosk)."""
    settings = load_or_exit(central_settings.load, instance)
    try:
        key = keys.load_centre_key(settings.centre_key_path(instance))
    except keys.KeyFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(shown(fingerprint(key.public_key())))


@centre_key_group.command("rotate")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def centre_key_rotate_command(instance: Path, yes: bool) -> None:
    """Replace the centre key; the old key signs the change, so enrolled kiosks follow it.

    Not for a key that leaked (whoever holds it can sign a rotation too): then make a new key
    and pin it on each kiosk (`kiosk pin-centre`) or enrol the kiosks again.
    """
    from datetime import UTC

    settings = load_or_exit(central_settings.load, instance)
    path = settings.centre_key_path(instance)
    try:
        old = fingerprint(keys.load_centre_key(path).public_key())
    except keys.KeyFileError as exc:
        raise click.ClickException(str(exc)) from exc
    if not yes:
        click.confirm(f"replace centre key {shown(old)}?", abort=True)
    rotation = keys.rotate_centre_key(path, datetime.now(UTC))
    new = fingerprint(keys.load_centre_key(path).public_key())
    made = f"{rotation.made_at:%Y-%m-%d %H:%M} UTC"
    click.echo(f"centre key {shown(old)} -> {shown(new)}, signed by the old key at {made}")
    click.echo("kiosks follow at their next exchange; new enrolment codes carry the new key")


@main.group("release")
def release_group() -> None:
    """Kiosk software updates: signed wheels offered to some kiosks first, then more."""


def _release_line(release: Any) -> str:
    state = release.state if not release.state_detail else release.state_detail
    return (
        f"{release.version}  {release.wheel_name}  sha256 {release.sha256[:16]}...  "
        f"to {release.target_text()}  {state}"
    )


@release_group.command("add")
@click.argument("wheel", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--site", "sites", multiple=True, help="Offer it to the kiosks of this site.")
@click.option("--percent", type=int, default=None, help="Offer it to this % of kiosks first.")
@click.pass_obj
def release_add_command(
    instance: Path, wheel: Path, sites: tuple[str, ...], percent: int | None
) -> None:
    """Sign WHEEL (a wheel of the kiosk package) with the centre key and offer it to kiosks:
    those of --site S (repeatable), or --percent N of all kiosks."""
    from datetime import UTC

    from central import releases

    settings, engine = _open_store(instance)
    try:
        key = keys.load_centre_key(settings.centre_key_path(instance))
        release = releases.add_release(
            engine, instance, key, wheel, datetime.now(UTC), sites=sites, percent=percent, by="cli"
        )
    except (keys.KeyFileError, releases.ReleaseError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"signed with centre key {shown(release.signed.signer)}")
    click.echo(_release_line(release))


@release_group.command("widen")
@click.argument("version")
@click.option("--site", "sites", multiple=True, help="Add the kiosks of this site.")
@click.option("--percent", type=int, default=None, help="Offer it to this % of kiosks.")
@click.pass_obj
def release_widen_command(
    instance: Path, version: str, sites: tuple[str, ...], percent: int | None
) -> None:
    """Offer release VERSION to more kiosks (and again, if it was halted)."""
    from datetime import UTC

    from central import releases

    _, engine = _open_store(instance)
    try:
        release = releases.widen(engine, version, datetime.now(UTC), sites=sites, percent=percent)
    except releases.ReleaseError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(_release_line(release))


@release_group.command("halt")
@click.argument("version")
@click.pass_obj
def release_halt_command(instance: Path, version: str) -> None:
    """Offer release VERSION to no more kiosks (those that run it keep it)."""
    from datetime import UTC

    from central import releases

    _, engine = _open_store(instance)
    with engine.begin() as conn:
        if not releases.halt(conn, version, "halted by staff", datetime.now(UTC)):
            raise click.ClickException(f"no offered release {version}")
    click.echo(f"release {version} halted")


@release_group.command("list")
@click.pass_obj
def release_list_command(instance: Path) -> None:
    """Every release, newest first: whom it is offered to, and who switched back from it."""
    from central import releases

    _, engine = _open_store(instance)
    with engine.connect() as conn:
        found = releases.all_releases(conn)
        back = releases.rollbacks_by_version(conn)
    if not found:
        click.echo("no releases yet (central release add FILE.whl --percent N)")
    for release in found:
        line = _release_line(release)
        if back.get(release.version):
            line += f"  rolled back on {', '.join(sorted(back[release.version]))}"
        click.echo(line)


@main.command("serve")
@click.option("--host", default=None, help="Address to listen on [default: listen_host].")
@click.option(
    "--port",
    type=int,
    default=None,
    help="Port to listen on [default: listen_port]; with --workers, the first of N.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes to run on ports PORT..PORT+N-1 (PostgreSQL only), restarted when they die.",
)
@click.pass_obj
def serve_command(instance: Path, host: str | None, port: int | None, workers: int) -> None:
    """Serve the kiosk API and the staff pages with waitress (put nginx with TLS in front).

    Any number of these may run on one PostgreSQL database, on one host or several
    (docs/central-nginx.md); on SQLite only one, and a second is refused.
    """
    from central import serve

    settings, _ = _open_store(instance)
    host, port = host or settings.listen_host, port or settings.listen_port
    try:
        serve.check_workers(settings, instance, workers)
        if workers > 1:
            raise SystemExit(serve.Supervisor(instance, host, port, workers).run())
        serve.serve_one(instance, settings, host, port)
    except serve.ServeRefused as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("duties")
@click.pass_obj
def duties_command(instance: Path) -> None:
    """Who runs each background duty now, and its last runs (from the database)."""
    from central.duties import lease as leases
    from central.duties import report

    _, engine = _open_store(instance)
    with engine.connect() as conn:
        holders = leases.holders(conn)
        runs = report.last_runs(conn)
    if not holders:
        click.echo("no duty has run yet (is `central serve` running?)")
    for row in holders:
        state = "held" if row["live"] else "free (expired or released)"
        click.echo(
            f"{row['duty']}\t{state}\tby {row['holder']}\tgeneration {row['generation']}"
            f"\tuntil {row['expires_at']:%Y-%m-%d %H:%M:%S} UTC"
        )
    for run in runs:
        click.echo(
            f"  last {run['duty']} run: {run['ended_at']:%Y-%m-%d %H:%M:%S} UTC by "
            f"{run['holder']} ({run['items']} items; {run['runs']} runs in the last hour)"
        )
