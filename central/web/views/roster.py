"""Roster import, badge printing and badge revocation in the browser (admins only to change)."""

from __future__ import annotations

import io
import re
import tempfile
from datetime import date
from pathlib import Path

from flask import current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from central import badges, fonts, keys, roster, roster_file
from central.db import schema
from central.web import roster_messages
from central.web.auth import admin_required
from central.web.blueprint import staff
from central.web.context import state
from sync import tabular

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
    page = render_template(
        "roster.html",
        section="roster",
        counts=counts,
        sites=_site_counts(),
        layouts=LAYOUTS,
        default_layout=state().settings.badge_layout,
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
    return redirect(url_for("staff.roster_page"))


def _cadre_ids(text: str) -> list[str]:
    return [part for part in re.split(r"[\s,;，；、]+", text) if part]


@staff.route("/badges/print", methods=["POST"])
@admin_required
def badges_print() -> Response | tuple[str, int]:
    site_id = request.form.get("site_id", "").strip() or None
    cadre_ids = _cadre_ids(request.form.get("cadre_ids", ""))
    layout = request.form.get("layout", state().settings.badge_layout)
    if layout not in LAYOUTS:
        return _render(400, badge_error=gettext("Unknown label layout."))
    settings = state().settings
    try:
        font = fonts.require_font(Path(settings.badge_font_file), settings.badge_font_face)
        private_key = keys.load_issuing_key(settings.issuing_key_path(state().instance))
        issued = badges.issue_badges(
            state().engine, private_key, site_id=site_id, cadre_ids=cadre_ids
        )
    except roster.UnknownCadre as exc:
        return _render(400, badge_error=gettext("No cadre %(id)s in the roster.", id=exc.cadre_id))
    except fonts.FontError as exc:
        current_app.logger.error("badge sheet: %s", exc)
        message = gettext("The badge font is missing on the server (fonts-wqy-zenhei).")
        return _render(500, badge_error=message)
    except keys.KeyFileError as exc:
        current_app.logger.error("badge sheet: %s", exc)
        message = gettext("The issuing key cannot be read: run `central init` on the server.")
        return _render(500, badge_error=message)
    except badges.BadgeIssueError as exc:
        current_app.logger.error("badge sheet: %s", exc)
        message = gettext("A badge could not be issued; the server log says why.")
        return _render(400, badge_error=message)
    if not issued:
        return _render(400, badge_error=gettext("No cadres match: nothing to print."))
    with tempfile.TemporaryDirectory(prefix="badges-") as folder:
        out = Path(folder) / "badges.pdf"
        badges.render_sheets(issued, out, layout, font)
        data = out.read_bytes()
    site = tabular.file_name_part(site_id) if site_id else "all"
    name = f"badges-{site}-{date.today().isoformat()}.pdf"

    return send_file(
        io.BytesIO(data), mimetype="application/pdf", as_attachment=True, download_name=name
    )


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
