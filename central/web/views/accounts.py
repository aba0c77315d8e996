"""Staff accounts in the browser (admins only): add, disable or enable, reset a password, change
the role. The same rules as `central user ...` (central/users.py); an admin cannot disable or
demote their own account from here, so nobody locks the centre out by a slip."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from central import users
from central.web.auth import admin_required, current_user
from central.web.blueprint import staff
from central.web.context import state


@staff.route("/accounts")
@admin_required
def accounts() -> str:
    return render_template(
        "accounts.html",
        section="accounts",
        accounts=users.list_users(state().engine),
        roles=users.ROLES,
        min_password=users.MIN_PASSWORD_LENGTH,
    )


def _back() -> Response:
    return redirect(url_for("staff.accounts"))


def _refused(message: str) -> Response:
    flash(message, "error")
    return _back()


def _said(error: users.UserError) -> str:
    """A UserError in the page's language (its English text names the rule broken)."""
    text = str(error)
    if "too short" in text:
        return str(
            gettext(
                "The password is too short: at least %(n)d characters.",
                n=users.MIN_PASSWORD_LENGTH,
            )
        )
    if "already exists" in text:
        return str(gettext("This user name is taken."))
    if "user name" in text:
        return str(gettext("User name: 1-64 letters, digits or . _ @ - (no spaces)."))
    if "last admin" in text:
        return str(gettext("The last administrator keeps the role."))
    if "role" in text:
        return str(gettext("Choose a role."))
    return str(gettext("No such account."))


@staff.route("/accounts", methods=["POST"])
@admin_required
def account_add() -> Response:
    form = request.form
    name = form.get("username", "").strip()
    password = form.get("password", "")
    if password != form.get("password_again", ""):
        return _refused(str(gettext("The two passwords differ.")))
    try:
        users.add_user(state().engine, name, password, form.get("role", ""))
    except users.UserError as exc:
        return _refused(_said(exc))
    flash(gettext("Account %(name)s added.", name=name), "ok")
    return _back()


def _not_self(name: str) -> bool:
    me = current_user()
    return me is not None and me.username != name


@staff.route("/accounts/<name>/active", methods=["POST"])
@admin_required
def account_active(name: str) -> Response:
    active = request.form.get("active") == "1"
    if not active and not _not_self(name):
        return _refused(str(gettext("You cannot disable your own account.")))
    try:
        users.set_active(state().engine, name, active)
    except users.UserError as exc:
        return _refused(_said(exc))
    if active:
        flash(gettext("Account %(name)s enabled.", name=name), "ok")
    else:
        flash(gettext("Account %(name)s disabled: its sessions have ended.", name=name), "ok")
    return _back()


@staff.route("/accounts/<name>/password", methods=["POST"])
@admin_required
def account_password(name: str) -> Response:
    password = request.form.get("password", "")
    if password != request.form.get("password_again", ""):
        return _refused(str(gettext("The two passwords differ.")))
    try:
        users.set_password(state().engine, name, password)
    except users.UserError as exc:
        return _refused(_said(exc))
    flash(gettext("New password set for %(name)s: its sessions have ended.", name=name), "ok")
    return _back()


@staff.route("/accounts/<name>/role", methods=["POST"])
@admin_required
def account_role(name: str) -> Response:
    if not _not_self(name):
        return _refused(str(gettext("You cannot change your own role.")))
    try:
        users.set_role(state().engine, name, request.form.get("role", ""))
    except users.UserError as exc:
        return _refused(_said(exc))
    flash(gettext("Role of %(name)s changed.", name=name), "ok")
    return _back()
