"""Admins make and revoke API tokens on a staff page and with `central api-token`; viewers
cannot; a token is shown once."""

from __future__ import annotations

import re

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from central.app import create_app
from central.cli import main as central_cli
from central.settings import CentralSettings
from tests.central_api.helpers import read
from tests.central_web.helpers import csrf_of


def _shown_token(html: str) -> str:
    found = re.search(r'<code id="new-token">(cit_[A-Za-z0-9_-]+)</code>', html)
    assert found, html
    return found.group(1)


def test_an_admin_makes_a_token_on_the_page_and_it_reads_only_its_scopes(
    app: Flask, admin: FlaskClient
) -> None:
    page = admin.get("/staff/api-tokens?lang=zh_CN")
    assert page.status_code == 200 and "API 令牌" in page.get_data(as_text=True)
    made = admin.post(
        "/staff/api-tokens",
        data={"name": "hr-system", "scope": ["attendance", "kiosks"], "csrf_token": csrf_of(admin)},
    )
    assert made.status_code == 200
    token = _shown_token(made.get_data(as_text=True))
    client = app.test_client()
    assert read(client, "kiosks", token).status_code == 200
    assert read(client, "events", token).status_code == 403
    # Shown once: the list shows the name and scopes, never the token again.
    listed = admin.get("/staff/api-tokens").get_data(as_text=True)
    assert "hr-system" in listed and token not in listed
    revoked = admin.post("/staff/api-tokens/hr-system/revoke", data={"csrf_token": csrf_of(admin)})
    assert revoked.status_code == 302
    assert read(client, "kiosks", token).status_code == 401


def test_a_token_without_scopes_or_with_a_taken_name_is_refused(admin: FlaskClient) -> None:
    none = admin.post(
        "/staff/api-tokens", data={"name": "x", "csrf_token": csrf_of(admin)}, follow_redirects=True
    )
    assert "new-token" not in none.get_data(as_text=True)
    for _ in range(2):
        answer = admin.post(
            "/staff/api-tokens",
            data={"name": "dup", "scope": "events", "csrf_token": csrf_of(admin)},
            follow_redirects=True,
        )
    assert "new-token" not in answer.get_data(as_text=True)


def test_viewers_cannot_see_or_make_tokens(viewer: FlaskClient) -> None:
    assert viewer.get("/staff/api-tokens").status_code == 403
    refused = viewer.post(
        "/staff/api-tokens",
        data={"name": "mine", "scope": "events", "csrf_token": csrf_of(viewer)},
    )
    assert refused.status_code == 403


def test_cli_makes_lists_and_revokes_tokens(tmp_path) -> None:
    runner = CliRunner()
    instance = tmp_path / "centre"
    base = ["--instance", str(instance)]
    assert runner.invoke(central_cli, [*base, "init"]).exit_code == 0
    made = runner.invoke(
        central_cli, [*base, "api-token", "add", "bi", "--scope", "events", "--scope", "stays"]
    )
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("cit_")
    wrong = runner.invoke(central_cli, [*base, "api-token", "add", "x", "--scope", "payroll"])
    assert wrong.exit_code == 1 and "unknown scope" in wrong.output
    listed = runner.invoke(central_cli, [*base, "api-token", "list"])
    assert listed.output.splitlines() == ["bi\tevents,stays\tactive\t-"]
    app = create_app(instance, CentralSettings(), config={"TESTING": True})
    client = app.test_client()
    assert read(client, "events", token).status_code == 200
    assert runner.invoke(central_cli, [*base, "api-token", "revoke", "bi"]).exit_code == 0
    assert read(client, "events", token).status_code == 401
    again = runner.invoke(central_cli, [*base, "api-token", "revoke", "bi"])
    assert again.exit_code == 1
    app.extensions["central"].engine.dispose()
