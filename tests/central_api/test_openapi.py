"""The OpenAPI document against the code: every documented path is a route that takes exactly
the documented parameters and answers in the documented shapes; every route of the read API
(and /healthz) is documented."""

from __future__ import annotations

from datetime import date
from typing import Any

import jsonschema
import pytest
from flask import Flask
from pydantic import BaseModel

from central.readapi import models
from central.readapi.openapi import document
from tests.central_api.helpers import make_token, read
from tests.central_web.seed import seed

DAY = date(2026, 11, 29)
DOC = document()
SCHEMAS = DOC["components"]["schemas"]

QUERY_OF = {
    "/api/read/v1/events": models.EventsQuery,
    "/api/read/v1/stays": models.StaysQuery,
    "/api/read/v1/attendance": models.AttendanceQuery,
    "/api/read/v1/anomalies": models.AnomaliesQuery,
    "/api/read/v1/kiosks": models.KiosksQuery,
}
ANSWER_OF = {
    "Event": models.EventOut,
    "Stay": models.StayOut,
    "SiteAttendance": models.SiteAttendance,
    "Attendance": models.AttendanceOut,
    "Anomaly": models.AnomalyOut,
    "Kiosk": models.KioskOut,
    "Problem": models.Problem,
    "DutyHealth": models.DutyHealth,
    "Health": models.Health,
}
# A value of each documented parameter that the code must take.
SAMPLE = {
    "cursor": None,
    "limit": 50,
    "from_day": "2026-11-01",
    "to_day": "2026-11-30",
    "day": "2026-11-29",
    "site_id": "S01",
    "cadre_id": "C001",
    "kiosk_id": "S01-1",
    "kind": "chain_gap",
}


def _validate(instance: Any, ref: str) -> None:
    schema = {"$ref": ref, "components": DOC["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


def _routes(app: Flask) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("read_api."):
            found.setdefault(rule.rule, set()).update(
                m.lower() for m in rule.methods or () if m not in {"HEAD", "OPTIONS"}
            )
    return found


def test_every_route_is_documented_and_every_documented_path_is_a_route(app: Flask) -> None:
    documented = {path: set(ops) for path, ops in DOC["paths"].items()}
    assert _routes(app) == documented


@pytest.mark.parametrize("path", sorted(QUERY_OF))
def test_documented_parameters_are_the_ones_the_code_takes(path: str) -> None:
    model = QUERY_OF[path]
    params = {p["name"]: p for p in DOC["paths"][path]["get"]["parameters"]}
    assert set(params) == set(model.model_fields)
    for name, field in model.model_fields.items():
        assert params[name]["required"] == field.is_required(), name
        assert params[name]["in"] == "query"
    # Types and bounds: the code's schema of each parameter against the document's.
    code = model.model_json_schema()["properties"]
    for name, param in params.items():
        mine = code[name].get("anyOf", [code[name]])[0]
        for key in ("type", "format", "minimum", "maximum", "maxLength", "minLength"):
            assert param["schema"].get(key) == mine.get(key), (path, name, key)


@pytest.mark.parametrize("name", sorted(ANSWER_OF))
def test_documented_shapes_name_the_fields_the_code_answers(name: str) -> None:
    model: type[BaseModel] = ANSWER_OF[name]
    schema = SCHEMAS[name]
    assert set(schema["properties"]) == set(model.model_fields)
    assert set(schema["required"]) == set(model.model_fields)
    assert schema["additionalProperties"] is False


def test_every_documented_answer_matches_what_the_code_sends(app: Flask) -> None:
    seed(app)
    token = make_token(app)
    client = app.test_client()
    checked = 0
    for path, operations in DOC["paths"].items():
        operation = operations["get"]
        params = {
            p["name"]: SAMPLE[p["name"]]
            for p in operation["parameters"]
            if SAMPLE[p["name"]] is not None
        }
        bare = {p["name"]: SAMPLE[p["name"]] for p in operation["parameters"] if p["required"]}
        for query in (params, bare):
            headers = {"Authorization": f"Bearer {token}"}
            answer = client.get(path, query_string=query, headers=headers)
            assert str(answer.status_code) in operation["responses"], (path, answer.status_code)
            content = operation["responses"][str(answer.status_code)]["content"]
            schema = content["application/json"].get("schema")
            if schema is not None:
                _validate(answer.get_json(), schema["$ref"])
            checked += 1
        if "x-scope" in operation:
            # Every documented refusal has the documented shape.
            refusals = {
                "400": client.get(path, query_string={**bare, "nope": "1"}, headers=headers),
                "401": client.get(path, query_string=bare),
                "403": read(
                    client,
                    path.rsplit("/", 1)[1],
                    make_token(app, _other_scope(operation["x-scope"]), name=f"x{checked}"),
                    **bare,
                ),
            }
            for code, refused in refusals.items():
                assert str(refused.status_code) == code, (path, code)
                _validate(refused.get_json(), "#/components/schemas/Problem")
    assert checked == 2 * len(DOC["paths"])


def test_rows_that_are_there_validate_too(app: Flask) -> None:
    """The seeded store has rows in every list: their shapes are checked, not empty pages."""
    seed(app)
    token = make_token(app)
    client = app.test_client()
    for path, page in (
        ("events", "EventPage"),
        ("stays", "StayPage"),
        ("attendance", "AttendancePage"),
        ("kiosks", "KioskPage"),
    ):
        body = read(
            client, path, token, **({"day": DAY} if path in {"stays", "attendance"} else {})
        ).get_json()
        assert body["results"], path
        _validate(body, f"#/components/schemas/{page}")


def test_the_centre_serves_the_document(app: Flask) -> None:
    served = app.test_client().get("/api/read/v1/openapi.json")
    assert served.status_code == 200
    assert served.get_json() == DOC
    assert DOC["openapi"].startswith("3.1")


def _other_scope(scope: str) -> str:
    return "kiosks" if scope != "kiosks" else "events"
