"""The site lead's page, for a phone on the kiosk's network.

Every route of this blueprint but the login needs a session: pages redirect to the login, the
JSON API (/lead/api/...) answers 401. Every POST needs the session's CSRF token and answers once:
each form carries a one-time key (kiosk/web/forms.py), and a copy of a POST gets the first answer
again and changes nothing. The guard is one `before_request`, so a route added later cannot forget
it (tests walk the URL map to check).

The routes are all here, so the guard's reach is seen in one file; what the pages show is built in
lead_day.py (the day's people, the search, the log), lead_api.py (the JSON) and lead_export.py
(CSV and XLSX).
"""

from __future__ import annotations

import contextlib
import io
import re
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
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

from kiosk.lead_auth import PinBusy
from kiosk.rules import LeadRefusal
from kiosk.web import i18n
from kiosk.web.auth import CSRF_FIELD, check_csrf, csrf_token
from kiosk.web.common import asset_url, services
from kiosk.web.forms import API_HEADER, FORM_FIELD, MAX_API_KEY, FormKeyError, FormReceipts, Receipt
from kiosk.web.lead_api import events_answer, readiness_json, state_json
from kiosk.web.lead_day import (
    day_summary,
    find_people,
    log_page,
    offset_label,
    parse_day,
    person,
    today,
)
from kiosk.web.lead_export import export_table
from kiosk.web.present import DEFAULT_OPERATOR, hm, reason_text, refusal_text
from kiosk.web.status import clock_words, item_words, readiness
from sync import tabular
from sync.events import check_time_range

bp = Blueprint("lead", __name__, url_prefix="/lead")

PUBLIC_ENDPOINTS = frozenset({"lead.login"})
MANUAL_KINDS: tuple[Literal["arrival", "departure"], ...] = ("arrival", "departure")
MAX_EXPORT_DAYS = 92
MAX_REASON = 200
MAX_OPERATOR = 40
MAX_QUERY = 64
# What an id may be (sync/events.py `Ident`): said in words before the event schema says it.
CADRE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# The phone's clock is usually NTP-set to well under a second; the request's trip adds a little.
PHONE_UNCERTAINTY_S = 2.0
# Parts of the page a script may ask for alone (?part=NAME): the live sections, the search.
PARTS = ("live", "find")


def receipts() -> FormReceipts:
    """The kiosk's form receipts (kiosk/web/__init__.py makes them with the app)."""
    found: FormReceipts = current_app.extensions["lead_forms"]
    return found


def logged_in() -> bool:
    """A session the kiosk still lists (kiosk/lead_auth.py): not logged out, not ended by a new
    PIN, not expired, and not made from a copy of the cookie key."""
    lead = session.get("lead")
    return isinstance(lead, dict) and services().lead_auth.session_alive(lead.get("sid"))


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
    return str(lead.get("name") or DEFAULT_OPERATOR)[:MAX_OPERATOR]


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


def _words() -> dict[str, str]:
    """Words the page repeats for every person and record, translated once per request: a
    gettext call costs ~0.3 ms, and a site's lists repeat a dozen of them hundreds of times."""
    cached: dict[str, str] | None = g.get("lead_words")
    if cached is None:
        cached = {
            "reason": str(_("Reason")),
            "time": str(_("Time")),
            "time_now": str(_("Time (empty: now)")),
            "confirm": str(_("Confirm")),
            "check_in": str(_("Check in")),
            "check_out": str(_("Check out")),
            "check_in_again": str(_("Check in again")),
            "arrived": str(_("arrived %(time)s")),
            "not_on_roster": str(_("Not on this site's roster")),
            "no_departure": str(_("no departure")),
            "void": str(_("Void")),
            "void_this": str(_("Void this record")),
            "correct": str(_("Correct")),
            "kind": str(_("Kind")),
            "arrival": str(_("Arrival")),
            "departure": str(_("Departure")),
            "save_correction": str(_("Save the correction")),
            "undo_void": str(_("Undo this void")),
            "undo_button": str(_("Undo: the record counts again")),
            "present": str(_("present")),
            "departed": str(_("departed")),
            "not_arrived": str(_("not arrived")),
            "photo": str(_("Photo")),
            "at_gate": str(_("at %(gate)s")),
        }
        g.lead_words = cached
    return cached


