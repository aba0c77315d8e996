"""The site lead's page, for a phone on the kiosk's network.

Every route of this blueprint but the login needs a session: pages redirect to the login, the
JSON API (/lead/api/...) answers 401. Every POST needs the session's CSRF token. The guard is one
`before_request`, so a route added later cannot forget it (tests walk the URL map to check).

The routes are all here, so the guard's reach is seen in one file; what the pages show is built in
lead_day.py (the day's people and log) and lead_export.py (CSV and XLSX).
"""

from __future__ import annotations

import io
import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from kiosk.web import i18n
from kiosk.web.auth import CSRF_FIELD, PinGate, check_csrf, csrf_token, pin_fingerprint
from kiosk.web.common import asset_url, services
from kiosk.web.lead_day import day_summary, log_rows, parse_day, person, today
from kiosk.web.lead_export import column_titles, export_rows
from kiosk.web.present import hm, reason_text
from kiosk.web.status import clock_words, readiness
from sync import tabular
from sync.events import check_time_range

bp = Blueprint("lead", __name__, url_prefix="/lead")

PUBLIC_ENDPOINTS = frozenset({"lead.login"})
MANUAL_KINDS: tuple[Literal["arrival", "departure"], ...] = ("arrival", "departure")
MAX_EXPORT_DAYS = 92
MAX_REASON = 200
MAX_OPERATOR = 40
# The phone's clock is usually NTP-set to well under a second; the request's trip adds a little.
PHONE_UNCERTAINTY_S = 2.0


def gate() -> PinGate:
    kiosk = services()
    if not hasattr(kiosk, "pin_gate"):
        kiosk.pin_gate = PinGate(  # type: ignore[attr-defined]
            kiosk.settings.lead_max_failures, kiosk.settings.lead_lockout_s, kiosk.monotonic
        )
    return kiosk.pin_gate  # type: ignore[attr-defined,no-any-return]


def logged_in() -> bool:
    kiosk = services()
    pin = kiosk.settings.lead_pin
    lead = session.get("lead")
    if not pin or not isinstance(lead, dict):
        return False
    return lead.get("pin") == pin_fingerprint(kiosk.secret_key, pin)


def plain_text(text: str) -> str:
    """Typed text as it will be shown everywhere: control characters, invisible format marks
    (a right-to-left override turns "rebmun" into "number" on screen) and line breaks removed,
    other spaces made plain. The roster refuses the same characters in names."""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            continue
        kept.append(" " if category == "Zs" else char)
    return "".join(kept).strip()


def operator() -> str:
    lead = session.get("lead") or {}
    return str(lead.get("name") or "site lead")[:MAX_OPERATOR]


def is_api() -> bool:
    return request.path.startswith("/lead/api/")


@bp.before_request
def _guard() -> BaseResponse | None:
    if request.endpoint not in PUBLIC_ENDPOINTS and not logged_in():
        if is_api():
            return _api_error(_("Log in first."), 401)
        return redirect(url_for("lead.login", next=request.full_path))
    if request.method == "POST":
        check_csrf()
    return None


@bp.context_processor
def _template_helpers() -> dict[str, Any]:
    kiosk = services()
    return {
        "asset": asset_url,
        "csrf_token": csrf_token,
        "csrf_field": CSRF_FIELD,
        "site_name": kiosk.settings.site_name or kiosk.settings.site_id,
        "html_lang": i18n.html_lang(str(_current_locale())),
        "locale": str(_current_locale()),
    }


def _current_locale() -> str:
    from flask_babel import get_locale

    locale = get_locale()
    return str(locale) if locale else i18n.CHINESE


