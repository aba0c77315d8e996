"""Making tokens and calling the read API in tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from central.readapi import tokens


def make_token(app: Flask, *scopes: str, name: str = "erp") -> str:
    _, clear = tokens.add_token(
        app.extensions["central"].engine,
        name,
        list(scopes or tokens.SCOPES),
        "test",
        datetime.now(UTC).replace(tzinfo=None),
    )
    return clear


def read(client: FlaskClient, path: str, token: str | None, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(f"/api/read/v1/{path}", query_string=params, headers=headers)


def read_all(client: FlaskClient, path: str, token: str, **params: Any) -> list[dict[str, Any]]:
    """Every row of a list, page by page; fails on a page that repeats a cursor."""
    rows: list[dict[str, Any]] = []
    cursor = None
    seen = set()
    while True:
        answer = read(client, path, token, **params, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        rows += body["results"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows
        assert cursor not in seen
        seen.add(cursor)
