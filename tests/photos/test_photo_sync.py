"""Photos travel to the centre on their own channel: after their events, idempotent by hash,
resumable, and never ahead of the record that names them."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import func, insert, select

from central import kiosks
from central.app import create_app
from central.db.schema import events, photos
from central.duties import DutyRunner
from central.photos import CentralPhotos, photo_retention_duty, purge_photos
from central.services import central_of
from kiosk import enrolment
from kiosk.photo_outbox import PhotoOutbox
from scanner import BadgeRead
from sync.agent import AgentTuning, PhotoWork, SyncAgent
from sync.client import CentralClient, Refused
from sync.protocol import PhotoBatch, PhotoUpload
from tests.fakes.network import WSGIAdapter, session_with
from tests.kiosk_web.helpers import make_kit
from tests.photos.scenes import room, with_face
from tests.sync.helpers import T0, enrolled, load_roster

URL = "http://centre.test"


@pytest.fixture
def centre(tmp_path):
    app = create_app(tmp_path / "centre", now=lambda: T0, config={"TESTING": True})
    load_roster(central_of(app).engine, {"site-1": ["C001", "C002", "C003"]})
    return app


@pytest.fixture
def kit(tmp_path, issuing_key):
    made = make_kit(tmp_path, issuing_key, photo_capture=True)
    made.services.photos.start()
    yield made
    made.services.stop()


def check_in(kit, *cadre_ids):
    services = kit.services
    for cadre_id in cadre_ids:
        face = with_face(room())
        face[0, : len(cadre_id)] = list(cadre_id.encode())  # each photo its own bytes
        now = time.monotonic_ns()
        services.faces.check_now(1, face, now)
        services.handle_read(BadgeRead(kit.badge(cadre_id), now, 1, face))
    assert services.photos.flush()


def agent_for(kit, token, adapter, **kwargs):
    client = CentralClient(URL, token, timeout_s=5, session=session_with(adapter))
    outbox = PhotoOutbox(kit.services.log, kit.services.photos)
    tuning = kwargs.pop("tuning", AgentTuning(batch_size=2))
    agent = SyncAgent(
        kit.services.log, client, "kiosk-t1", "boot-1", tuning=tuning, photos=outbox, **kwargs
    )
    return agent, outbox


def centre_photos(centre) -> dict[str, str]:
    with central_of(centre).engine.connect() as conn:
        return dict(conn.execute(select(photos.c.event_id, photos.c.sha256)).all())


def test_photos_follow_their_events_and_match_the_hashes(centre, kit):
    _, token = enrolled(central_of(centre).engine, "site-1", "kiosk-t1")
    check_in(kit, "C001", "C002", "C003")
    log = kit.services.log
    agent, outbox = agent_for(kit, token, WSGIAdapter(centre))
    assert agent.run_cycle()
    assert log.pending_count() == 0
    held = centre_photos(centre)
    camera = [e for e in log.iter_events() if e.photo_sha256]
    assert len(camera) == 3
    assert held == {str(e.event_id): e.photo_sha256 for e in camera}
    store = CentralPhotos.of_instance(central_of(centre).instance)
    for event in camera:
        data = store.read(event.photo_sha256)
        assert data is not None and hashlib.sha256(data).hexdigest() == event.photo_sha256
    with central_of(centre).engine.connect() as conn:
        stored_hashes = dict(conn.execute(select(events.c.event_id, events.c.photo_sha256)).all())
    assert all(stored_hashes[str(e.event_id)] == e.photo_sha256 for e in camera)
    assert outbox.through_seq == log.last_seq and agent.snapshot().photos_sent == 3
    assert outbox.next_photos(16, 10**6) is None
    assert PhotoOutbox(log, kit.services.photos).through_seq == log.last_seq  # durable


def test_no_photo_goes_before_its_event_is_acknowledged(centre, kit):
    check_in(kit, "C001")
    outbox = PhotoOutbox(kit.services.log, kit.services.photos)
    assert kit.services.log.acknowledged_seq == 0
    assert outbox.next_photos(16, 10**6) is None


def test_centre_keeps_only_the_photo_a_record_of_the_kiosk_names(centre, kit):
    kiosk_id, token = enrolled(central_of(centre).engine, "site-1", "kiosk-t1")
    check_in(kit, "C001")
    event = next(e for e in kit.services.log.iter_events() if e.photo_sha256)
    data = kit.services.photos.read(event.photo_sha256)
    client = CentralClient(URL, token, timeout_s=5, session=session_with(WSGIAdapter(centre)))

    def send(*uploads):
        answer = client.photos(PhotoBatch(kiosk_id=kiosk_id, photos=list(uploads))).answer
        return [(r.status, r.reason) for r in answer.results]

    # Ahead of its record: the centre has no such event yet.
    assert send(PhotoUpload.of(event.photo_sha256, event.event_id, data))[0][0] == "no_event"
    agent, _ = agent_for(kit, token, WSGIAdapter(centre))
    agent._photos = None  # events only
    assert agent.run_cycle()
    other = b"\xff\xd8\xff" + b"another picture"
    assert send(
        PhotoUpload.of(hashlib.sha256(other).hexdigest(), event.event_id, other),  # swapped
        PhotoUpload.of(event.photo_sha256, event.event_id, other),  # bytes not of that hash
        PhotoUpload.of(event.photo_sha256, uuid.uuid4(), data),  # another record
    ) == [
        ("mismatch", "the record names another photo"),
        ("mismatch", "the bytes do not have this sha256"),
        ("no_event", "no such record of this kiosk"),
    ]
    assert centre_photos(centre) == {}
    good = PhotoUpload.of(event.photo_sha256, event.event_id, data)
    assert send(good) == [("stored", "")]
    assert send(good) == [("duplicate", "")]


def test_a_kiosks_token_cannot_send_another_kiosks_photos(centre, kit):
    engine = central_of(centre).engine
    _, token = enrolled(engine, "site-1", "kiosk-t1")
    other_kiosk, _ = enrolled(engine, "site-1", "kiosk-t2")
    check_in(kit, "C001")
    event = next(e for e in kit.services.log.iter_events() if e.photo_sha256)
    upload = PhotoUpload.of(
        event.photo_sha256, event.event_id, kit.services.photos.read(event.photo_sha256)
    )
    client = CentralClient(URL, token, timeout_s=5, session=session_with(WSGIAdapter(centre)))
    with pytest.raises(Refused) as refused:
        client.photos(PhotoBatch(kiosk_id=other_kiosk, photos=[upload]))
    assert refused.value.status == 403 and "not the kiosk of the token" in str(refused.value.answer)
    assert centre_photos(centre) == {}


def test_answer_lost_after_the_centre_stored_photos_is_resent_harmlessly(centre, kit):
    _, token = enrolled(central_of(centre).engine, "site-1", "kiosk-t1")
    check_in(kit, "C001", "C002")
    lost = []

    class LosesFirstPhotoAnswer(WSGIAdapter):
        def send(self, request, *args, **kwargs):
            answer = super().send(request, *args, **kwargs)
            if request.url.endswith("/photos") and not lost:
                lost.append(request.url)
                raise requests.ConnectionError("reset after the centre answered")
            return answer

    agent, outbox = agent_for(kit, token, LosesFirstPhotoAnswer(centre))
    assert not agent.run_cycle()
    assert outbox.through_seq == 0 and len(centre_photos(centre)) == 2
    assert agent.run_cycle()
    assert outbox.through_seq == kit.services.log.last_seq
    assert len(centre_photos(centre)) == 2


class EventArrivesDuringPhotos:
    """A photo queue that makes a new check-in while the agent is sending photos."""

    def __init__(self, inner, kit):
        self.inner = inner
        self.kit = kit
        self.sent_before: list[int] = []

    def next_photos(self, max_count, max_bytes) -> PhotoWork | None:
        if not self.sent_before:
            check_in(self.kit, "C003")
        self.sent_before.append(self.kit.services.log.pending_count())
        return self.inner.next_photos(1, max_bytes)

    def photos_sent(self, through_seq):
        self.inner.photos_sent(through_seq)

    def waiting(self):
        return self.inner.waiting()


def test_an_event_made_while_photos_go_is_sent_before_the_next_photo(centre, kit):
    _, token = enrolled(central_of(centre).engine, "site-1", "kiosk-t1")
    check_in(kit, "C001", "C002")
    agent, outbox = agent_for(kit, token, WSGIAdapter(centre))
    queue = EventArrivesDuringPhotos(outbox, kit)
    agent._photos = queue
    assert agent.run_cycle()
    # The first look made an event; every later look found it (and all events) sent already.
    assert queue.sent_before[0] == 1 and set(queue.sent_before[1:]) == {0}
    assert len(centre_photos(centre)) == 3


def test_centre_retention_deletes_old_days_and_nothing_else(centre, caplog):
    central = central_of(centre)
    store = CentralPhotos.of_instance(central.instance)
    today = date(2026, 12, 1)
    rows = []
    for n, age in enumerate((40, 31, 30, 0)):
        data = b"\xff\xd8\xff" + bytes([n]) * 100
        digest = hashlib.sha256(data).hexdigest()
        store._write(digest, data)
        rows.append(
            {
                "sha256": digest,
                "event_id": str(uuid.uuid4()),
                "kiosk_id": "k",
                "service_day": today - timedelta(days=age),
                "size": len(data),
                "received_at": T0.replace(tzinfo=None),
            }
        )
    rows.append(dict(rows[-1], event_id=str(uuid.uuid4())))  # a second record, same file
    rows.append(dict(rows[0], event_id=str(uuid.uuid4()), service_day=today))  # same, kept
    with central.engine.begin() as conn:
        conn.execute(insert(photos), rows)
    runner = DutyRunner(central.engine, "host:1:a")
    runner.add(photo_retention_duty(store, lambda: today, 30))
    with caplog.at_level(logging.INFO, logger="central.photos"):
        assert runner.run_once("photo_retention") == 2  # the duty, under its lease
    assert purge_photos(central.engine, store, today, 30) == []
    # Day 40's file stays: a record of today names it too.
    assert [store.read(r["sha256"]) is None for r in rows[:4]] == [False, True, False, False]
    with central.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(photos)).scalar_one() == 4
    assert "photos of 2026-10-22 purged: 1 files (older than 30 days)" in caplog.text


def test_photos_go_through_the_kiosks_own_client_which_checks_the_centre_key(centre, kit):
    """The running kiosk's client (kiosk/enrolment.py) refuses every unsigned answer; the photo
    channel goes through it like the pushes, so a kiosk that pinned its centre still sends its
    photos (a client without the channel would skip them without a word)."""
    engine = central_of(centre).engine
    new = kiosks.add_kiosk(engine, "site-1", T0, timedelta(hours=1), kiosk_id="kiosk-t1")
    (kit.instance / "kiosk.toml").write_text("sync_plain_http_allowed = true  # in process\n")
    session = session_with(WSGIAdapter(centre))
    fingerprint = central_of(centre).signer.fingerprint()
    client = CentralClient(URL, session=session)
    enrolment.enroll(kit.instance, URL, new.code, fingerprint, client=client)
    check_in(kit, "C001", "C002")
    settings = kit.services.settings.model_copy(
        update={"central_url": URL, "sync_plain_http_allowed": True}
    )
    agent = enrolment.make_sync_agent(
        kit.instance,
        settings,
        kit.services.log,
        kit.services.roster,
        kit.services.keeper,
        lambda: enrolment.KioskFacts(camera_ok=True),
        session=session,
        photos=PhotoOutbox(kit.services.log, kit.services.photos),
    )
    assert agent is not None
    assert agent.run_cycle(), agent.snapshot().last_error
    camera = [e for e in kit.services.log.iter_events() if e.photo_sha256]
    assert len(camera) == 2
    assert centre_photos(centre) == {str(e.event_id): e.photo_sha256 for e in camera}
    assert agent.snapshot().photos_sent == 2
