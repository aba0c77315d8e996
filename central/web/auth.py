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
from central.web.context import state

PUBLIC_ENDPOINTS = frozenset({"staff.login", "staff.static"})
SESSION_USER = "uid"
SESSION_STAMP = "ustamp"

F = TypeVar("F", bound=Callable[..., Any])


def wants_json() -> bool:
    if request.path.endswith(".json"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes.accept_html


def current_user() -> users.User | None:
    return cast("users.User | None", g.get("staff_user"))


def load_user() -> users.User | None:
    user_id = session.get(SESSION_USER)
    if not isinstance(user_id, int):
        return None
    user = users.get_user(state().engine, user_id)
    # A disabled account, or one whose password changed since this login, is logged out.
    if user is None or not user.active or session.get(SESSION_STAMP) != user.stamp:
        session.pop(SESSION_USER, None)
        return None
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


def log_in(user: users.User) -> None:
    # A fresh session on login: a session id planted before login is worth nothing after it.
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language
    session[SESSION_USER] = user.id
    session[SESSION_STAMP] = user.stamp
    session.permanent = True


def log_out() -> None:
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


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


def session_lifetime(hours: int) -> timedelta:
    return timedelta(hours=hours)
