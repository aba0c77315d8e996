"""Badge sheets as a background job: issue, check every name against the fonts, draw, write.

Parameters (JSON): `scope` ("all", "site" or "ids"), `site_id`, `cadre_ids`, `layout`, `today`
(the centre's date, ISO: the issue date signed into new badges). Printing everyone is only ever
the explicit scope "all"; an empty choice is refused where the job is started.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from central import badges, fonts, keys, roster
from central.jobs.runner import JobContext, JobRefused, JobResult
from sync import tabular

KIND = "badges"
SCOPES = ("all", "site", "ids")
UNPRINTABLE_LISTED = 200  # kept with the job; the count says how many more


def badge_params(
    scope: str,
    layout: str,
    today: date,
    site_id: str | None = None,
    cadre_ids: list[str] | None = None,
) -> dict[str, Any]:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    return {
        "scope": scope,
        "site_id": site_id if scope == "site" else None,
        "cadre_ids": list(cadre_ids or []) if scope == "ids" else [],
        "layout": layout,
        "today": today.isoformat(),
    }


def file_name(params: dict[str, Any]) -> str:
    scope = params["scope"]
    part = {"all": "all", "ids": "selected"}.get(scope) or tabular.file_name_part(
        str(params.get("site_id") or "")
    )
    return f"badges-{part}-{params['today']}.pdf"


def print_badges(ctx: JobContext) -> JobResult:
    params = ctx.params
    settings = ctx.settings
    scope = params.get("scope")
    if scope not in SCOPES:
        raise JobRefused("bad_scope", str(scope))
    layout = params.get("layout") or settings.badge_layout
    if layout not in badges.LAYOUTS:
        raise JobRefused("bad_layout", str(layout))
    try:
        font_set, notes = fonts.from_settings(settings)
        private_key = keys.load_issuing_key(settings.issuing_key_path(ctx.instance))
    except fonts.FontError as exc:
        raise JobRefused("font_missing", str(exc)) from exc
    except keys.KeyFileError as exc:
        raise JobRefused("key_unreadable", str(exc)) from exc

    ctx.progress(0, stage="issuing", force=True)
    try:
        issued = badges.issue_badges(
            ctx.engine,
            private_key,
            site_id=params.get("site_id") if scope == "site" else None,
            cadre_ids=params.get("cadre_ids") or [] if scope == "ids" else [],
            today=date.fromisoformat(params["today"]),
        )
    except roster.UnknownCadre as exc:
        raise JobRefused("unknown_cadre", exc.cadre_id) from exc
    except badges.BadgeIssueError as exc:
        raise JobRefused("issue_failed", str(exc)) from exc
    if not issued:
        raise JobRefused("nothing_to_print")

    unprintable = badges.names_without_glyphs(
        font_set, ((b.cadre_id, b.name, b.unit) for b in issued)
    )
    ctx.progress(0, total=len(issued), stage="drawing", force=True)
    out = ctx.partial_path("pdf")
    pages = badges.render_sheets(
        issued,
        out,
        layout,
        font_set,
        progress=lambda drawn: ctx.progress(drawn),
        writing=lambda: ctx.progress(stage="writing", force=True),
    )
    return JobResult(
        out,
        file_name(params),
        {
            "badges": len(issued),
            "pages": pages,
            "layout": layout,
            "unprintable": unprintable[:UNPRINTABLE_LISTED],
            "unprintable_count": len(unprintable),
            "font_notes": notes,
        },
    )