@bp.context_processor
def _template_helpers() -> dict[str, Any]:
    kiosk = services()
    return {
        "w": _words(),
        "asset": asset_url,
        "csrf_token": csrf_token,
        "csrf_field": CSRF_FIELD,
        "form_key": receipts().issue,
        "form_key_field": FORM_FIELD,
        "site_name": kiosk.settings.site_name or kiosk.settings.site_id,
        "html_lang": i18n.html_lang(str(_current_locale())),
        "locale": str(_current_locale()),
        "photos_kept": kiosk.photos is not None,
    }


def _current_locale() -> str:
    from flask_babel import get_locale

    locale = get_locale()
    return str(locale) if locale else i18n.CHINESE


def _api_error(message: str, status: int, code: str = "") -> Response:
    body = {"error": message}
    if code:
        body["code"] = code
    response = jsonify(body)
    response.status_code = status
    return response


def _safe_next(target: str | None) -> str:
    """Only a path of this page: never an absolute URL (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/lead"):
            return target
    return url_for("lead.overview")


# ------------------------------------------------------------------ answering once


@dataclass(frozen=True)
class Answer:
    """What a lead's POST came to: the message, whether it changed anything, where to look."""

    category: Literal["ok", "error"]
    message: str
    changed: bool
    anchor: str = ""


def _target(anchor: str) -> str:
    target = _safe_next(request.form.get("next"))
    base = target.split("#", 1)[0]
    return f"{base}#{anchor}" if anchor else target


def answer_once(action: str, act: Callable[[uuid.UUID], Answer | BaseResponse]) -> BaseResponse:
    """Run `act` for the first copy of this form; answer every copy as the first was answered.

    `act` gets the id its event must have (derived from the form's key). It may return a
    response of its own (a question back to the lead): that changes nothing and is not kept."""
    store = receipts()
    key = request.form.get(FORM_FIELD, "")
    try:
        store.verify(key)
    except FormKeyError:
        flash(_("This form has expired and was not sent: fill it in again."), "error")
        return redirect(_safe_next(request.form.get("next")))
    fields = store.fields_digest(request.form)
    with store.lock:
        prior = store.get(key)
        if prior is not None and (prior.action != action or prior.fields != fields):
            flash(_("This form was sent already, with other values: nothing was changed."), "error")
            return redirect(_safe_next(request.form.get("next")))
        if prior is not None and prior.state == "done":
            flash(prior.message, prior.category)
            return redirect(prior.target)
        event_id = store.event_id(key)
        if prior is not None and services().log.find(event_id) is not None:
            # The kiosk stopped between recording and answering: the record is there.
            answer: Answer | BaseResponse = Answer("ok", _("This was recorded already."), True)
        else:
            store.put(Receipt(store.digest(key), action, fields, "pending", time.time()))
            try:
                answer = act(event_id)
            except BaseException:
                store.forget(key)
                raise
        if not isinstance(answer, Answer):
            store.forget(key)
            return answer
        target = _target(answer.anchor)
        if answer.changed:
            store.put(
                Receipt(
                    store.digest(key),
                    action,
                    fields,
                    "done",
                    time.time(),
                    category=answer.category,
                    message=answer.message,
                    target=target,
                )
            )
        else:
            store.forget(key)
    flash(answer.message, answer.category)
    return redirect(target)


