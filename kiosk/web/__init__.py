"""The kiosk's pages: the kiosk screen (screen.py) and the site lead's page (lead.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, redirect, render_template, request, url_for
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from kiosk.web import i18n
from kiosk.web.common import asset_url
from kiosk.web.forms import RECEIPTS_FILE, FormReceipts
from sync.web_security import security_headers


def _wants_json() -> bool:
    if request.path.startswith(("/lead/api/", "/screen/")) or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _error_title(code: int) -> str:
    titles = {
        400: _("Bad request"),
        401: _("Log in first"),
        403: _("Not allowed"),
        404: _("Not found"),
        405: _("Not allowed"),
        409: _("Not possible now"),
        413: _("Too large"),
        429: _("Too many attempts"),
        500: _("Something went wrong"),
        501: _("Not available"),
        503: _("Not ready"),
    }
    return str(titles.get(code, _("Something went wrong")))


class BodyJSONProvider(DefaultJSONProvider):
    """Flask's JSON, but a body nested too deeply to parse is malformed JSON (a ValueError, so
    `get_json(silent=True)` gives None and the route refuses it), not a RecursionError (a 500)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc


def register(app: Flask) -> None:
    from kiosk.web import lead_photos  # noqa: F401  (its routes join the lead's blueprint)
    from kiosk.web.lead import bp as lead_bp
    from kiosk.web.peers import bp as peers_bp
    from kiosk.web.screen import bp as screen_bp

    kiosk = app.extensions["kiosk"]
    app.extensions["lead_forms"] = FormReceipts(
        Path(kiosk.instance) / RECEIPTS_FILE, kiosk.secret_key
    )
    app.json = BodyJSONProvider(app)
    app.register_blueprint(screen_bp)
    app.register_blueprint(lead_bp)
    app.register_blueprint(peers_bp)

    @app.get("/lang/<code>")
    def set_language(code: str) -> BaseResponse:
        """The lead page's language link; remembered in a cookie for a year."""
        target = request.args.get("next", "")
        if not target.startswith("/lead") or "//" in target:
            target = url_for("lead.overview")
        response = redirect(target)
        if code in i18n.SUPPORTED:
            response.set_cookie(
                i18n.LANG_COOKIE, code, max_age=365 * 86400, samesite="Lax", httponly=True
            )
        return response

    @app.after_request
    def _security_headers(response: Response) -> Response:
        # Every page but the served files shows names or a login: no copy kept anywhere.
        for name, value in security_headers(no_store=request.endpoint != "static").items():
            response.headers.setdefault(name, value)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | tuple[str, int]:
        code = exc.code or 500
        # werkzeug's own descriptions are English prose; ours (given to abort()) are translated.
        ours = exc.description if exc.description != type(exc).description else ""
        if ours == "csrf":
            ours = _("This form has expired: go back, reload the page and try again.")
        message = ours or _error_title(code)
        if _wants_json():
            response = jsonify({"error": message})
            response.status_code = code
            return response
        return (
            render_template(
                "error.html",
                code=code,
                title=_error_title(code),
                message=message,
                asset=asset_url,
                html_lang=i18n.html_lang(i18n.select_locale()),
            ),
            code,
        )
