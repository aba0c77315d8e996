"""Logging in and out."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from central import users
from central.web import auth
from central.web.blueprint import staff
from central.web.context import state


@staff.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    if request.method == "GET":
        if auth.current_user() is not None:
            return redirect(auth.safe_next(request.args.get("next")))
        return render_template("login.html", username="", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    target = request.form.get("next", "")
    address = request.remote_addr or "unknown"
    throttle = state().throttle
    # Claimed before the password is checked: parallel guesses cannot all pass a count first.
    wait = throttle.claim(address, username)
    if wait:
        minutes = max(1, (wait + 59) // 60)
        message = gettext("Too many failed logins. Try again in %(minutes)d min.", minutes=minutes)
        page = render_template("login.html", username=username, next=target, error=message)
        return page, 429, {"Retry-After": str(wait)}
    user = users.authenticate(state().engine, username, password)
    if user is None:
        message = gettext("Wrong user name or password.")
        page = render_template("login.html", username=username, next=target, error=message)
        return page, 401
    throttle.succeeded(address, username)
    auth.log_in(user)
    return redirect(auth.safe_next(target))


@staff.route("/logout", methods=["POST"])
def logout() -> Response:
    auth.log_out()
    flash(gettext("Logged out."), "info")
    return redirect(url_for("staff.login"))
