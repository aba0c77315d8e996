"""The site lead's page, for a phone on the kiosk's network.

Every route of this blueprint but the login needs a session: pages redirect to the login, the
JSON API (/lead/api/...) answers 401. Every POST needs the session's CSRF token. The guard is one
`before_request`, so a route added later cannot forget it (tests walk the URL map to check).
"""

from __future__ import annotations

import io
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
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

from kiosk.rules import FLAG_OPERATOR_TIME
from kiosk.web import i18n
from kiosk.web.auth import CSRF_FIELD, PinGate, check_csrf, csrf_token, pin_fingerprint
from kiosk.web.common import asset_url, services
from kiosk.web.present import duration, flag_text, hm, kind_text, reason_text, source_text
from kiosk.web.status import clock_words, readiness
from sync import tabular
from sync.events import EARLIEST_TIME, LATEST_TIME, Event, check_time_range

bp = Blueprint("lead", __name__, url_prefix="/lead")

PUBLIC_ENDPOINTS = frozenset({"lead.login"})
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


@dataclass
class Person:
    cadre_id: str
    name: str
    unit: str
    arrived: str = ""
    departed: str = ""
    worked: str = ""
    note: str = ""
    since_iso: str = ""


def today() -> date:
    kiosk = services()
    return kiosk.rules.service_day(kiosk.keeper.read().shown)


def person(cadre_id: str) -> Person:
    roster = services().roster.current
    entry = roster.entry(cadre_id)
    # A valid badge of another site is accepted and flagged; the lead should see that at once.
    unit = (entry.unit if entry else "") if roster.on_site(cadre_id) else flag_text("not_on_roster")
    return Person(cadre_id, entry.name if entry else cadre_id, unit)


def day_summary(day: date) -> dict[str, Any]:
    kiosk = services()
    rules = kiosk.rules
    presence = rules.presence(day)
    present, departed, no_departure = [], [], []
    for cadre_id, state in presence.items():
        who = person(cadre_id)
        if state.arrived is not None:
            who.arrived = hm(state.arrived)
        if state.state == "departed":
            who.departed = hm(state.since)
            who.worked = duration(state.worked) if state.worked is not None else ""
            departed.append(who)
        elif state.state == "present":
            present.append(who)
        else:
            who.since_iso = state.since.strftime("%Y-%m-%dT%H:%M")
            no_departure.append(who)
    # Yesterday's arrivals never closed are today's work for the lead too.
    for cadre_id, state in rules.presence(day - timedelta(days=1)).items():
        if state.state in ("present", "no_departure") and cadre_id not in presence:
            who = person(cadre_id)
            who.arrived = state.since.strftime("%m-%d %H:%M")
            who.since_iso = state.since.strftime("%Y-%m-%dT%H:%M")
            who.note = _("since yesterday")
            no_departure.append(who)
    absent = [person(c) for c in rules.absent(day)]
    by_name = lambda p: (p.name, p.cadre_id)  # noqa: E731
    return {
        "day": day,
        "present": sorted(present, key=by_name),
        "departed": sorted(departed, key=by_name),
        "no_departure": sorted(no_departure, key=by_name),
        "absent": sorted(absent, key=by_name),
        "arrived_count": len(present)
        + len([p for p in departed if p.arrived])
        + len([p for p in no_departure if not p.note]),
    }


@dataclass
class LogRow:
    event_id: str
    seq: int
    time: str
    when_iso: str
    cadre_id: str
    name: str
    kind: str
    kind_label: str
    source: str
    operator: str
    reason: str
    flags: str
    voided: bool
    replaced: bool
    note: str


