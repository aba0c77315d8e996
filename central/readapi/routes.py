"""The read API for integrations under /api/read/v1, its OpenAPI document, and /healthz.

Every read needs `Authorization: Bearer <token>` of an API token holding the path's scope
(central/readapi/tokens.py). Lists are paged by an opaque cursor: each answer's `next_cursor`,
passed back as `cursor`, continues after its last row; rows are in a fixed order of a unique key,
so paging never repeats nor skips a row that was there throughout. Errors are JSON `Problem`s:
400 a bad parameter (named), 401 no valid token, 403 a token without the scope.

/healthz is for the reverse proxy and monitoring: no token, two tiny queries. 503 when this
process cannot serve (its database unreachable, or one of its duty threads died); 200 with
status "degraded" when it can, but no process holds some duty's lease right now.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, and_, or_, select, text, tuple_
from werkzeug.exceptions import HTTPException

from central.db.schema import anomalies, cadres, duty_leases, events, stays
from central.duties.lease import database_now
from central.exports import Seen, seen_on
from central.kiosks import kiosk_health
from central.readapi import models, tokens
from central.readapi.openapi import document
from central.services import Central, central_of, utc_now

PREFIX = "/api/read/v1"
read_api = Blueprint("read_api", __name__)
log = logging.getLogger(__name__)

Q = TypeVar("Q", bound=models.Query)


class ReadApiError(Exception):
    def __init__(
        self, status: int, error: str, message: str, fields: list[dict[str, str]] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.problem = models.Problem(error=error, message=message, fields=fields or [])


def _json(model: BaseModel, status: int = 200) -> Response:
    response = Response(model.model_dump_json(), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@read_api.errorhandler(ReadApiError)
def _refused(exc: ReadApiError) -> Response:
    response = _json(exc.problem, exc.status)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="read api"'
    return response


@read_api.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    code = (exc.name or "error").lower().replace(" ", "_")
    return _json(models.Problem(error=code, message=exc.description or code), exc.code or 500)


@read_api.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("read API request failed")
    return _json(models.Problem(error="internal", message="the centre could not answer"), 500)


# --- parameters, tokens, cursors ------------------------------------------------------------------


def _query(model: type[Q]) -> Q:
    raw: dict[str, str] = {}
    for key, values in request.args.lists():
        if len(values) > 1:
            raise ReadApiError(
                400, "malformed", f"{key} given twice", [{"field": key, "reason": "given twice"}]
            )
        raw[key] = values[0]
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "query", "reason": e["msg"]}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{f['field']}: {f['reason']}" for f in fields[:5])
        raise ReadApiError(400, "malformed", f"bad parameters: {summary}", fields) from exc


def _authorised(central: Central, scope: str) -> tokens.ApiToken:
    scheme, _, clear = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not clear.strip():
        raise ReadApiError(401, "unauthorized", "no API token: send Authorization: Bearer <token>")
    token = tokens.authenticate(central.engine, clear.strip(), _naive(utc_now()))
    if token is None:
        raise ReadApiError(401, "unauthorized", "API token unknown or revoked")
    if scope not in token.scopes:
        raise ReadApiError(403, "forbidden", f"this token may not read {scope}: ask an admin")
    return token


def _encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(kind: str, cursor: str | None, width: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(value, list) or len(value) != width + 1 or value[0] != kind:
        raise _bad_cursor()
    if not all(isinstance(v, str | int) for v in value[1:]):
        raise _bad_cursor()
    return value[1:]


def _bad_cursor() -> ReadApiError:
    return ReadApiError(
        400,
        "bad_cursor",
        "cursor not from this list: pass back next_cursor as it came",
        [{"field": "cursor", "reason": "not a cursor of this list"}],
    )


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _utc(moment: datetime | None) -> datetime | None:
    """A stored naive-UTC time as an aware one: answers say ...Z."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _flags(value: str | None) -> list[str]:
    try:
        loaded = json.loads(value or "[]")
    except ValueError:
        return []
    return [str(f) for f in loaded] if isinstance(loaded, list) else []


