"""The kiosk's HTTP client for the centre (requests). Every failure is one `SyncError`.

Whatever the network or the centre does (refused connections, resets, timeouts, 500s, bodies
that are not JSON, cut short or of the wrong shape) comes out as a `SyncError` whose text says
what went wrong in words a site lead can pass on; nothing else escapes. Each reply carries the
round trip's timing so the caller can work out the kiosk clock's offset from the centre's.

With a `PinnedKey` (every running kiosk has one), each request carries a fresh nonce and each
answer must be signed by the pinned centre key over that nonce, the request and the answer
(sync/centre_key.py); anything else is an `UntrustedCentre` error and the answer is not used. An
answer signed by a newer key is taken once the centre shows a chain of rotations to it, each
signed by the key before.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ValidationError

from sync.centre_key import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    PinnedKey,
    SignedByAnotherKey,
    UntrustedAnswer,
    follow_rotations,
    public_key_from,
    shown,
    verify_answer,
)
from sync.events import Event
from sync.protocol import (
    API_PREFIX,
    CLOCK_HEADER,
    NAMES_PATH,
    PHOTOS_PATH,
    CentreAnswer,
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


class UntrustedCentre(SyncError):
    """An answer not signed by the centre this kiosk trusts: refused, whatever it says."""

    code = "untrusted"


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
class Answered:
    """What came back, as the signature covers it."""

    nonce: str
    status: int
    content: bytes
    headers: Mapping[str, str]


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
        pinned: PinnedKey | None = None,
    ):
        """boot_id: this boot's id, sent with the clocks' readings on every request
        (CLOCK_HEADER) so the centre can measure this boot's clock itself.
        pinned: the centre key answers must be signed with; None takes answers unchecked
        (only before a key is known: `centre()` at enrolment, and tests of the protocol)."""
        self.base_url = check_central_url(base_url).rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.pinned = pinned
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

    def centre(self) -> tuple[Reply[CentreAnswer], PinnedKey]:
        """Who the centre says it is, and the key that signed this very answer (checked: the
        answer names that key and is signed by it; whether it is the right key is the
        caller's to decide, against a fingerprint it got by another way)."""
        reply, answered = self._exchange("GET", "/centre", b"", CentreAnswer, verify=False)
        try:
            key = public_key_from(reply.answer.public_key)
        except ValueError as exc:
            raise UntrustedCentre(f"the centre's key is not readable: {exc}") from exc
        self._check_signature(PinnedKey(key), "/centre", b"", answered)
        return reply, PinnedKey(key)

    def _call(self, path: str, body: bytes, model: type[T], auth: bool = True) -> Reply[T]:
        return self._exchange("POST", path, body, model, auth=auth)[0]

    def _exchange(
        self,
        method: str,
        path: str,
        body: bytes,
        model: type[T],
        auth: bool = False,
        verify: bool = True,
    ) -> tuple[Reply[T], Answered]:
        nonce = secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            NONCE_HEADER: nonce,
        }
        if auth:
            if not self.token:
                raise Unauthorized("this kiosk is not enrolled (no token)")
            headers["Authorization"] = f"Bearer {self.token}"
        url = f"{self.base_url}{API_PREFIX}{path}"
        sent_wall, sent_mono = self._wall(), self._mono()
        if self.boot_id:
            headers[CLOCK_HEADER] = clock_header(self.boot_id, sent_mono, sent_wall)
        try:
            response = self.session.request(
                method, url, data=body or None, headers=headers, timeout=self.timeout_s
            )
            content = response.content  # reads the whole body: a cut-off one raises here
        except requests.Timeout as exc:
            raise SyncError(f"the centre did not answer within {self.timeout_s:g} s") from exc
        except requests.ConnectionError as exc:
            raise SyncError(f"cannot reach the centre: {_short(exc)}") from exc
        except requests.RequestException as exc:
            raise SyncError(f"exchange with the centre broke off: {_short(exc)}") from exc
        timing = Timing(sent_wall, sent_mono, self._mono())
        answered = Answered(nonce, response.status_code, content, response.headers)
        if self.pinned is not None and verify:
            try:
                self._check_signature(self.pinned, path, body, answered)
            except UntrustedCentre:
                if response.status_code != 200:
                    # An error page from a proxy, or words someone else wrote: only the status.
                    raise SyncError(
                        f"the centre answered {response.status_code} (an answer not signed by "
                        "this kiosk's centre)"
                    ) from None
                raise
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
        return Reply(answer, timing), answered

    def _check_signature(
        self, pinned: PinnedKey, path: str, body: bytes, answered: Answered
    ) -> None:
        """Raises UntrustedCentre unless `pinned` (or a key it rotated to) signed the answer."""
        nonce, header = answered.nonce, answered.headers.get(SIGNATURE_HEADER)
        status, content = answered.status, answered.content
        try:
            verify_answer(pinned.key, header, path, nonce, body, status, content)
            return
        except SignedByAnotherKey as exc:
            if status != 200 or path == "/centre":
                raise UntrustedCentre(f"answer refused: {exc}") from exc
            signer = exc.fingerprint
        except UntrustedAnswer as exc:
            raise UntrustedCentre(f"answer refused: {exc}") from exc
        # Signed by another key: a rotation, if the centre can show one the pinned key signed.
        newer = self._rotated_key(pinned, signer)
        try:
            verify_answer(newer, header, path, nonce, body, status, content)
        except UntrustedAnswer as exc:
            raise UntrustedCentre(f"answer refused: {exc}") from exc
        pinned.rotate_to(newer)

    def _rotated_key(self, pinned: PinnedKey, signer: str) -> Ed25519PublicKey:
        reply, answered = self._exchange("GET", "/centre", b"", CentreAnswer, verify=False)
        identity = reply.answer
        try:
            key = public_key_from(identity.public_key)
            if identity.fingerprint != signer:
                raise UntrustedAnswer(
                    f"the answer is signed by key {shown(signer)[:24]}, which is neither this "
                    f"kiosk's centre ({shown(pinned.fingerprint)}) nor a key it moved on to"
                )
            follow_rotations(pinned.fingerprint, identity.rotations, key)
            verify_answer(
                key,
                answered.headers.get(SIGNATURE_HEADER),
                "/centre",
                answered.nonce,
                b"",
                answered.status,
                answered.content,
            )
        except (UntrustedAnswer, ValueError) as exc:
            raise UntrustedCentre(f"answer refused: {exc}") from exc
        return key

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
