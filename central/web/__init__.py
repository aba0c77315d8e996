"""Central staff pages: the `staff` blueprint and how the application takes it on.

`init_app(app)` registers the blueprint under /staff and sets up the session cookie, the
language and the login throttle; central/app.py calls it once after `app.extensions["central"]`
is in place.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Flask, redirect, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from central.services import central_of
from central.web import i18n
from central.web.blueprint import staff
from central.web.context import new_state
from central.web.indexes import ensure_indexes
from central.web.security import SECRET_FILE, load_or_create_secret
from central.web.shared_overview import SharedFigures
from central.web.views import load_views
from central.web.views.live import overview_figures

__all__ = ["init_app"]


def init_app(app: Flask) -> None:
    load_views()
    central = central_of(app)
    settings = central.settings
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_or_create_secret(central.instance / SECRET_FILE)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        SESSION_COOKIE_NAME="central_session",
        PERMANENT_SESSION_LIFETIME=settings.session_hours * 3600,
    )
    if settings.trusted_proxies and not isinstance(app.wsgi_app, ProxyFix):
        # Behind nginx the client address and scheme come from its headers; without this the
        # login throttle would count every staff member as one address (the proxy's).
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    ensure_indexes(central.engine)
    staff_state = new_state(central)

    def work_out(day: date) -> Any:
        # Also from the refreshing thread, which has no application context of its own.
        with app.app_context():
            return overview_figures(day)

    staff_state.overview = SharedFigures(work_out, settings.overview_refresh_s)
    app.extensions["staff"] = staff_state
    i18n.init_babel(app, settings.language)
    app.register_blueprint(staff)
    if not any(rule.rule == "/" for rule in app.url_map.iter_rules()):
        app.add_url_rule("/", "staff_root", lambda: redirect(url_for("staff.overview")))