def _time_key(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise _bad_cursor() from exc


R = TypeVar("R", bound=BaseModel)


def _page(rows: list[R], limit: int, kind: str, key: Callable[[R], Sequence[Any]]) -> Response:
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = _encode_cursor(kind, key(rows[-1])) if more and rows else None
    return _json(models.Page[Any](results=rows, next_cursor=cursor))


# --- the reads ------------------------------------------------------------------------------


@read_api.get(f"{PREFIX}/events")
def list_events() -> Response:
    central = central_of()
    _authorised(central, "events")
    asked = _query(models.EventsQuery)
    after = _decode_cursor("events", asked.cursor, 2)
    e = events.c
    query = select(events)
    for column, value in (
        (e.site_id, asked.site_id),
        (e.cadre_id, asked.cadre_id),
        (e.kiosk_id, asked.kiosk_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if asked.from_day is not None:
        query = query.where(e.service_day >= asked.from_day)
    if asked.to_day is not None:
        query = query.where(e.service_day <= asked.to_day)
    if after is not None:
        received, event_id = _time_key(str(after[0])), str(after[1])
        query = query.where(
            or_(e.received_at > received, and_(e.received_at == received, e.event_id > event_id))
        )
    query = query.order_by(e.received_at, e.event_id).limit(asked.limit + 1)
    with central.engine.connect() as conn:
        rows = [
            models.EventOut(
                event_id=r.event_id,
                kiosk_id=r.kiosk_id,
                site_id=r.site_id,
                seq=r.seq,
                cadre_id=r.cadre_id,
                kind=r.kind,
                source=r.source,
                by_hand=r.source == "manual",
                device_time=_utc(r.device_time),
                corrected_time=_utc(r.corrected_time),
                time_status=r.time_status,
                service_day=r.service_day,
                received_at=_utc(r.received_at),
                counted=r.quarantine is None,
                quarantine=r.quarantine,
                corrects=r.corrects,
                flags=_flags(r.flags),
            )
            for r in conn.execute(query)
        ]
    return _page(
        rows,
        asked.limit,
        "events",
        lambda r: (_naive(r.received_at).isoformat(), r.event_id),
    )


@read_api.get(f"{PREFIX}/stays")
def list_stays() -> Response:
    central = central_of()
    _authorised(central, "stays")
    asked = _query(models.StaysQuery)
    after = _decode_cursor("stays", asked.cursor, 2)
    s = stays.c
    query = select(stays).where(s.service_day == asked.day)
    if asked.site_id is not None:
        query = query.where(s.site_id == asked.site_id)
    if asked.cadre_id is not None:
        query = query.where(s.cadre_id == asked.cadre_id)
    if after is not None:
        query = query.where(tuple_(s.cadre_id, s.stay_id) > tuple_(str(after[0]), int(after[1])))
    query = query.order_by(s.cadre_id, s.stay_id).limit(asked.limit + 1)
    with central.engine.connect() as conn:
        found = list(conn.execute(query))
    rows = [
        models.StayOut(
            cadre_id=r.cadre_id,
            site_id=r.site_id,
            service_day=r.service_day,
            state=r.state,
            arrival_time=_utc(r.arrival_time),
            departure_time=_utc(r.departure_time),
            duration_s=r.duration_s,
            arrival_event_id=r.arrival_event_id,
            departure_event_id=r.departure_event_id,
            arrival_by_hand=r.arrival_by_hand,
            departure_by_hand=r.departure_by_hand,
            flags=_flags(r.flags),
        )
        for r in found
    ]
    # The key is the stored row's: stays are re-paired (new rows) as records arrive, so the
    # cursor names a cadre and a row id, never a position.
    keys = {id(row): (r.cadre_id, r.stay_id) for row, r in zip(rows, found, strict=True)}
    return _page(rows, asked.limit, "stays", lambda r: keys[id(r)])


def _site_status(seen: Seen) -> str:
    if seen.present:
        return "present"
    return "departed" if seen.closed else "no_departure"


@read_api.get(f"{PREFIX}/attendance")
def list_attendance() -> Response:
    """Every cadre of the roster (of one site, or all) on one service day, the absent included."""
    central = central_of()
    _authorised(central, "attendance")
    asked = _query(models.AttendanceQuery)
    after = _decode_cursor("attendance", asked.cursor, 1)
    c = cadres.c
    query = select(c.cadre_id, c.site_id).where(c.site_id.is_not(None))
    if asked.site_id is not None:
        query = query.where(c.site_id == asked.site_id)
    if after is not None:
        query = query.where(c.cadre_id > str(after[0]))
    query = query.order_by(c.cadre_id).limit(asked.limit + 1)
    with central.engine.connect() as conn:
        people = list(conn.execute(query))
        seen = seen_on(
            conn,
            asked.day,
            (),
            central.now(),
            central.rules,
            cadre_ids=[p.cadre_id for p in people[: asked.limit]],
        )
    by_cadre: dict[str, dict[str, Seen]] = {}
    for (site_id, cadre_id), found in seen.items():
        by_cadre.setdefault(cadre_id, {})[site_id] = found
    rows = []
    for person in people:
        theirs = by_cadre.get(person.cadre_id, {})
        home = theirs.get(person.site_id)
        rows.append(
            models.AttendanceOut(
                cadre_id=person.cadre_id,
                site_id=person.site_id,
                service_day=asked.day,
                status="absent" if home is None else _site_status(home),
                first_arrival=_utc(home.first_arrival) if home else None,
                last_departure=_utc(home.last_departure) if home else None,
                by_hand=home.by_hand if home else None,
                elsewhere=[
                    models.SiteAttendance(
                        site_id=site_id,
                        status=_site_status(other),
                        first_arrival=_utc(other.first_arrival),
                        last_departure=_utc(other.last_departure),
                        seconds=other.seconds,
                        by_hand=other.by_hand,
                    )
                    for site_id, other in sorted(theirs.items())
                    if site_id != person.site_id
                ],
            )
        )
    return _page(rows, asked.limit, "attendance", lambda r: (r.cadre_id,))


@read_api.get(f"{PREFIX}/anomalies")
def list_anomalies() -> Response:
    """Anomalies as stored, oldest first (an open stay on a day that is over shows in /stays)."""
    central = central_of()
    _authorised(central, "anomalies")
    asked = _query(models.AnomaliesQuery)
    after = _decode_cursor("anomalies", asked.cursor, 1)
    a = anomalies.c
    query = select(anomalies)
    if asked.from_day is not None:
        query = query.where(a.service_day >= asked.from_day)
    if asked.to_day is not None:
        query = query.where(a.service_day <= asked.to_day)
    if asked.kind is not None:
        query = query.where(a.kind == asked.kind)
    if asked.site_id is not None:
        query = query.where(a.site_id == asked.site_id)
    if after is not None:
        query = query.where(a.anomaly_id > int(after[0]))
    query = query.order_by(a.anomaly_id).limit(asked.limit + 1)
    with central.engine.connect() as conn:
        rows = [
            models.AnomalyOut(
                anomaly_id=r.anomaly_id,
                kind=r.kind,
                kiosk_id=r.kiosk_id,
                site_id=r.site_id,
                cadre_id=r.cadre_id,
                service_day=r.service_day,
                event_id=r.event_id,
                seq=r.seq,
                detail=r.detail,
                detected_at=_utc(r.detected_at),
                resolved_at=_utc(r.resolved_at),
            )
            for r in conn.execute(query)
        ]
    return _page(rows, asked.limit, "anomalies", lambda r: (r.anomaly_id,))


@read_api.get(f"{PREFIX}/kiosks")
def list_kiosks() -> Response:
    central = central_of()
    _authorised(central, "kiosks")
    asked = _query(models.KiosksQuery)
    after = _decode_cursor("kiosks", asked.cursor, 1)
    with central.engine.connect() as conn:
        health = kiosk_health(conn, central.now(), central.settings.kiosk_dead_after_s)
    chosen = sorted(
        (
            k
            for k in health
            if (asked.site_id is None or k["site_id"] == asked.site_id)
            and (after is None or k["kiosk_id"] > str(after[0]))
        ),
        key=lambda k: str(k["kiosk_id"]),
    )[: asked.limit + 1]
    rows = [
        models.KioskOut(
            kiosk_id=k["kiosk_id"],
            site_id=k["site_id"],
            name=k["name"],
            state="revoked"
            if k["revoked_at"] is not None
            else ("active" if k["enrolled_at"] is not None else "waiting"),
            silent=bool(k["dead"]),
            enrolled_at=_utc(k["enrolled_at"]),
            revoked_at=_utc(k["revoked_at"]),
            last_push_at=_utc(k["last_push_at"]),
            last_heartbeat_at=_utc(k["last_heartbeat_at"]),
            stored_through_seq=k["chain_seq"],
            highest_seq=k["max_seq"],
            queue_length=k["queue_length"],
            app_version=k["app_version"],
            camera_ok=k["camera_ok"],
            clock_trusted=k["clock_trusted"],
            clock_offset_s=k["clock_offset_s"],
            disk_free_bytes=k["disk_free_bytes"],
        )
        for k in chosen
    ]
    return _page(rows, asked.limit, "kiosks", lambda r: (r.kiosk_id,))


@read_api.get(f"{PREFIX}/openapi.json")
def openapi_document() -> Response:
    response = Response(json.dumps(document(), ensure_ascii=False), mimetype="application/json")
    response.headers["Cache-Control"] = "no-cache"
    return response


# --- health ---------------------------------------------------------------------------------


def _held_duties(conn: Connection) -> set[str]:
    now = database_now(conn)
    rows = conn.execute(select(duty_leases.c.duty).where(duty_leases.c.expires_at > now))
    return {r.duty for r in rows}


@read_api.get("/healthz")
def healthz() -> Response:
    central = central_of()
    started = time.perf_counter()
    held: set[str] = set()
    try:
        with central.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            database_ms: float | None = round((time.perf_counter() - started) * 1000, 1)
            held = _held_duties(conn)
        database = True
    except Exception:  # any failure to reach the database is the answer, not an error
        log.warning("healthz: database unreachable", exc_info=True)
        database, database_ms = False, None
    duties = [
        models.DutyHealth(name=name, here=state, holding_here=holding, held=holding or name in held)
        for name, state, holding in central.duties.threads()
    ]
    if not database or any(d.here == "dead" for d in duties):
        status = "failing"
    elif any(not d.held for d in duties):
        status = "degraded"
    else:
        status = "ok"
    answer = models.Health(status=status, database=database, database_ms=database_ms, duties=duties)
    return _json(answer, 503 if status == "failing" else 200)
