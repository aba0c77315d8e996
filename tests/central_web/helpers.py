"""Helpers the staff page tests share (fixtures are in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Connection, insert
from werkzeug.security import generate_password_hash

from central.db import schema

PASSWORDS = {"admin": "admin password 1", "viewer": "viewer password 1"}
# Noon in Shanghai on the test day: the pages' "today" is 2026-11-29.
NOW = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)


def add_staff_accounts(conn: Connection) -> None:
    """An admin and a viewer with PASSWORDS, hashed with one PBKDF2 round: logging in is checked
    the same way without scrypt's deliberate cost in every test (test_users.py covers scrypt)."""
    for role, password in PASSWORDS.items():
        conn.execute(
            insert(schema.staff_users).values(
                username=role,
                password_hash=generate_password_hash(password, method="pbkdf2:sha256:1"),
                role=role,
                active=True,
                created_at=NOW,
            )
        )


class Clock:
    """The app's `now` seam: tests move it by hand."""

    def __init__(self, start: datetime) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value


def log_in(client: FlaskClient, role: str) -> None:
    """Log in through the real form (CSRF token taken from the page)."""
    page = client.get("/staff/login")
    token = csrf_from(page.get_data(as_text=True))
    response = client.post(
        "/staff/login",
        data={"username": role, "password": PASSWORDS[role], "csrf_token": token},
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def csrf_from(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def csrf_of(client: FlaskClient) -> str:
    """The CSRF token of the client's session, as a page shows it (the logout form of every
    page has it; a logged-in session's token is in its database row, not in the cookie)."""
    page = client.get("/staff/corrections")
    if page.status_code != 200:  # not logged in: the login form's token, kept in the cookie
        page = client.get("/staff/login")
    return csrf_from(page.get_data(as_text=True))


def run_jobs(client: FlaskClient) -> int:
    """Run every queued background job of the client's app, here and now."""
    from central.services import central_of

    return central_of(client.application).jobs.drain()


def print_badges(client: FlaskClient, **form: str) -> Any:
    """Start badge sheets through the form, run the job, and download the PDF; returns the
    download's response (or the form's answer when it did not start a job)."""
    started = client.post("/staff/badges/print", data={**form, "csrf_token": csrf_of(client)})
    if started.status_code != 303:
        return started
    run_jobs(client)
    job_url = started.headers["Location"]
    info = client.get(job_url.rstrip("/") + ".json").get_json()
    assert info["state"] == "done", info
    return client.get(info["download_url"])
