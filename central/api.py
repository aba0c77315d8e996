"""The kiosk API under /api/v1: enrolment, push, pull, heartbeat (schemas: sync/protocol.py).

Every answer is JSON, errors included (`ErrorAnswer`): 400 names each bad field and why, 401
means no valid token (unknown or revoked kiosk), 403 a token used for another kiosk's batch,
413 a body over `api_max_body_bytes`, 415 a body that is not JSON.

Every answer, errors included, is signed with the centre key (sync/centre_key.py) over the
kiosk's nonce, its request body and the answer's body: the kiosk takes no answer its pinned key
did not sign.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from central import generations, kiosks, releases, visitor_names
from central.db.engine import reading
from central.ingest.heartbeat import record_heartbeat
from central.ingest.push import KioskGone, ingest_events
from central.instance_files import sweep_enrolment_images
from central.kiosks import EnrolmentRefused, KioskIdentity
from central.photos import CentralPhotos
from central.services import Central, central_of
from sync.centre_key import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    clean_nonce,
    fingerprint,
    public_key_text,
    sign_answer,
)
from sync.protocol import (
    API_PREFIX,
    CLOCK_HEADER,
    NAMES_PATH,
    PHOTOS_PATH,
    CentreAnswer,
    ClockReading,
    EnrolAnswer,
    EnrolRequest,
    ErrorAnswer,
    FieldProblem,
    Heartbeat,
    HeartbeatAnswer,
    NamesAnswer,
    NamesRequest,
    PhotoAnswer,
    PhotoBatch,
    PullAnswer,
    PullRequest,
    PushBatch,
    TimeAnswer,
    field_problems,
    parse_clock_header,
)

api = Blueprint("api", __name__, url_prefix=API_PREFIX)
log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, message: str, fields: list[FieldProblem] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.answer = ErrorAnswer(error=error, message=message, fields=fields or [])


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status=status, mimetype="application/json")


@api.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    response = _json(exc.answer, exc.status)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="kiosk"'
    return response


@api.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> Response:
    limit = central_of().settings.api_max_body_bytes
    return _json(
        ErrorAnswer(error="too_large", message=f"request body over {limit} bytes: send less"),
        413,
    )


@api.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _json(
        ErrorAnswer(error=(exc.name or "error").lower().replace(" ", "_"), message=str(exc)),
        exc.code or 500,
    )


@api.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    # A kiosk gets JSON it can show, and retries; the traceback goes to the centre's log.
    log.exception("kiosk API request failed")
    return _json(
        ErrorAnswer(error="internal", message="the centre could not handle this request"), 500
    )


@api.before_request
def _limit_body() -> None:
    request.max_content_length = central_of().settings.api_max_body_bytes


@api.after_request
def _sign(response: Response) -> Response:
    """Sign the answer for the kiosk: over its nonce, its request and this body."""
    try:
        sent = request.get_data(cache=True)
    except RequestEntityTooLarge:
        sent = b""
    path = request.path[len(API_PREFIX) :] if request.path.startswith(API_PREFIX) else ""
    response.headers[SIGNATURE_HEADER] = sign_answer(
        central_of().signer.key(),
        path,
        clean_nonce(request.headers.get(NONCE_HEADER)),
        sent,
        response.status_code,
        response.get_data(),
    )
    return response


def _body(model: type[M]) -> M:
    if not request.is_json:
        raise ApiError(415, "not_json", "send the body as application/json")
    # Kept (cache): the answer's signature covers the request body too.
    data = request.get_data(cache=True)
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        problems = field_problems(exc)
        summary = "; ".join(f"{p.field}: {p.reason}" for p in problems[:5])
        raise ApiError(400, "malformed", f"malformed request: {summary}", problems) from exc


def _token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "no kiosk token: send Authorization: Bearer <token>")
    return token.strip()


_GONE = "kiosk token unknown or revoked: enrol again"


def _kiosk(central: Central) -> KioskIdentity:
    with reading(central.engine) as conn:
        kiosk = kiosks.authenticate(conn, _token())
    if kiosk is None:
        raise ApiError(401, "unauthorized", _GONE)
    return kiosk


def _pushing_kiosk(central: Central) -> tuple[KioskIdentity, str]:
    """The kiosk of a push and its token's hash, which ingest confirms under the row's lock."""
    token = _token()
    token_hash = kiosks.hash_secret(token)
    known = central.push_tokens.get(token_hash)
    if known is not None:
        return known, token_hash
    kiosk = _kiosk(central)
    central.push_tokens.remember(token_hash, kiosk)
    return kiosk, token_hash


def _clock_reading() -> ClockReading | None:
    """The sending boot's clocks (X-Kiosk-Clock), if it sent them; a kiosk that sends none is
    not measured (its records' times are checked only against what else is known)."""
    header = request.headers.get(CLOCK_HEADER)
    if header is None:
        return None
    try:
        return parse_clock_header(header)
    except ValueError as exc:
        raise ApiError(
            400,
            "malformed",
            f"malformed {CLOCK_HEADER} header: expected boot_id=...; monotonic_ns=...; "
            "device_time=<ISO 8601 with offset>",
            [FieldProblem(field=CLOCK_HEADER, reason=str(exc).splitlines()[0][:200])],
        ) from exc


@api.get("/time")
def time_now() -> Response:
    return _json(TimeAnswer(server_time=central_of().now()))


@api.get("/centre")
def centre_identity() -> Response:
    """The centre key and its rotations: a kiosk checks the fingerprint it pinned (or the one in
    its enrolment code) against this before it trusts anything else."""
    central = central_of()
    key = central.signer.key().public_key()
    return _json(
        CentreAnswer(
            public_key=public_key_text(key),
            fingerprint=fingerprint(key),
            rotations=central.signer.rotations(),
            server_time=central.now(),
        )
    )


@api.post("/enrol")
def enrol() -> Response:
    central = central_of()
    asked = _body(EnrolRequest)
    try:
        kiosk, site_name, token = kiosks.enrol(central.engine, asked.code, central.now())
    except EnrolmentRefused as exc:
        raise ApiError(exc.status, exc.error, str(exc)) from exc
    # Its QR image, if one was written, holds a code that no longer works.
    sweep_enrolment_images(central.instance, central.engine, central.now())
    with central.engine.connect() as conn:
        roster = kiosks.roster_delta(conn, kiosk.site_id, 0, always=True)
        settings = kiosks.settings_answer(conn, kiosk, 0, always=True)
        chain = generations.chain_base(conn, kiosk.kiosk_id)
    assert roster is not None and settings is not None
    return _json(
        EnrolAnswer(
            kiosk_id=kiosk.kiosk_id,
            token=token,
            site_id=kiosk.site_id,
            site_name=site_name,
            server_time=central.now(),
            roster=roster,
            public_keys=kiosks.keys_answer(central.settings.issuing_key_path(central.instance)),
            settings=settings,
            chain=chain,
        )
    )


def _own_batch(kiosk: KioskIdentity, batch_kiosk_id: str) -> None:
    """A batch names its kiosk: a token may only send its own kiosk's records and photos."""
    if batch_kiosk_id != kiosk.kiosk_id:
        raise ApiError(
            403,
            "forbidden",
            f"this token belongs to kiosk {kiosk.kiosk_id!r}, not {batch_kiosk_id!r}",
            [FieldProblem(field="kiosk_id", reason="not the kiosk of the token")],
        )


@api.post("/events")
def push_events() -> Response:
    central = central_of()
    kiosk, token_hash = _pushing_kiosk(central)
    batch = _body(PushBatch)
    _own_batch(kiosk, batch.kiosk_id)
    contact = _clock_reading()
    try:
        with central.stays.ingesting():
            answer = ingest_events(
                central.engine,
                kiosk,
                batch.events,
                central.now(),
                central.rules,
                defer_stays=True,
                checks=central.checks,
                contact=contact,
                token_hash=token_hash,
            )
    except KioskGone:
        central.push_tokens.forget(token_hash)
        raise ApiError(401, "unauthorized", _GONE) from None
    if answer.stored:
        central.stays.poke()
    return _json(answer)


@api.post(PHOTOS_PATH)
def push_photos() -> Response:
    """Photos of the sending kiosk's camera records (central/photos.py)."""
    central = central_of()
    kiosk = _kiosk(central)
    batch = _body(PhotoBatch)
    _own_batch(kiosk, batch.kiosk_id)
    store = CentralPhotos.of_instance(central.instance)
    now = central.now()
    retention = central.settings.photo_retention_days
    results = store.receive(central.engine, kiosk, batch.photos, now, retention)
    return _json(PhotoAnswer(server_time=now, results=results))


@api.post("/pull")
def pull() -> Response:
    central = central_of()
    kiosk = _kiosk(central)
    asked = _body(PullRequest)
    keys = kiosks.keys_answer(central.settings.issuing_key_path(central.instance))
    # One transaction, so the roster rows and the version handed out agree.
    with central.engine.begin() as conn:
        roster = kiosks.roster_delta(conn, kiosk.site_id, asked.roster_version)
        settings = kiosks.settings_answer(conn, kiosk, asked.settings_version)
        peers = None
        if asked.peer_key is not None:
            peers = kiosks.peers_answer(conn, kiosk, asked.peer_key, asked.peer_address)
        offer = releases.offer_for(conn, kiosk)
    return _json(
        PullAnswer(
            server_time=central.now(),
            roster=roster,
            public_keys=None if keys.version == asked.keys_version else keys,
            settings=settings,
            peers=peers,
            update=offer,
        )
    )


@api.get("/releases/<version>/wheel")
def release_wheel(version: str) -> Response:
    """The wheel of a release offered to this kiosk. The kiosk trusts it for the signed sha256
    it checks, not for this answer; the token only keeps wheels from whoever asks."""
    central = central_of()
    kiosk = _kiosk(central)
    with central.engine.connect() as conn:
        release = releases.may_download(conn, kiosk, version)
    if release is None:
        raise ApiError(404, "not_found", f"no release {version} offered to this kiosk")
    path = releases.wheel_path(central.instance, release.sha256)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ApiError(404, "not_found", f"the wheel of release {version} is missing") from exc
    return Response(data, status=200, mimetype="application/octet-stream")


@api.post("/heartbeat")
def heartbeat() -> Response:
    central = central_of()
    kiosk = _kiosk(central)
    beat = _body(Heartbeat)
    record_heartbeat(
        central.engine, kiosk, beat, central.now(), central.rules, central.checks.time_tolerance
    )
    resend_after = None
    if beat.acknowledged_seq is not None:
        with reading(central.engine) as conn:
            answered = kiosks.answered_through(conn, kiosk.kiosk_id, beat.acknowledged_seq)
        if answered < beat.acknowledged_seq:
            resend_after = answered
    answer = HeartbeatAnswer(server_time=central.now(), resend_after=resend_after)
    # Without the field when it is None: a kiosk older than it refuses unknown fields.
    return Response(
        answer.model_dump_json(exclude_none=True), status=200, mimetype="application/json"
    )


@api.post(NAMES_PATH)
def names() -> Response:
    """Names of other sites' cadres whose badges this kiosk read (central/visitor_names.py)."""
    central = central_of()
    kiosk = _kiosk(central)
    asked = _body(NamesRequest)
    with central.engine.connect() as conn:
        named = visitor_names.names_for(conn, kiosk, asked.cadre_ids)
    return _json(NamesAnswer(server_time=central.now(), names=named))
