"""The kiosk's HTTP client for the centre (requests). Every failure is one `SyncError`.

Whatever the network or the centre does (refused connections, resets, timeouts, 500s, bodies
that are not JSON, cut short or of the wrong shape) comes out as a `SyncError` whose text says
what went wrong in words a site lead can pass on; nothing else escapes. Each reply carries the
round trip's timing so the caller can work out the kiosk clock's offset from the centre's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import requests
from pydantic import BaseModel, ValidationError

from sync.events import Event
from sync.protocol import (
    API_PREFIX,
    CLOCK_HEADER,
    NAMES_PATH,
    PHOTOS_PATH,
    ClockSample,
    EnrolAnswer,
    EnrolRequest,
    ErrorAnswer,
    Heartbeat,
    HeartbeatAnswer,
    NamesAnswer,
    NamesRequest,
    PhotoAnswer,
    PhotoBatch,
    PullAnswer,
    PullRequest,
    PushAnswer,
    check_central_url,
    clock_header,
)

T = TypeVar("T", bound=BaseModel)
USER_AGENT = "cadre-kiosk-sync/1"


class SyncError(Exception):
    """An exchange with the centre failed; str() is the reason, in English, for logs. `code`
    says what kind of failure it was, for pages to put in their own words."""

    code = "unreachable"


class Unauthorized(SyncError):
    """The centre does not know this kiosk's token (revoked, or never enrolled)."""

    code = "unauthorized"


class Refused(SyncError):
    """The centre answered with an error (4xx/5xx)."""

    code = "refused"

    def __init__(self, status: int, message: str, answer: ErrorAnswer | None = None):
        super().__init__(message)
        self.status = status
        self.answer = answer


@dataclass(frozen=True)
class Timing:
    sent_wall: datetime  # the kiosk's wall clock when the request left (aware)
    sent_mono_ns: int
    received_mono_ns: int

    @property
    def rtt_s(self) -> float:
        return (self.received_mono_ns - self.sent_mono_ns) / 1e9

    def sample(self, server_time: datetime, boot_id: str) -> ClockSample:
        """The offset (centre - kiosk wall clock) at the round trip's midpoint.

        The centre read its clock somewhere inside the round trip; the midpoint is off by at
        most half the round trip, which `rtt_s` records.
        """
        half_ns = (self.received_mono_ns - self.sent_mono_ns) // 2
        mid_wall = self.sent_wall + timedelta(microseconds=half_ns // 1000)
        return ClockSample(
            boot_id=boot_id,
            monotonic_ns=self.sent_mono_ns + half_ns,
            device_time=mid_wall,
            offset_s=(server_time - mid_wall).total_seconds(),
            rtt_s=self.rtt_s,
            source="centre",
        )


@dataclass(frozen=True)
class Reply(Generic[T]):
    answer: T
    timing: Timing


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


class CentralClient:
    def __init__(
        self,
        base_url: str,
        token: str = "",
        timeout_s: float = 15.0,
        session: requests.Session | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        boot_id: str = "",
    ):
        """boot_id: this boot's id, sent with the clocks' readings on every request
        (CLOCK_HEADER) so the centre can measure this boot's clock itself."""
        self.base_url = check_central_url(base_url).rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self._wall = wall_clock
        self._mono = monotonic_ns
        self.boot_id = boot_id

    @staticmethod
    def encode_push(kiosk_id: str, events: Sequence[Event]) -> bytes:
        """The PushBatch body: each event serialised by pydantic once, the envelope around."""
        return (
            b'{"kiosk_id":'
            + json.dumps(kiosk_id).encode()
            + b',"events":['
            + b",".join(e.wire_json() for e in events)
            + b"]}"
        )

    def push(
        self, kiosk_id: str, events: Sequence[Event], body: bytes | None = None
    ) -> Reply[PushAnswer]:
        """Send `events` (or `body`, their encode_push made beforehand)."""
        return self._call("/events", body or self.encode_push(kiosk_id, events), PushAnswer)

    def pull(self, asked: PullRequest) -> Reply[PullAnswer]:
        return self._call("/pull", asked.model_dump_json().encode(), PullAnswer)

    def heartbeat(self, beat: Heartbeat) -> Reply[HeartbeatAnswer]:
        return self._call("/heartbeat", beat.model_dump_json().encode(), HeartbeatAnswer)

    def names(self, asked: NamesRequest) -> Reply[NamesAnswer]:
        return self._call(NAMES_PATH, asked.model_dump_json().encode(), NamesAnswer)

    def photos(self, batch: PhotoBatch) -> Reply[PhotoAnswer]:
        return self._call(PHOTOS_PATH, batch.model_dump_json().encode(), PhotoAnswer)

    def enrol(self, code: str, hostname: str = "", app_version: str = "") -> Reply[EnrolAnswer]:
        asked = EnrolRequest(code=code, hostname=hostname[:200], app_version=app_version[:64])
        return self._call("/enrol", asked.model_dump_json().encode(), EnrolAnswer, auth=False)

    def _call(self, path: str, body: bytes, model: type[T], auth: bool = True) -> Reply[T]:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if auth:
            if not self.token:
                raise Unauthorized("this kiosk is not enrolled (no token)")
            headers["Authorization"] = f"Bearer {self.token}"
        url = f"{self.base_url}{API_PREFIX}{path}"
        sent_wall, sent_mono = self._wall(), self._mono()
        if self.boot_id:
            headers[CLOCK_HEADER] = clock_header(self.boot_id, sent_mono, sent_wall)
        try:
            response = self.session.post(url, data=body, headers=headers, timeout=self.timeout_s)
            content = response.content  # reads the whole body: a cut-off one raises here
        except requests.Timeout as exc:
            raise SyncError(f"the centre did not answer within {self.timeout_s:g} s") from exc
        except requests.ConnectionError as exc:
            raise SyncError(f"cannot reach the centre: {_short(exc)}") from exc
        except requests.RequestException as exc:
            raise SyncError(f"exchange with the centre broke off: {_short(exc)}") from exc
        timing = Timing(sent_wall, sent_mono, self._mono())
        if response.status_code != 200:
            raise self._refusal(response.status_code, content)
        try:
            answer = model.model_validate_json(content)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise SyncError(
                f"the centre's answer was not understood ({where}: {first['msg']})"
            ) from exc
        return Reply(answer, timing)

    @staticmethod
    def _refusal(status: int, content: bytes) -> SyncError:
        try:
            answer: ErrorAnswer | None = ErrorAnswer.model_validate_json(content)
        except ValidationError:
            answer = None
        detail = answer.message if answer else f"HTTP {status}"
        if status == 401:
            return Unauthorized(f"the centre refused this kiosk's token: {detail}")
        if answer is not None and answer.fields:
            detail += " (" + "; ".join(f"{p.field}: {p.reason}" for p in answer.fields[:3]) + ")"
        return Refused(status, f"the centre answered {status}: {detail}", answer)
