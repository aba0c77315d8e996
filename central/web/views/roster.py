"""Roster import, badge printing and badge revocation in the browser (admins only to change)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from central import badges, fonts, keys, roster, roster_file
from central.db import schema
from central.jobs import badge_job
from central.jobs import store as job_store
from central.web import roster_messages
from central.web.auth import admin_required, current_user
from central.web.blueprint import staff
from central.web.context import state
from central.web.views.jobs import job_view, start_job

ROSTER_SUFFIXES = (".csv", ".xlsx", ".xlsm", ".tsv", ".txt")
PROBLEMS_SHOWN = 200
LAYOUTS = ("a6-on-a4", "54x90-2x5")


def _site_counts() -> list[dict[str, object]]:
    with state().engine.connect() as conn:
        rows = conn.execute(
            select(
                schema.sites.c.site_id,
                schema.sites.c.name,
                func.count(schema.cadres.c.cadre_id).label("cadres"),
            )
            .select_from(schema.sites.outerjoin(schema.cadres))
            .group_by(schema.sites.c.site_id, schema.sites.c.name)
            .order_by(schema.sites.c.site_id)
        )
        return [dict(r._mapping) for r in rows]


def _render(status: int = 200, **extra: object) -> tuple[str, int]:
    with state().engine.connect() as conn:
        counts = roster.count_rows(conn)
    user = current_user()
    recent_prints = (
        job_store.recent(state().engine, kinds=[badge_job.KIND], limit=5)
        if user is not None and user.is_admin
        else []
    )
    page = render_template(
        "roster.html",
        section="roster",
        counts=counts,
        sites=_site_counts(),
        layouts=LAYOUTS,
        default_layout=state().settings.badge_layout,
        recent_prints=recent_prints,
        job_view=job_view,
        form=request.form if request.method == "POST" else {},
        **extra,
    )
    return page, status


@staff.route("/roster")
def roster_page() -> tuple[str, int]:
    return _render()


@staff.route("/roster/import", methods=["POST"])
@admin_required
def roster_import() -> tuple[str, int] | Response:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render(400, import_error=gettext("Choose a roster file (.csv or .xlsx)."))
    suffix = Path(upload.filename).suffix.casefold()
    if suffix not in ROSTER_SUFFIXES:
        return _render(400, import_error=gettext("Only .csv and .xlsx roster files are read."))
    with tempfile.TemporaryDirectory(prefix="roster-") as folder:
        # The reader decides the format by the suffix; the client's file name is not trusted.
        path = Path(folder) / f"upload{suffix}"
        upload.save(path)
        try:
            parsed = roster_file.read_roster_file(path)
        except roster_file.RosterFileError as exc:
            return _render(400, import_error=roster_messages.file_problem(str(exc)))
    if parsed.problems:
        return _render(
            400,
            import_error=gettext(
                "%(count)d problems in %(file)s: nothing was imported. Fix them and try again.",
                count=len(parsed.problems),
                file=upload.filename,
            ),
            problems=[
                (problem.line, roster_messages.row_problem(problem.reason))
                for problem in parsed.problems[:PROBLEMS_SHOWN]
            ],
            more_problems=max(0, len(parsed.problems) - PROBLEMS_SHOWN),
        )
    result = roster.import_roster(state().engine, parsed.rows)
    flash(
        gettext(
            "Imported %(file)s: %(inserted)d new, %(updated)d changed, %(unchanged)d unchanged "
            "cadres; %(sites)d new sites.",
            file=upload.filename,
            inserted=result.inserted,
            updated=result.updated,
            unchanged=result.unchanged,
            sites=result.sites_added,
        ),
        "ok",
    )
    if parsed.skipped_lines:
        flash(
            gettext(
                "The header is on line %(line)d; the %(count)d rows above it (a title) were "
                "not read.",
                line=parsed.header_line,
                count=len(parsed.skipped_lines),
            ),
            "ok",
        )
    _say_unprintable_names(parsed.rows)
    return redirect(url_for("staff.roster_page"))


UNPRINTABLE_SHOWN = 20


def _say_unprintable_names(rows: list[roster_file.RosterRow]) -> None:
    """After an import: which names (or units) have characters no badge font can draw."""
    try:
        font_set, _notes = fonts.from_settings(state().settings)
    except fonts.FontError:
        return  # printing says so, with what to install
    lacking = badges.names_without_glyphs(
        font_set, ((row.cadre_id, row.name, row.unit or "") for row in rows)
    )
    if not lacking:
        return
    listed = "; ".join(
        f"{row['name']} ({row['cadre_id']}: {' '.join(row['characters'])})"
        for row in lacking[:UNPRINTABLE_SHOWN]
    )
    more = len(lacking) - UNPRINTABLE_SHOWN
    if more > 0:
        listed += gettext("; and %(more)d more names", more=more)
    flash(
        gettext(
            "%(count)d names cannot be printed on badges: no badge font has some of their "
            "characters (printed as 〓): %(names)s",
            count=len(lacking),
            names=listed,
        ),
        "error",
    )


def _cadre_ids(text: str) -> list[str]:
    return [part for part in re.split(r"[\s,;，；、]+", text) if part]


@staff.route("/badges/print", methods=["POST"])
@admin_required
def badges_print() -> Response | tuple[str, int]:
    """Queue badge sheets as a background job and go to its page.

    Whom to print is always an explicit choice: one site, the ids listed, or everyone with the
    number of cadres confirmed (the form shows it); a form without one prints nothing.
    """
    form = request.form
    scope = form.get("scope", "")
    layout = form.get("layout", state().settings.badge_layout)
    if layout not in LAYOUTS:
        return _render(400, badge_error=gettext("Unknown label layout."))
    site_id: str | None = None
    cadre_ids: list[str] = []
    with state().engine.connect() as conn:
        total = roster.count_rows(conn)["cadres"]
        if scope == "site":
            site_id = form.get("site_id", "").strip()
            if not site_id or site_id not in {s["site_id"] for s in _site_counts()}:
                return _render(400, badge_error=gettext("Choose the site to print badges for."))
        elif scope == "ids":
            cadre_ids = list(dict.fromkeys(_cadre_ids(form.get("cadre_ids", ""))))
            if not cadre_ids:
                return _render(400, badge_error=gettext("Enter the ids of the cadres to print."))
            found = {row["cadre_id"] for row in roster.cadres_for_badges(conn, cadre_ids=cadre_ids)}
            unknown = [cadre_id for cadre_id in cadre_ids if cadre_id not in found]
            if unknown:
                return _render(
                    400,
                    badge_error=gettext(
                        "No cadre %(id)s in the roster.", id=", ".join(unknown[:20])
                    ),
                )
        elif scope == "all":
            if form.get("confirm_all", "") != str(total):
                return _render(
                    400,
                    badge_error=gettext(
                        "To print every badge, tick “print all %(count)d cadres”.", count=total
                    ),
                )
        else:
            return _render(400, badge_error=gettext("Choose whom to print badges for."))
    if total == 0:
        return _render(400, badge_error=gettext("No cadres match: nothing to print."))
    # What the job would fail on at once is said here instead (the job checks again).
    settings = state().settings
    try:
        fonts.require_font(Path(settings.badge_font_file), settings.badge_font_face)
        keys.load_issuing_key(settings.issuing_key_path(state().instance))
    except fonts.FontError as exc:
        current_app.logger.error("badge sheet: %s", exc)
        message = gettext("The badge font is missing on the server (fonts-wqy-zenhei).")
        return _render(500, badge_error=message)
    except keys.KeyFileError as exc:
        current_app.logger.error("badge sheet: %s", exc)
        message = gettext("The issuing key cannot be read: run `central init` on the server.")
        return _render(500, badge_error=message)
    params = badge_job.badge_params(
        # The date signed into new badges is the centre's calendar date.
        scope,
        layout,
        state().now().astimezone(state().zone).date(),
        site_id=site_id,
        cadre_ids=cadre_ids,
    )
    return start_job(badge_job.KIND, params)


@staff.route("/badges/revoke", methods=["POST"])
@admin_required
def badges_revoke() -> Response | tuple[str, int]:
    cadre_id = request.form.get("cadre_id", "").strip()
    if not cadre_id:
        return _render(
            400, revoke_error=gettext("Enter the id of the cadre whose badge to revoke.")
        )
    try:
        serial = roster.revoke_badge(state().engine, cadre_id)
    except roster.UnknownCadre:
        return _render(400, revoke_error=gettext("No cadre %(id)s in the roster.", id=cadre_id))
    except roster.NoBadgeIssued:
        return _render(
            400,
            revoke_error=gettext("Cadre %(id)s has no badge yet: nothing to revoke.", id=cadre_id),
        )
    flash(
        gettext(
            "Badges of %(id)s up to serial %(serial)d are revoked; kiosks refuse them from their "
            "next sync. Print a new badge to replace it.",
            id=cadre_id,
            serial=serial,
        ),
        "ok",
    )
    target = request.form.get("back") or ""
    if target.startswith("/staff/") and not target.startswith("//"):
        return redirect(target)
    return redirect(url_for("staff.roster_page"))
