"""One-time form tokens: every state-changing staff form is done once, however often it is sent.

Each form a page renders carries a fresh random `form_token` beside its CSRF token. The first
request with a token claims it (a row in `form_submissions`, unique on the token, so two
processes or two threads racing on one token cannot both win); the view runs; its answer's
destination is stored with the claim. A second request with the same token (a double click, a
reload of the POST's answer, a browser's resend) does nothing and is sent where the first one
ended, with a note. An answer that refused the form (4xx/5xx, or a redirect with an error
message) gives the token back, so the corrected form may be sent again.

A request without a token (a script) is processed as before: the token is the pages' promise,
and tests/central_web/test_once.py checks that every POST form of every template carries one.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import abort, flash, g, redirect, request, session
from flask_babel import gettext
from markupsafe import Markup, escape
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from central.db.schema import form_submissions
from central.web.context import state
from central.web.security import CSRF_FORM_FIELD, UNSAFE_METHODS, csrf_token

FIELD = "form_token"
HEADER = "X-Form-Token"
TOKEN_MAX = 64
TOKEN_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{1,{TOKEN_MAX}}}")
# Logging in or out twice is harmless and must never be refused.
EXEMPT_ENDPOINTS = frozenset({"staff.login", "staff.logout", "staff.static"})
KEEP = timedelta(days=3)


def new_token() -> str:
    return secrets.token_urlsafe(24)


def form_fields() -> Markup:
    """The hidden fields every staff POST form carries: the session's CSRF token and a fresh
    one-time form token."""
    return Markup(
        f'<input type="hidden" name="{CSRF_FORM_FIELD}" value="{escape(csrf_token())}">'
        f'<input type="hidden" name="{FIELD}" value="{new_token()}">'
    )


def _now() -> datetime:
    return state().now().astimezone(UTC).replace(tzinfo=None)


def _local_path(url: str | None) -> str | None:
    """A path on this site from a Location or Referer, else None (never another host)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.netloc and parts.netloc != request.host:
        return None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if not path.startswith("/staff") or "\\" in path:
        return None
    return path


def claim(username: str) -> Response | None:
    """Before a state-changing view: claim the request's token, or answer a repeat."""
    if request.method not in UNSAFE_METHODS or request.endpoint in EXEMPT_ENDPOINTS:
        return None
    token = request.form.get(FIELD) or request.headers.get(HEADER) or ""
    if not token:
        return None
    if not TOKEN_SHAPE.fullmatch(token):
        # Not one of ours (new_token: URL-safe base64). Said before the database sees it:
        # PostgreSQL refuses a NUL in text, which was an HTTP 500 (found by bench/fuzz.py).
        abort(400)
    now = _now()
    engine = state().engine
    try:
        with engine.begin() as conn:
            conn.execute(delete(form_submissions).where(form_submissions.c.claimed_at < now - KEEP))
            conn.execute(
                insert(form_submissions).values(
                    token=token,
                    username=username,
                    endpoint=(request.endpoint or "")[:80],
                    claimed_at=now,
                    done=False,
                )
            )
    except IntegrityError:
        return _repeat(token)
    g.form_token = token
    g.form_errors_before = _error_flashes()
    return None


def _error_flashes() -> int:
    return sum(1 for category, _ in session.get("_flashes", []) if category == "error")


def _repeat(token: str) -> Response:
    with state().engine.connect() as conn:
        row = conn.execute(
            select(form_submissions.c.done, form_submissions.c.result_url).where(
                form_submissions.c.token == token
            )
        ).first()
    if row is not None and row.done:
        flash(gettext("This form was sent twice: it was done once, nothing more."), "info")
        target = row.result_url
    else:
        flash(gettext("This form is already being saved: wait a moment and look again."), "info")
        target = None
    return redirect(target or _local_path(request.referrer) or "/staff/", code=303)


def settle(response: Response) -> Response:
    """After the view: keep the claim with where its answer leads, or give it back."""
    token = g.pop("form_token", None)
    if token is None:
        return response
    engine = state().engine
    with engine.begin() as conn:
        # Refused (an error answer, or a redirect back with an error message): nothing was
        # done, so the same form may be sent again once it is put right.
        refused = _error_flashes() > g.pop("form_errors_before", 0)
        if response.status_code >= 400 or refused:
            conn.execute(delete(form_submissions).where(form_submissions.c.token == token))
        else:
            target = (
                _local_path(response.headers.get("Location"))
                if 300 <= response.status_code < 400
                else _local_path(request.referrer)
            )
            conn.execute(
                update(form_submissions)
                .where(form_submissions.c.token == token)
                .values(done=True, result_url=target)
            )
    return response


def give_back(_error: BaseException | None) -> None:
    """A view that raised did nothing the user can see: the token may be used again."""
    token = g.pop("form_token", None)
    if token is None:
        return
    with state().engine.begin() as conn:
        conn.execute(delete(form_submissions).where(form_submissions.c.token == token))
