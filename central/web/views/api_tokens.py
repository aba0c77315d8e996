"""API tokens of the read API in the browser (admins only): make one with its scopes (shown
once, on the answer to the form, never again), revoke one. The same rules as
`central api-token ...` (central/readapi/tokens.py)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from central.readapi import tokens
from central.services import utc_now
from central.web.auth import admin_required, current_user
from central.web.blueprint import staff
from central.web.context import state


def _page(made: tuple[tokens.ApiToken, str] | None = None) -> str:
    with state().engine.connect() as conn:
        listed = tokens.list_tokens(conn)
    return render_template(
        "api_tokens.html",
        section="accounts",
        tokens=listed,
        scopes=tokens.SCOPES,
        made=made,
    )


@staff.route("/api-tokens")
@admin_required
def api_tokens() -> str:
    return _page()


def _said(error: tokens.TokenError) -> str:
    text = str(error)
    if "already exists" in text:
        return str(gettext("This token name is taken."))
    if "scope" in text:
        return str(gettext("Choose at least one scope."))
    if "no active token" in text:
        return str(gettext("No such active token."))
    return str(gettext("Token name: 1-64 letters, digits or . _ - (no spaces)."))


@staff.route("/api-tokens", methods=["POST"])
@admin_required
def api_token_add() -> Response | str:
    user = current_user()
    assert user is not None
    try:
        made = tokens.add_token(
            state().engine,
            request.form.get("name", "").strip(),
            request.form.getlist("scope"),
            user.username,
            utc_now().replace(tzinfo=None),
        )
    except tokens.TokenError as exc:
        flash(_said(exc), "error")
        return redirect(url_for("staff.api_tokens"))
    # The clear token is in this answer only: not in a flash (the cookie) nor a redirect.
    return _page(made)


@staff.route("/api-tokens/<name>/revoke", methods=["POST"])
@admin_required
def api_token_revoke(name: str) -> Response:
    user = current_user()
    assert user is not None
    try:
        tokens.revoke_token(state().engine, name, user.username, utc_now().replace(tzinfo=None))
    except tokens.TokenError as exc:
        flash(_said(exc), "error")
    else:
        flash(gettext("Token %(name)s revoked: it opens nothing from now on.", name=name), "ok")
    return redirect(url_for("staff.api_tokens"))