def log_rows(events: list[Event]) -> list[LogRow]:
    kiosk = services()
    rules = kiosk.rules
    voided = {str(e.corrects) for e in events if e.kind == "void" and e.corrects}
    replaced = {str(e.corrects) for e in events if e.kind != "void" and e.corrects}
    by_id = {str(e.event_id): e for e in events}
    rows = []
    for event in sorted(events, key=lambda e: e.seq):
        when = rules.local(rules.true_time(event))
        note = ""
        if event.corrects:
            target = by_id.get(str(event.corrects))
            target_text = (
                f"{kind_text(target.kind)} {hm(rules.local(rules.true_time(target)))}"
                if target
                else str(event.corrects)[:8]
            )
            note = (
                _("voids %(what)s", what=target_text)
                if event.kind == "void"
                else _("replaces %(what)s", what=target_text)
            )
        who = person(event.cadre_id)
        rows.append(
            LogRow(
                event_id=str(event.event_id),
                seq=event.seq,
                time=hm(when),
                when_iso=when.strftime("%Y-%m-%dT%H:%M"),
                cadre_id=event.cadre_id,
                name=who.name,
                kind=event.kind,
                kind_label=kind_text(event.kind),
                source=source_text(event.source),
                operator=event.operator or "",
                reason=event.reason or "",
                flags=", ".join(flag_text(f) for f in event.flags if f != FLAG_OPERATOR_TIME),
                voided=str(event.event_id) in voided,
                replaced=str(event.event_id) in replaced,
                note=note,
            )
        )
    return rows


def parse_day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    # A day at the calendar's ends (0001-01-01) has no day before it to look at.
    if day is None or not EARLIEST_TIME.date() <= day <= LATEST_TIME.date():
        abort(400, description=_("Dates are written YYYY-MM-DD."))
    return day


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
        if kind not in ("arrival", "departure"):
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


EXPORT_COLUMNS = (
    ("date", "Date"),
    ("time", "Time"),
    ("cadre_id", "ID"),
    ("name", "Name"),
    ("unit", "Unit"),
    ("kind", "Kind"),
    ("source", "Source"),
    ("clock_trusted", "Clock trusted"),
    ("operator", "Operator"),
    ("reason", "Reason"),
    ("status", "Status"),
    ("flags", "Flags"),
    ("device_time", "Device time"),
    ("seq", "Seq"),
    ("event_id", "Event ID"),
    ("corrects", "Corrects"),
)


def _column_titles() -> list[str]:
    titles = {
        "date": _("Date"),
        "time": _("Time"),
        "cadre_id": _("ID"),
        "name": _("Name"),
        "unit": _("Unit"),
        "kind": _("Kind"),
        "source": _("Source"),
        "clock_trusted": _("Clock trusted"),
        "operator": _("Operator"),
        "reason": _("Reason"),
        "status": _("Status"),
        "flags": _("Flags"),
        "device_time": _("Device time"),
        "seq": _("Seq"),
        "event_id": _("Event ID"),
        "corrects": _("Corrects"),
    }
    return [titles[key] for key, _title in EXPORT_COLUMNS]


def export_rows(first: date, last: date) -> list[list[tabular.Cell]]:
    kiosk = services()
    rules = kiosk.rules
    rows: list[list[tabular.Cell]] = []
    day = first
    while day <= last:
        events = rules.events_of_day(day)
        voided = {str(e.corrects) for e in events if e.kind == "void" and e.corrects}
        replaced = {str(e.corrects) for e in events if e.kind != "void" and e.corrects}
        for event in sorted(events, key=lambda e: e.seq):
            when = rules.local(rules.true_time(event))
            who = person(event.cadre_id)
            status = ""
            if str(event.event_id) in voided:
                status = _("voided")
            elif str(event.event_id) in replaced:
                status = _("corrected")
            rows.append(
                [
                    day.isoformat(),
                    when.strftime("%H:%M:%S"),
                    event.cadre_id,
                    who.name if who.name != event.cadre_id else "",
                    who.unit,
                    kind_text(event.kind),
                    source_text(event.source),
                    _("yes") if event.clock_trusted else _("no"),
                    event.operator or "",
                    event.reason or "",
                    status,
                    ", ".join(flag_text(f) for f in event.flags),
                    event.device_time.isoformat(),
                    event.seq,
                    str(event.event_id),
                    str(event.corrects) if event.corrects else "",
                ]
            )
        day += timedelta(days=1)
    return rows


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
        columns=_column_titles(), rows=export_rows(first, last), title=first.isoformat()
    )
    data = tabular.to_bytes(table, fmt)  # type: ignore[arg-type]
    site = tabular.file_name_part(kiosk.settings.site_id or kiosk.settings.kiosk_id)
    name = f"checkins-{site}-{first.isoformat()}"
    if last != first:
        name += f"-to-{last.isoformat()}"
    return send_file(
        io.BytesIO(data),
        mimetype=tabular.MEDIA_TYPES[fmt],  # type: ignore[index]
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