def _api_error(message: str, status: int) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _safe_next(target: str | None) -> str:
    """Only a path of this page: never an absolute URL (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/lead"):
            return target
    return url_for("lead.overview")


# ------------------------------------------------------------------ login


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int] | str:
    kiosk = services()
    pin_set = bool(kiosk.settings.lead_pin)
    if request.method == "GET":
        if logged_in():
            return redirect(_safe_next(request.args.get("next")))
        locked = gate().locked_for_s()
        return render_template("lead_login.html", pin_set=pin_set, locked_for=locked, error="")
    if not pin_set:
        return render_template("lead_login.html", pin_set=False, locked_for=0, error=""), 403
    result = gate().attempt(kiosk.settings.lead_pin, request.form.get("pin", ""))
    if result.status == "ok":
        name = plain_text(request.form.get("name", ""))[:MAX_OPERATOR]
        session.clear()
        session.permanent = True
        session["lead"] = {
            "pin": pin_fingerprint(kiosk.secret_key, kiosk.settings.lead_pin),
            "name": name,
            "at": int(time.time()),
        }
        csrf_token()  # a fresh token for the new session
        return redirect(_safe_next(request.form.get("next")))
    if result.status == "locked":
        error = _(
            "Too many wrong PINs: the login is locked for %(minutes)d min.",
            minutes=max(1, round(result.locked_for_s / 60)),
        )
        return (
            render_template(
                "lead_login.html", pin_set=True, locked_for=result.locked_for_s, error=error
            ),
            429,
        )
    error = _("Wrong PIN. %(n)d tries left before the login locks.", n=result.attempts_left)
    return render_template("lead_login.html", pin_set=True, locked_for=0, error=error), 401


@bp.post("/logout")
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for("lead.login"))


# ------------------------------------------------------------------ what the pages show


@bp.get("/")
def overview() -> str:
    day = parse_day(request.args.get("day"), today())
    summary = day_summary(day)
    events = services().rules.events_of_day(day)
    return render_template(
        "lead.html",
        summary=summary,
        rows=log_rows(events),
        readiness=readiness(services()),
        today=today(),
        operator=operator(),
    )


# ------------------------------------------------------------------ actions


def _reason() -> str:
    reason = plain_text(request.form.get("reason", ""))
    if not reason:
        raise ValueError(_("Give a reason."))
    return reason[:MAX_REASON]


def _time_field(name: str = "time") -> datetime | None:
    """An optional time from the form: HH:MM (today) or YYYY-MM-DDTHH:MM, in the site's zone."""
    text = request.form.get(name, "").strip()
    if not text:
        return None
    rules = services().rules
    try:
        if "T" in text:
            value = datetime.fromisoformat(text)
        else:
            clock = datetime.strptime(text, "%H:%M").time()
            value = datetime.combine(today(), clock)
            # Before the service day starts is the next calendar day's early morning.
            if clock < rules.settings.service_day_start:
                value += timedelta(days=1)
        if value.tzinfo is None:
            value = value.replace(tzinfo=rules.settings.timezone)
        # A record cannot hold a time at the calendar's ends (year 1): say so in words here,
        # not in the event schema's.
        check_time_range(value)
    except ValueError:
        raise ValueError(_("Times are written HH:MM.")) from None
    return value


def _back() -> BaseResponse:
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/manual")
def manual() -> BaseResponse:
    kiosk = services()
    cadre_id = request.form.get("cadre_id", "").strip()
    kind = request.form.get("kind")
    try:
        if kind not in MANUAL_KINDS:
            raise ValueError(_("Choose check-in or check-out."))
        if not cadre_id or len(cadre_id) > 64:
            raise ValueError(_("Choose a person."))
        outcome = kiosk.rules.manual(
            cadre_id, kind, operator=operator(), reason=_reason(), at=_time_field()
        )
    except ValueError as exc:
        flash(str(exc), "error")
        return _back()
    who = person(cadre_id)
    if outcome.event is None:
        flash(reason_text(outcome.reason, outcome.message), "error")
    else:
        kiosk.after_lead_event(outcome.event)
        text = (
            _(
                "%(name)s checked in by hand at %(time)s.",
                name=who.name,
                time=hm(outcome.time_shown),
            )
            if kind == "arrival"
            else _(
                "%(name)s checked out by hand at %(time)s.",
                name=who.name,
                time=hm(outcome.time_shown),
            )
        )
        flash(text, "ok")
    return _back()


@bp.post("/void")
def void() -> BaseResponse:
    return _lead_change(
        lambda rules: rules.void(
            request.form.get("event_id", ""), operator=operator(), reason=_reason()
        ),
        _("Event voided."),
    )


