"""The `staff` blueprint: every central staff page hangs off it, behind one login gate."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request, session
from flask_babel import get_locale
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from central.web import anomaly_messages, auth, formatting, i18n, labels, once
from central.web.context import state
from central.web.security import check_csrf, csrf_token
from sync.web_security import security_headers

staff = Blueprint(
    "staff",
    __name__,
    url_prefix="/staff",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


# Every staff form but a roster file is small; the limit is set before anything reads the body,
# so a big one is refused (413) instead of being spooled to the server's temp folder.
FORM_MAX_BYTES = 1024 * 1024
UPLOAD_ENDPOINTS = frozenset({"staff.roster_import"})


def _holds_nul() -> bool:
    """Whether the path, the query or a form field holds a NUL character: PostgreSQL text
    cannot, so such a request is refused here instead of failing deep in a query."""
    texts = [request.path]
    for fields in (request.args, request.form):
        for key, values in fields.lists():
            texts += [key, *values]
    texts += [upload.filename or "" for upload in request.files.values()]
    return any("\x00" in text for text in texts)


@staff.before_request
def _before() -> Response | None:
    request.max_content_length = (
        state().settings.roster_max_upload_bytes
        if request.endpoint in UPLOAD_ENDPOINTS
        else FORM_MAX_BYTES
    )
    if _holds_nul():
        abort(400)
    chosen = i18n.normalise(request.args.get("lang"))
    if chosen:
        session[i18n.SESSION_KEY] = chosen
    denied = auth.gate()
    if denied is not None:
        return denied
    check_csrf()
    user = auth.current_user()
    if user is not None:
        return once.claim(user.username)
    return None


@staff.after_request
def _after(response: Response) -> Response:
    response = once.settle(response)
    # Pages show personal data: never cached by a shared proxy, never framed by another site.
    for name, value in security_headers(no_store=request.endpoint != "staff.static").items():
        response.headers.setdefault(name, value)
    return response


@staff.app_template_global()
def staff_csrf_token() -> str:
    return csrf_token()


staff.add_app_template_global(once.form_fields, "staff_form_fields")
staff.teardown_request(once.give_back)


@staff.context_processor
def _layout_values() -> dict[str, object]:
    locale = get_locale() or "zh_CN"
    return {
        "current_user": auth.current_user(),
        "html_lang": i18n.html_lang(locale),
        "locale": i18n.short_name(locale),
        "zone_note": formatting.zone_note(),
    }


def _error_page(error: HTTPException) -> tuple[str | Response, int]:
    code = error.code or 500
    if auth.wants_json():
        return Response(f'{{"error": "{code}"}}', status=code, mimetype="application/json"), code
    return render_template("error.html", code=code, description=error.description), code


for _code in (400, 403, 404, 405, 413):
    staff.register_error_handler(_code, _error_page)

formatting.register(staff)
staff.add_app_template_global(labels.label, "label")
staff.add_app_template_filter(anomaly_messages.explain, "explain")
staff.add_app_template_global(anomaly_messages.kind_label, "anomaly_label")
staff.add_app_template_global(anomaly_messages.kind_class, "anomaly_class")
