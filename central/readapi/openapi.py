"""The OpenAPI 3.1 document of the read API, served at /api/read/v1/openapi.json.

Written by hand, for the people who build integrations, on the pattern of pretix's REST API:
bearer tokens with scopes, one list per resource, cursor paging, codes instead of translated
text. tests/central_api/test_openapi.py holds it to the code: every path is a route with the
documented parameters and answers of the documented shape, and every route of the API is here.
"""

from __future__ import annotations

from typing import Any

from central.readapi.models import PAGE_DEFAULT, PAGE_MAX

VERSION = "1.0.0"

_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC (…Z)"}
_DAY = {"type": "string", "format": "date", "description": "a service day, YYYY-MM-DD"}


def _maybe(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema that also allows null."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    return {**schema, "type": [kind, "null"]}


def _string(description: str = "") -> dict[str, Any]:
    return {"type": "string", "description": description} if description else {"type": "string"}


def _param(name: str, schema: dict[str, Any], description: str, required: bool = False) -> Any:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_PAGING = [
    _param(
        "cursor",
        {"type": "string", "maxLength": 400},
        "The next_cursor of the page before; omit for the first page.",
    ),
    _param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT},
        "Rows per page.",
    ),
]
_ID = {"type": "string", "minLength": 1, "maxLength": 64}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _page_of(name: str) -> dict[str, Any]:
    return _object(
        {
            "results": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
            "next_cursor": _maybe(
                _string("Pass as `cursor` for the next page; null: this was the last.")
            ),
        }
    )


_SCHEMAS: dict[str, Any] = {
    "Event": _object(
        {
            "event_id": _string("UUID of the record, made by the kiosk"),
            "kiosk_id": _string(),
            "site_id": _string(),
            "seq": {"type": "integer", "description": "the record's place in its kiosk's chain"},
            "cadre_id": _string(),
            "kind": {"type": "string", "enum": ["arrival", "departure", "void"]},
            "source": {"type": "string", "enum": ["camera", "wedge", "manual"]},
            "by_hand": {"type": "boolean", "description": "on a person's word, not a badge"},
            "device_time": {**_TIME, "description": "as the kiosk's clock said"},
            "corrected_time": {**_TIME, "description": "the centre's best estimate"},
            "time_status": {"type": "string", "enum": ["trusted", "corrected", "uncorrected"]},
            "service_day": _DAY,
            "received_at": _TIME,
            "counted": {"type": "boolean"},
            "quarantine": _maybe(_string("why the record does not count (a code)")),
            "corrects": _maybe(_string("event_id of the record this one corrects")),
            "flags": {"type": "array", "items": {"type": "string"}},
        },
        "One check-in record as the kiosk sealed it, with the centre's time and verdict.",
    ),
    "Stay": _object(
        {
            "cadre_id": _string(),
            "site_id": _string(),
            "service_day": _DAY,
            "state": {"type": "string", "enum": ["open", "closed", "no_departure", "no_arrival"]},
            "arrival_time": _maybe(_TIME),
            "departure_time": _maybe(_TIME),
            "duration_s": _maybe({"type": "integer"}),
            "arrival_event_id": _maybe(_string()),
            "departure_event_id": _maybe(_string()),
            "arrival_by_hand": _maybe({"type": "boolean"}),
            "departure_by_hand": _maybe({"type": "boolean"}),
            "flags": {"type": "array", "items": {"type": "string"}},
        },
        "An arrival paired with its departure at one site on one service day.",
    ),
    "SiteAttendance": _object(
        {
            "site_id": _string(),
            "status": {"type": "string", "enum": ["present", "departed", "no_departure"]},
            "first_arrival": _maybe(_TIME),
            "last_departure": _maybe(_TIME),
            "seconds": _maybe({"type": "integer"}),
            "by_hand": {"type": "boolean"},
        }
    ),
    "Attendance": _object(
        {
            "cadre_id": _string(),
            "site_id": _string("the cadre's own site on the roster"),
            "service_day": _DAY,
            "status": {
                "type": "string",
                "enum": ["present", "departed", "no_departure", "absent"],
                "description": "at the cadre's own site; absent: no stay there that day",
            },
            "first_arrival": _maybe(_TIME),
            "last_departure": _maybe(_TIME),
            "by_hand": _maybe({"type": "boolean"}),
            "elsewhere": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/SiteAttendance"},
                "description": "stays that day at other sites",
            },
        },
        "One cadre of the roster on one service day, the absent included.",
    ),
    "Anomaly": _object(
        {
            "anomaly_id": {"type": "integer"},
            "kind": _string("a code: chain_gap, chain_fork, two_sites, overlong_stay, …"),
            "kiosk_id": _maybe(_string()),
            "site_id": _maybe(_string()),
            "cadre_id": _maybe(_string()),
            "service_day": _maybe(_DAY),
            "event_id": _maybe(_string()),
            "seq": _maybe({"type": "integer"}),
            "detail": _string("technical detail in English, for a log"),
            "detected_at": _TIME,
            "resolved_at": _maybe(_TIME),
        }
    ),
    "Kiosk": _object(
        {
            "kiosk_id": _string(),
            "site_id": _string(),
            "name": _string(),
            "state": {"type": "string", "enum": ["waiting", "active", "revoked"]},
            "silent": {"type": "boolean", "description": "active, and no heartbeat lately"},
            "enrolled_at": _maybe(_TIME),
            "revoked_at": _maybe(_TIME),
            "last_push_at": _maybe(_TIME),
            "last_heartbeat_at": _maybe(_TIME),
            "stored_through_seq": {"type": "integer"},
            "highest_seq": {"type": "integer"},
            "queue_length": _maybe({"type": "integer"}),
            "app_version": _maybe(_string()),
            "camera_ok": _maybe({"type": "boolean"}),
            "clock_trusted": _maybe({"type": "boolean"}),
            "clock_offset_s": _maybe({"type": "number"}),
            "disk_free_bytes": _maybe({"type": "integer"}),
        }
    ),
    "Problem": _object(
        {
            "error": _string("a code: malformed, bad_cursor, unauthorized, forbidden, …"),
            "message": _string("in English"),
            "fields": {
                "type": "array",
                "items": _object({"field": _string(), "reason": _string()}),
            },
        }
    ),
    "DutyHealth": _object(
        {
            "name": _string(),
            "here": {"type": "string", "enum": ["running", "stopped", "dead"]},
            "holding_here": {"type": "boolean"},
            "held": {"type": "boolean", "description": "some process holds its lease now"},
        }
    ),
    "Health": _object(
        {
            "status": {"type": "string", "enum": ["ok", "degraded", "failing"]},
            "database": {"type": "boolean"},
            "database_ms": _maybe({"type": "number"}),
            "duties": {"type": "array", "items": {"$ref": "#/components/schemas/DutyHealth"}},
        }
    ),
}
for _name in ("Event", "Stay", "Attendance", "Anomaly", "Kiosk"):
    _SCHEMAS[f"{_name}Page"] = _page_of(_name)


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _list(
    scope: str, page: str, summary: str, description: str, parameters: list[Any]
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "description": description,
            "operationId": f"list_{scope}",
            "tags": [scope],
            "security": [{"token": [scope]}],
            "x-scope": scope,
            "parameters": [*parameters, *_PAGING],
            "responses": {
                "200": {
                    "description": "one page",
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{page}"}}
                    },
                },
                "400": _problem("a parameter is bad (named in fields)"),
                "401": _problem("no token, or a token unknown or revoked"),
                "403": _problem(f"the token lacks the scope {scope}"),
            },
        }
    }