# ------------------------------------------------------------------ login


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | tuple[str, int] | str:
    kiosk = services()
    auth, guard = kiosk.lead_auth, kiosk.pin_guard
    pin_set = auth.pin_set
    address = request.remote_addr
    if request.method == "GET":
        if logged_in():
            return redirect(_safe_next(request.args.get("next")))
        locked = guard.locked_for_s(address)
        return render_template("lead_login.html", pin_set=pin_set, locked_for=locked, error="")
    if not pin_set:
        return render_template("lead_login.html", pin_set=False, locked_for=0, error=""), 403
    attempt = guard.begin(address)
    if attempt.status == "locked":
        return _locked_page(attempt.locked_for_s)
    store = receipts()
    key = request.form.get(FORM_FIELD, "")
    try:
        store.verify(key)
    except FormKeyError:
        key = ""  # an old login page (or a script): checked as before, just not answered once
    # With a key, two copies of one login are answered one after the other, the copy with the
    # first answer; without one there is nothing to answer once, and no reason to wait in line.
    with store.lock if key else contextlib.nullcontext():
        prior = store.get(key) if key else None
        if prior is not None and prior.action == "login" and prior.state == "done":
            # A copy of a login whose PIN was wrong: the same answer, not another failure.
            guard.cancel(address)
            error = prior.message
            return (
                render_template("lead_login.html", pin_set=True, locked_for=0, error=error),
                prior.status,
            )
        try:
            good = auth.verify_pin(request.form.get("pin", ""))
        except BaseException as exc:
            guard.cancel(address)  # nothing was checked: not a guess
            if not isinstance(exc, PinBusy):
                raise
            error = _("The kiosk is busy: try again in a moment.")
            return render_template("lead_login.html", pin_set=True, locked_for=0, error=error), 503
        result = guard.finish(address, good)
        if result.status == "wrong" and key:
            error = _("Wrong PIN. %(n)d tries left before the login locks.", n=result.attempts_left)
            store.put(
                Receipt(
                    store.digest(key), "login", "", "done", time.time(), "error", error, status=401
                )
            )
    if good:
        name = plain_text(request.form.get("name", ""))[:MAX_OPERATOR]
        old = session.get("lead")
        if isinstance(old, dict):
            auth.end_session(old.get("sid"))
        session.clear()
        session.permanent = True
        session["lead"] = {"sid": auth.open_session(name), "name": name, "at": int(time.time())}
        csrf_token()  # a fresh token for the new session
        return redirect(_safe_next(request.form.get("next")))
    if result.status == "locked":
        return _locked_page(result.locked_for_s)
    error = _("Wrong PIN. %(n)d tries left before the login locks.", n=result.attempts_left)
    return render_template("lead_login.html", pin_set=True, locked_for=0, error=error), 401


def _locked_page(locked_for_s: float) -> tuple[str, int]:
    error = _(
        "Too many wrong PINs: the login is locked for %(minutes)d min.",
        minutes=max(1, round(locked_for_s / 60)),
    )
    page = render_template("lead_login.html", pin_set=True, locked_for=locked_for_s, error=error)
    return page, 429


@bp.post("/logout")
def logout() -> BaseResponse:
    lead = session.get("lead")
    if isinstance(lead, dict):
        services().lead_auth.end_session(lead.get("sid"))
    session.clear()
    return redirect(url_for("lead.login"))


# ------------------------------------------------------------------ what the pages show


def _before_arg() -> int | None:
    text = request.args.get("before", "")
    return int(text) if text.isdigit() and len(text) < 19 else None


def _query_arg(name: str) -> str:
    return plain_text(request.args.get(name, ""))[:MAX_QUERY]


@bp.get("/")
def overview() -> str:
    day = parse_day(request.args.get("day"), today())
    summary = day_summary(day)
    query = _query_arg("q")
    found, found_count = find_people(query, summary)
    part = request.args.get("part", "")
    context: dict[str, Any] = {
        "summary": summary,
        "query": query,
        "found": found,
        "found_count": found_count,
        "unknown_id": _unknown_id(query, found),
        "today": today(),
        "operator": operator(),
    }
    if part == "find":
        return render_template("lead_find.html", **context)
    context.update(
        log=log_page(day, _query_arg("log_q"), _before_arg()),
        readiness=[(item, *item_words(item)) for item in readiness(services())],
        offset=offset_label(services().keeper.read().shown),
        state=state_json(),
    )
    if part == "live":
        return render_template("lead_live.html", **context)
    return render_template("lead.html", **context)


def _unknown_id(query: str, found: list[Any]) -> str:
    """A search that looks like an id and finds nobody: offered as an id to check in anyway."""
    text = query.strip()
    if not found and CADRE_ID.match(text) and services().roster.current.entry(text) is None:
        return text
    return ""


