"""Who is logged in, and the gate every staff route passes through.

The blueprint's before_request calls `gate()`: a route is public only when its endpoint is in
PUBLIC_ENDPOINTS, so a new page is protected without anyone remembering a decorator. Without a
login, JSON routes answer 401 and pages redirect to the login page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import abort, g, jsonify, redirect, request, session, url_for
from werkzeug.wrappers import Response

from central import users
from central.services import utc_now
from central.web import sessions
from central.web.context import state

PUBLIC_ENDPOINTS = frozenset({"staff.login", "staff.static"})
# The signed cookie holds only this token (and the language, and before login a CSRF token);
# the session itself is a row of staff_sessions (central/web/sessions.py).
SESSION_TOKEN = "sid"

F = TypeVar("F", bound=Callable[..., Any])


def wants_json() -> bool:
    if request.path.endswith(".json"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes.accept_html


def current_user() -> users.User | None:
    return cast("users.User | None", g.get("staff_user"))


# Sessions and the login throttle keep real time, not the application's clock (`Central.now`, a
# seam tests move by days to look at other service days): a session's life is the user's.


def _lifetime() -> timedelta:
    return timedelta(hours=state().settings.session_hours)


def load_user() -> users.User | None:
    """The user of this request's session, found in the database by any process."""
    token = session.get(SESSION_TOKEN)
    if token is None:
        return None
    found = sessions.find(state().engine, token, utc_now(), _lifetime())
    user = None if found is None else users.get_user(state().engine, found.user_id)
    # Logged out (here or on another process), expired, or the account disabled since.
    if found is None or user is None or not user.active:
        session.pop(SESSION_TOKEN, None)
        return None
    g.staff_session = found
    return user


def gate() -> Response | None:
    g.staff_user = load_user()
    if request.endpoint in PUBLIC_ENDPOINTS or g.staff_user is not None:
        return None
    if wants_json():
        response = jsonify(error="login required")
        response.status_code = 401
        return response
    return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))


def _fresh_cookie() -> None:
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


def log_in(user: users.User) -> None:
    # A fresh session on login: a session id planted before login is worth nothing after it.
    token, opened = sessions.open_session(state().engine, user.id, utc_now(), _lifetime())
    _fresh_cookie()
    session[SESSION_TOKEN] = token
    session.permanent = True
    g.staff_session = opened


def log_out() -> None:
    """End this session on every process: the cookie, or any copy of it, opens nothing again."""
    sessions.end(state().engine, session.get(SESSION_TOKEN))
    _fresh_cookie()
    g.pop("staff_session", None)


def admin_required(view: F) -> F:
    """Only admins: viewers get 403 (roster import, badges, kiosks, corrections)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None or not user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path on this site, never another host."""
    if not target:
        return url_for("staff.overview")
    parts = urlsplit(target)
    # Browsers read "/\\host" as "//host": a backslash anywhere is refused, like a scheme or host.
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return url_for("staff.overview")
    return target