_FROM = _param("from_day", {"type": "string", "format": "date"}, "First service day.")
_TO = _param("to_day", {"type": "string", "format": "date"}, "Last service day.")
_SITE = _param("site_id", _ID, "Only this site.")
_DAY_REQUIRED = _param("day", {"type": "string", "format": "date"}, "The service day.", True)

_PATHS: dict[str, Any] = {
    "/api/read/v1/events": _list(
        "events",
        "EventPage",
        "Check-in records",
        "Records in the order the centre received them (a record that came late comes late).",
        [
            _FROM,
            _TO,
            _SITE,
            _param("cadre_id", _ID, "Only this cadre."),
            _param("kiosk_id", _ID, "Only this kiosk."),
        ],
    ),
    "/api/read/v1/stays": _list(
        "stays",
        "StayPage",
        "Stays of one service day",
        "Stays are paired anew as records arrive: read a day again for the latest pairing.",
        [_DAY_REQUIRED, _SITE, _param("cadre_id", _ID, "Only this cadre.")],
    ),
    "/api/read/v1/attendance": _list(
        "attendance",
        "AttendancePage",
        "Attendance of one service day, the absent included",
        "Every cadre of the roster who has a site, by cadre_id: their status at their own site "
        "and their stays elsewhere.",
        [_DAY_REQUIRED, _SITE],
    ),
    "/api/read/v1/anomalies": _list(
        "anomalies",
        "AnomalyPage",
        "Anomalies",
        "What the centre's checks found, oldest first. A stay still open on a day that is over "
        "is a stay with state open in /stays.",
        [
            _FROM,
            _TO,
            _param("kind", {"type": "string", "minLength": 1, "maxLength": 40}, "Only this kind."),
            _SITE,
        ],
    ),
    "/api/read/v1/kiosks": _list(
        "kiosks",
        "KioskPage",
        "Kiosks and their latest heartbeat",
        "Every kiosk, by kiosk_id.",
        [_SITE],
    ),
    "/api/read/v1/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "security": [],
            "parameters": [],
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Health, for the reverse proxy and monitoring",
            "description": "No token. 503 when this process cannot serve (database unreachable, "
            "a duty thread died); 200 with status degraded when no process holds some duty's "
            "lease.",
            "operationId": "healthz",
            "security": [],
            "parameters": [],
            "responses": {
                code: {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                    },
                }
                for code, text in (("200", "serving"), ("503", "not serving"))
            },
        }
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cadre check-in: read API",
            "version": VERSION,
            "description": "Read-only access for integrations. Make a token with the scopes it "
            "needs on the staff page API tokens (admins) or with `central api-token add`. Times "
            "are ISO 8601 in UTC; kinds, states and statuses are codes, never translated text. "
            "Lists are paged: pass each answer's next_cursor back as cursor.",
        },
        "paths": _PATHS,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (cit_…); its scopes name what it may read.",
                }
            },
        },
    }