@bp.get("/absent")
def absent_list() -> str:
    """The day's absent people, to print (or save as PDF) and take round."""
    day = parse_day(request.args.get("day"), today())
    summary = day_summary(day)
    now = services().rules.local(services().keeper.read().shown)
    roster = services().roster.current
    return render_template(
        "lead_absent.html",
        summary=summary,
        printed=now.strftime("%Y-%m-%d %H:%M"),
        offset=offset_label(now),
        expected=sum(1 for c in roster.cadres if roster.on_site(c)),
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


def _refused(exc: Exception) -> str:
    if isinstance(exc, LeadRefusal):
        return refusal_text(exc.code)
    return str(exc)


@bp.post("/manual")
def manual() -> BaseResponse:
    return answer_once("manual", _record_manual)


def _record_manual(event_id: uuid.UUID) -> Answer | BaseResponse:
    kiosk = services()
    cadre_id = request.form.get("cadre_id", "").strip()
    kind = request.form.get("kind")
    anchor = f"p-{cadre_id}" if CADRE_ID.match(cadre_id) else ""
    try:
        if kind not in MANUAL_KINDS:
            raise ValueError(_("Choose check-in or check-out."))
        if not cadre_id:
            raise ValueError(_("Choose a person."))
        if not CADRE_ID.match(cadre_id):
            raise ValueError(
                _("An ID is 1 to 64 letters, digits and . _ : - (no spaces): check it.")
            )
        reason = _reason()
        at = _time_field()
        roster = kiosk.roster.current
        if roster.entry(cadre_id) is None and request.form.get("confirm_unknown") != "1":
            # Not on this site's roster: a typo would make a stranger present. Ask first.
            return _confirm_unknown(cadre_id, kind)
        outcome = kiosk.rules.manual(
            cadre_id, kind, operator=operator(), reason=reason, at=at, event_id=event_id
        )
    except ValueError as exc:
        return Answer("error", _refused(exc), False, anchor)
    who = person(cadre_id)
    if outcome.event is None:
        return Answer("error", reason_text(outcome.reason, outcome.message), False, anchor)
    kiosk.after_lead_event(outcome.event)
    when = hm(outcome.time_shown)
    if kind == "arrival":
        text = _("%(name)s checked in by hand at %(time)s.", name=who.name, time=when)
    else:
        text = _("%(name)s checked out by hand at %(time)s.", name=who.name, time=when)
    # Back to the person, now in the list they moved to (present, departed...).
    return Answer("ok", text, True, anchor)


def _confirm_unknown(cadre_id: str, kind: str) -> BaseResponse:
    fields = {k: v for k, v in request.form.items() if k not in (CSRF_FIELD, FORM_FIELD)}
    page = render_template(
        "lead_confirm.html",
        cadre_id=cadre_id,
        kind=kind,
        fields=fields,
        back=_safe_next(request.form.get("next")),
    )
    return Response(page, status=200, mimetype="text/html")


@bp.post("/void")
def void() -> BaseResponse:
    def act(new_id: uuid.UUID) -> Answer:
        kiosk = services()
        target = request.form.get("event_id", "")
        try:
            event = kiosk.rules.void(target, operator=operator(), reason=_reason(), new_id=new_id)
        except (ValueError, LookupError) as exc:
            return Answer("error", _refused(exc), False, "log")
        except OSError as exc:
            return Answer("error", _("Not recorded: %(problem)s", problem=str(exc)), False, "log")
        kiosk.after_lead_event(event)
        target_event = kiosk.log.find(target)
        undo = target_event is not None and target_event.kind == "void"
        who = person(event.cadre_id).name
        text = (
            _("Void undone: the record of %(name)s counts again.", name=who)
            if undo
            else _("Record of %(name)s voided.", name=who)
        )
        return Answer("ok", text, True, f"ev-{event.seq}")

    return answer_once("void", act)


@bp.post("/correct")
def correct() -> BaseResponse:
    def act(new_id: uuid.UUID) -> Answer:
        kiosk = services()
        kind = request.form.get("kind") or None
        try:
            if kind not in (None, "arrival", "departure"):
                raise ValueError(_("Choose check-in or check-out."))
            event = kiosk.rules.correct(
                request.form.get("event_id", ""),
                operator=operator(),
                reason=_reason(),
                kind=kind,  # type: ignore[arg-type]
                at=_time_field(),
                new_id=new_id,
            )
        except (ValueError, LookupError) as exc:
            return Answer("error", _refused(exc), False, "log")
        except OSError as exc:
            return Answer("error", _("Not recorded: %(problem)s", problem=str(exc)), False, "log")
        kiosk.after_lead_event(event)
        who = person(event.cadre_id).name
        return Answer("ok", _("Record of %(name)s corrected.", name=who), True, f"ev-{event.seq}")

    return answer_once("correct", act)


def _set_clock(phone_ms: Any) -> tuple[str, str]:
    """Learn the phone's time; the answer says what the kiosk's clock follows now, as a code
    (set_from_phone, kept_ntp, kept_centre) and in words."""
    try:
        value = int(phone_ms)
        phone_time = datetime.fromtimestamp(value / 1000, UTC)
        check_time_range(phone_time)
    except (TypeError, ValueError, OverflowError, OSError):
        raise ValueError(_("The phone did not send its time.")) from None
    kiosk = services()
    anchor = kiosk.keeper.learn(phone_time, "lead_phone", uncertainty_s=PHONE_UNCERTAINTY_S)
    kiosk.publish_status()
    reading = kiosk.keeper.read()
    apart = abs((phone_time - reading.shown).total_seconds())
    if reading.trusted and reading.source == "ntp":
        return "kept_ntp", str(
            _(
                "The kiosk's clock is synchronised with network time, so it was left as it is "
                "(this phone differs by %(n)d s).",
                n=round(apart),
            )
        )
    if anchor.source != "lead_phone":
        return "kept_centre", str(
            _(
                "The kiosk's clock already follows the centre's time, which is more precise, so "
                "it was left as it is (this phone differs by %(n)d s).",
                n=round(apart),
            )
        )
    if reading.trusted:
        return "set_from_phone", str(
            _("The kiosk's clock agrees with this phone's time and is trusted now.")
        )
    state = clock_words(kiosk)["long_text"]
    return "set_from_phone", str(_("Kiosk clock set from this phone: %(state)s.", state=state))


@bp.post("/clock")
def set_clock() -> BaseResponse:
    def act(_event_id: uuid.UUID) -> Answer:
        try:
            _code, text = _set_clock(request.form.get("phone_time_ms"))
            return Answer("ok", text, True, "readiness")
        except ValueError as exc:
            return Answer("error", str(exc), False, "readiness")

    return answer_once("clock", act)


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
    data = tabular.to_bytes(export_table(first, last), fmt)
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

    def people(key: str) -> list[dict[str, Any]]:
        return [p.as_json() for p in summary[key]]

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


@bp.get("/api/people")
def api_people() -> Response:
    """The roster search: people the query finds by characters, id, pinyin or initials."""
    day = parse_day(request.args.get("day"), today())
    found, count = find_people(_query_arg("q"), day_summary(day))
    return jsonify(
        {"query": _query_arg("q"), "count": count, "people": [p.as_json() for p in found]}
    )


@bp.get("/api/site")
def api_site() -> Response:
    """The site's other gates: each peer's state and how far behind, and the conflicts late
    records showed (codes and ISO times)."""
    peers = services().peers
    if peers is None:
        return jsonify({"peers": [], "conflicts": []})
    return jsonify(
        {
            "peers": [
                {
                    "kiosk_id": s.kiosk_id,
                    "address": s.address,
                    "state": s.state,
                    "reachable": s.reachable,
                    "behind": s.behind,
                    "known_seq": s.known_seq,
                    "detail": s.detail,
                }
                for s in peers.link.status()
            ],
            "conflicts": [c.as_json() for c in peers.store.conflicts()],
        }
    )


@bp.get("/api/readiness")
def api_readiness() -> Response:
    return jsonify(readiness_json())


@bp.get("/api/state")
def api_state() -> Response:
    """What the page polls to know whether to fetch itself again: small and cheap."""
    return jsonify(state_json())


@bp.get("/api/events")
def api_events() -> Response:
    try:
        return jsonify(events_answer(request.args))
    except ValueError as exc:
        return _api_error(str(exc), 400)


@bp.post("/api/clock")
def api_clock() -> Response:
    """Set the clock from a program: an Idempotency-Key header makes a retry answer the same."""
    key = request.headers.get(API_HEADER, "").strip()
    if not key or len(key) > MAX_API_KEY:
        return _api_error(
            _("Send an Idempotency-Key header (any unique text) with the request."), 400
        )
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return _api_error(_("Send a JSON object."), 400)
    store = receipts()
    api_key = "api:" + key
    fields = store.fields_digest({"phone_time_ms": data.get("phone_time_ms")})
    with store.lock:
        prior = store.get(api_key)
        if prior is not None:
            if prior.fields != fields:
                return _api_error(_("This Idempotency-Key was used for other values."), 409)
            response = jsonify(prior.body)
            response.status_code = prior.status
            return response
        try:
            outcome, _text = _set_clock(data.get("phone_time_ms"))
        except ValueError as exc:
            return _api_error(str(exc), 400)
        reading = services().keeper.read()
        body = {
            "outcome": outcome,
            "clock": {
                "source": reading.source,
                "trusted": reading.trusted,
                "offset_s": round(reading.offset.total_seconds(), 3),
                "now": reading.shown.astimezone(UTC).isoformat(timespec="milliseconds"),
            },
        }
        store.put(
            Receipt(store.digest(api_key), "api_clock", fields, "done", time.time(), body=body)
        )
    return jsonify(body)