@bp.post("/correct")
def correct() -> BaseResponse:
    kind = request.form.get("kind") or None

    def change(rules: Any) -> Any:
        if kind not in (None, "arrival", "departure"):
            raise ValueError(_("Choose check-in or check-out."))
        return rules.correct(
            request.form.get("event_id", ""),
            operator=operator(),
            reason=_reason(),
            kind=kind,
            at=_time_field(),
        )

    return _lead_change(change, _("Event corrected."))


def _lead_change(change: Callable[[Any], Any], done: str) -> BaseResponse:
    """Record a void or correction; every refusal comes back to the lead as a message."""
    kiosk = services()
    try:
        event = change(kiosk.rules)
    except LookupError:
        flash(_("No such event."), "error")
        return _back()
    except ValueError as exc:
        flash(str(exc), "error")
        return _back()
    except OSError as exc:
        flash(_("Not recorded: %(problem)s", problem=str(exc)), "error")
        return _back()
    kiosk.after_lead_event(event)
    flash(done, "ok")
    return _back()


def _set_clock(phone_ms: Any) -> dict[str, Any]:
    try:
        value = int(phone_ms)
        phone_time = datetime.fromtimestamp(value / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise ValueError(_("The phone did not send its time.")) from None
    kiosk = services()
    kiosk.keeper.learn(phone_time, "lead_phone", uncertainty_s=PHONE_UNCERTAINTY_S)
    kiosk.publish_status()
    return clock_words(kiosk)


@bp.post("/clock")
def set_clock() -> BaseResponse:
    try:
        words = _set_clock(request.form.get("phone_time_ms"))
    except ValueError as exc:
        flash(str(exc), "error")
        return _back()
    flash(_("Kiosk clock set from this phone: %(state)s.", state=words["long_text"]), "ok")
    return _back()


# ------------------------------------------------------------------ exports


@bp.get("/export.<fmt>")
def export(fmt: str) -> Response:
    if fmt not in tabular.FORMATS:
        abort(404)
    first = parse_day(request.args.get("from"), today())
    last = parse_day(request.args.get("to"), first)
    if last < first:
        first, last = last, first
    if (last - first).days + 1 > MAX_EXPORT_DAYS:
        abort(400, description=_("At most %(n)d days at a time.", n=MAX_EXPORT_DAYS))
    kiosk = services()
    table = tabular.Table(
        columns=column_titles(), rows=export_rows(first, last), title=first.isoformat()
    )
    data = tabular.to_bytes(table, fmt)
    site = tabular.file_name_part(kiosk.settings.site_id or kiosk.settings.kiosk_id)
    name = f"checkins-{site}-{first.isoformat()}"
    if last != first:
        name += f"-to-{last.isoformat()}"
    return send_file(
        io.BytesIO(data),
        mimetype=tabular.MEDIA_TYPES[fmt],
        as_attachment=True,
        download_name=f"{name}.{fmt}",
        max_age=0,
    )


# ------------------------------------------------------------------ the JSON API


@bp.get("/api/summary")
def api_summary() -> Response:
    day = parse_day(request.args.get("day"), today())
    summary = day_summary(day)

    def people(key: str) -> list[dict[str, str]]:
        return [p.__dict__ for p in summary[key]]

    return jsonify(
        {
            "day": day.isoformat(),
            "counts": {
                "present": len(summary["present"]),
                "arrived": summary["arrived_count"],
                "departed": len(summary["departed"]),
                "absent": len(summary["absent"]),
                "no_departure": len(summary["no_departure"]),
            },
            "present": people("present"),
            "departed": people("departed"),
            "absent": people("absent"),
            "no_departure": people("no_departure"),
        }
    )


@bp.get("/api/readiness")
def api_readiness() -> Response:
    return jsonify({"items": [item.as_json() for item in readiness(services())]})


@bp.get("/api/events")
def api_events() -> Response:
    day = parse_day(request.args.get("day"), today())
    return jsonify(
        {
            "day": day.isoformat(),
            "events": [r.__dict__ for r in log_rows(services().rules.events_of_day(day))],
        }
    )


@bp.post("/api/clock")
def api_clock() -> Response:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _api_error(_("Send a JSON object."), 400)
    try:
        words = _set_clock(data.get("phone_time_ms"))
    except ValueError as exc:
        return _api_error(str(exc), 400)
    return jsonify({"clock": words})
