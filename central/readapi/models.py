"""What the read API takes (query parameters) and answers (JSON), as pydantic models.

The OpenAPI document (central/readapi/openapi.py) is written by hand for the people who build
integrations; tests/central_api/test_openapi.py holds it to these models and to the routes.
Answers carry codes and ISO 8601 times in UTC (`...Z`), never translated text: an integration
shows them in its own words.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

PAGE_DEFAULT = 100
PAGE_MAX = 1000

Ident = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Query(BaseModel):
    """Query parameters: an unknown one is refused (a typo must not silently widen a read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cursor: Annotated[str, StringConstraints(max_length=400)] | None = None
    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX)


class EventsQuery(Query):
    from_day: date | None = None
    to_day: date | None = None
    site_id: Ident | None = None
    cadre_id: Ident | None = None
    kiosk_id: Ident | None = None


class StaysQuery(Query):
    day: date
    site_id: Ident | None = None
    cadre_id: Ident | None = None


class AttendanceQuery(Query):
    day: date
    site_id: Ident | None = None


class AnomaliesQuery(Query):
    from_day: date | None = None
    to_day: date | None = None
    kind: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    site_id: Ident | None = None


class KiosksQuery(Query):
    site_id: Ident | None = None


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class EventOut(Answer):
    event_id: str
    kiosk_id: str
    site_id: str
    seq: int
    cadre_id: str
    kind: str  # arrival | departure | void
    source: str  # camera | wedge | manual
    by_hand: bool  # on a person's word (source manual), not a badge read
    device_time: datetime
    corrected_time: datetime
    time_status: str  # trusted | corrected | uncorrected
    service_day: date
    received_at: datetime
    counted: bool
    quarantine: str | None  # why it does not count (a code), when it does not
    corrects: str | None
    flags: list[str]


class StayOut(Answer):
    cadre_id: str
    site_id: str
    service_day: date
    state: str  # open | closed | no_departure | no_arrival
    arrival_time: datetime | None
    departure_time: datetime | None
    duration_s: int | None
    arrival_event_id: str | None
    departure_event_id: str | None
    arrival_by_hand: bool | None
    departure_by_hand: bool | None
    flags: list[str]


class SiteAttendance(Answer):
    site_id: str
    status: Literal["present", "departed", "no_departure"]
    first_arrival: datetime | None
    last_departure: datetime | None
    seconds: int | None
    by_hand: bool


class AttendanceOut(Answer):
    cadre_id: str
    site_id: str  # the cadre's own site on the roster
    service_day: date
    # present | departed | no_departure at their own site, or absent: no stay there that day
    status: Literal["present", "departed", "no_departure", "absent"]
    first_arrival: datetime | None
    last_departure: datetime | None
    by_hand: bool | None
    elsewhere: list[SiteAttendance]  # stays that day at other sites


class AnomalyOut(Answer):
    anomaly_id: int
    kind: str
    kiosk_id: str | None
    site_id: str | None
    cadre_id: str | None
    service_day: date | None
    event_id: str | None
    seq: int | None
    detail: str  # technical, in English: for a log, not for a page
    detected_at: datetime
    resolved_at: datetime | None


class KioskOut(Answer):
    kiosk_id: str
    site_id: str
    name: str
    state: Literal["waiting", "active", "revoked"]  # waiting: not enrolled yet
    silent: bool  # active and no heartbeat for longer than the alert setting
    enrolled_at: datetime | None
    revoked_at: datetime | None
    last_push_at: datetime | None
    last_heartbeat_at: datetime | None
    stored_through_seq: int  # every record 1..this is stored and linked
    highest_seq: int
    queue_length: int | None
    app_version: str | None
    camera_ok: bool | None
    clock_trusted: bool | None
    clock_offset_s: float | None
    disk_free_bytes: int | None


T = TypeVar("T")


class Page(Answer, Generic[T]):
    results: list[T]
    next_cursor: str | None  # pass as `cursor` for the next page; null: this was the last


class Problem(Answer):
    """Every error: a code, an English sentence, and the bad parameters when there are any."""

    error: str
    message: str
    fields: list[dict[str, str]] = []


class DutyHealth(Answer):
    name: str
    here: Literal["running", "stopped", "dead"]  # this process's thread for the duty
    holding_here: bool
    held: bool  # some process holds its lease now


class Health(Answer):
    status: Literal["ok", "degraded", "failing"]
    database: bool
    database_ms: float | None
    duties: list[DutyHealth]
