"""The kiosk's sync agent: a background thread that sends the log to the centre.

Each cycle pushes every pending event (in batches, seq order), then pulls what changed and sends
a heartbeat (those two once per `interval_s`, not on every wake). The scan path never waits for
it: a scan only appends to the log and calls `wake()`, which returns at once; the agent reads
`pending()` on its own thread. The log's cursor moves only through events the centre has
answered for (see sync/protocol.py), so nothing counts as sent before the centre has it.

Photos (of camera records) follow on their own channel once every pending event is sent, a
small batch per request, and only for events the centre has acknowledged; before each photo
request the agent sends any event that came in meanwhile, so an event waits at most one photo
request however slow the link.

When an exchange fails the agent waits with exponential backoff and full jitter (a random delay
up to base * 2^failures, capped), so a hundred kiosks coming back online together do not call in
step. A `wake()` during backoff retries after `wake_min_interval_s` at most, so the first scan
after the network returns sends at once. Every failure ends as `last_error` text in `snapshot()`;
the thread never dies of one.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sync.client import Refused, Reply, SyncError, Unauthorized
from sync.events import Event
from sync.protocol import (
    ACKNOWLEDGED,
    MAX_CLOCK_SAMPLES,
    MAX_NAMES_ASKED,
    MAX_PHOTOS_PER_REQUEST,
    NEWER_HEARTBEAT_FIELDS,
    CameraReport,
    ClockReport,
    ClockSample,
    Heartbeat,
    HeartbeatAnswer,
    NamesAnswer,
    NamesRequest,
    PhotoBatch,
    PhotoUpload,
    PullAnswer,
    PullRequest,
    PushAnswer,
)

log = logging.getLogger(__name__)


class EventLog(Protocol):
    """What the agent needs of the kiosk's local log (kiosk/store implements it)."""

    def pending(self, limit: int) -> list[Event]:
        """Events after the acknowledged cursor, in seq order, at most `limit`."""
        ...

    def acknowledge(self, through_seq: int) -> None:
        """Move the cursor to `through_seq`, durably."""
        ...

    def pending_count(self) -> int: ...

    @property
    def acknowledged_seq(self) -> int:
        """The cursor: the highest seq the centre acknowledged."""
        ...

    def rewind(self, to_seq: int) -> None:
        """Move the cursor back to `to_seq`, durably: the centre lost what came after it."""
        ...


@dataclass(frozen=True)
class PhotoToSend:
    sha256: str
    event_id: uuid.UUID
    jpeg: bytes


@dataclass(frozen=True)
class PhotoWork:
    """The next photos to send, and the seq through which the events' photos are then settled
    (sent, or gone: purged, never written)."""

    photos: list[PhotoToSend]
    through_seq: int


class PhotoQueue(Protocol):
    """The kiosk's photos waiting for the centre (kiosk/photo_outbox.py)."""

    def next_photos(self, max_count: int, max_bytes: int) -> PhotoWork | None:
        """None when nothing is waiting (or the next photo is not written yet)."""
        ...

    def photos_sent(self, through_seq: int) -> None: ...

    def waiting(self) -> int: ...


class SyncClient(Protocol):
    """sync.client.CentralClient, or a fake in tests."""

    def encode_push(self, kiosk_id: str, events: list[Event]) -> bytes: ...
    def push(
        self, kiosk_id: str, events: list[Event], body: bytes | None = None
    ) -> Reply[PushAnswer]: ...
    def pull(self, asked: PullRequest) -> Reply[PullAnswer]: ...
    def heartbeat(self, beat: Heartbeat) -> Reply[HeartbeatAnswer]: ...


class Waiter(Protocol):
    """How the agent waits between cycles: threading.Event, or a fake that records delays."""

    def wait(self, timeout: float | None = None) -> bool: ...
    def set(self) -> None: ...
    def clear(self) -> None: ...


class IncompleteAnswer(SyncError):
    """The centre answered for only part of a batch; the rest is sent again."""

    code = "incomplete"


@dataclass(frozen=True)
class SyncState:
    """What the lead page shows about sync."""

    enabled: bool
    online: bool | None  # None: not tried yet
    waiting: int  # events not yet acknowledged by the centre (-1: log unreadable)
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None  # the latest failure's reason; None once a cycle succeeds
    last_error_at: datetime | None
    consecutive_failures: int
    next_attempt_in_s: float | None
    sent_total: int  # events the centre acknowledged since start
    last_refusal: str | None  # the latest event the centre refused, and why
    clock_offset_s: float | None  # centre minus this kiosk's clock, from the latest exchange
    # What kind of failure last_error is (SyncError.code: "unauthorized" when the centre shut
    # this kiosk out, "untrusted" when an answer was not signed by the pinned centre key or no
    # key is pinned, "refused", "unreachable", "incomplete", or "internal"); None after success.
    last_error_code: str | None = None
    photos_sent: int = 0  # photos the centre took since start
    photos_waiting: int = 0  # events acknowledged whose photos are not settled yet


@dataclass(frozen=True)
class AgentTuning:
    batch_size: int = 500
    interval_s: float = 30.0  # pull + heartbeat this often; push at least this often
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 60.0
    wake_min_interval_s: float = 5.0  # while failing, wake() retries no sooner than this
    photo_batch_bytes: int = 512 * 1024  # photos per request: at most this many bytes
    photo_budget_s: float = 20.0  # a cycle sends photos this long at most, then pulls again


class _Ahead:
    """Runs one function on a short-lived thread; result() waits and re-raises its error."""

    def __init__(self, work: Callable[[], tuple[list[Event], bytes]]):
        self._value: tuple[list[Event], bytes] = ([], b"")
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], tuple[list[Event], bytes]]) -> None:
        try:
            self._value = work()
        except BaseException as exc:  # handed to the agent's thread by result()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> tuple[list[Event], bytes]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def acknowledgeable(batch: list[Event], answer: PushAnswer) -> int | None:
    """The highest seq of the batch's prefix the centre answered for, or None.

    A result counts only if it sits at the event's index and names the event's id, so an answer
    that belongs to another batch (or is garbage) acknowledges nothing.
    """
    by_index = {r.index: r for r in answer.results}
    through = None
    for index, event in enumerate(batch):
        result = by_index.get(index)
        if result is None or result.event_id != str(event.event_id):
            break
        if result.status not in ACKNOWLEDGED:
            break
        through = event.seq
    return through


class SyncAgent:
    def __init__(
        self,
        log: EventLog,
        client: SyncClient,
        kiosk_id: str,
        boot_id: str,
        *,
        tuning: AgentTuning = AgentTuning(),
        pull_versions: Callable[[], PullRequest] | None = None,
        on_pull: Callable[[PullAnswer], None] | None = None,
        heartbeat: Callable[[], Heartbeat] | None = None,
        on_clock_sample: Callable[[ClockSample], None] | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        waiter: Waiter | None = None,
        photos: PhotoQueue | None = None,
    ):
        """
        log: the kiosk's event log (pending / acknowledge / pending_count).
        client: a CentralClient with the kiosk's token.
        pull_versions: what the kiosk holds now (roster, keys, settings versions).
        on_pull: gets every pull answer (parts that did not change are None).
        heartbeat: the kiosk's status; the agent fills in queue_length and adds its clock
            samples.
        on_clock_sample: gets the offset measured at each exchange (for the TimeKeeper).
        photos: the photos to send after the events (None: no photo channel).
        """
        self._log = log
        self._client = client
        self._kiosk_id = kiosk_id
        self._boot_id = boot_id
        self._tuning = tuning
        self._pull_versions = pull_versions or PullRequest
        self._on_pull = on_pull
        self._heartbeat = heartbeat
        self._refused_fields: set[str] = set()
        self._on_clock_sample = on_clock_sample
        self._wall = wall_clock
        self._mono = monotonic
        self._rand = rand
        self._waiter: Waiter = waiter or threading.Event()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._last_full: float | None = None
        self._last_attempt_mono: float | None = None
        self._samples: list[ClockSample] = []
        self._state = SyncState(
            enabled=True,
            online=None,
            waiting=0,
            last_success_at=None,
            last_attempt_at=None,
            last_error=None,
            last_error_at=None,
            consecutive_failures=0,
            next_attempt_in_s=None,
            sent_total=0,
            last_refusal=None,
            clock_offset_s=None,
        )
        self._next_attempt_mono: float | None = None
        self._photos = photos
        self._photos_unsupported = False
        self._photos_left = False
        # The centre's last `resend_after` acted on: a gap it can never fill (a record it
        # rejects) is sent again once per value, not at every heartbeat.
        self._resent_after: int | None = None

    # --- the app's side ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self.run_forever, name="sync-agent", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the exchange in flight (which the client's timeout bounds)."""
        self._stopping = True
        self._waiter.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Send soon (after a scan). Never blocks."""
        self._waiter.set()

    def snapshot(self) -> SyncState:
        try:
            waiting = self._log.pending_count()
        except Exception:  # the page must render even if the log cannot be read right now
            waiting = -1
        photos_waiting = 0
        if self._photos is not None:
            try:
                photos_waiting = self._photos.waiting()
            except Exception:
                photos_waiting = -1
        with self._lock:
            state = replace(self._state, photos_waiting=photos_waiting)
            next_in = None
            if self._next_attempt_mono is not None:
                next_in = max(0.0, self._next_attempt_mono - self._mono())
        return replace(state, waiting=waiting, next_attempt_in_s=next_in)

    # --- one cycle ---------------------------------------------------------------------------

    def run_cycle(self, full: bool = True) -> bool:
        """Push everything pending; with `full`, pull and heartbeat too. True on success."""
        attempt_at = self._wall()
        self._last_attempt_mono = self._mono()
        with self._lock:
            self._state = replace(self._state, last_attempt_at=attempt_at)
        try:
            self._push_all()
            if full:
                self._pull()
                self._ask_names()
                self._send_heartbeat()
                self._last_full = self._mono()
            self._push_photos()
        except SyncError as exc:
            # "online": the centre answered, even if only to refuse; garbage counts as offline
            # (a captive portal, a proxy's error page).
            self._failed(str(exc), exc.code, online=isinstance(exc, Refused | Unauthorized))
            return False
        except Exception as exc:  # a bug in a callback or the log must not kill the thread
            log.exception("sync cycle failed")
            self._failed(f"internal error: {type(exc).__name__}: {exc}", "internal", online=False)
            return False
        with self._lock:
            self._state = replace(
                self._state,
                online=True,
                last_success_at=self._wall(),
                last_error=None,
                last_error_code=None,
                consecutive_failures=0,
            )
        return True

    def _failed(self, reason: str, code: str, online: bool) -> None:
        if code == "untrusted":
            log.warning("sync: %s", reason)
        with self._lock:
            self._state = replace(
                self._state,
                online=online,
                last_error=reason,
                last_error_code=code,
                last_error_at=self._wall(),
                consecutive_failures=self._state.consecutive_failures + 1,
            )

    def _push_all(self) -> None:
        size = self._tuning.batch_size
        batch = self._log.pending(size)
        body = self._client.encode_push(self._kiosk_id, batch) if batch else b""
        while batch and not self._stopping:
            # While the centre works on this batch, read and encode the one after it (it starts
            # where this one ends: nothing is acknowledged until the answer is in).
            ahead = _Ahead(functools.partial(self._read_ahead, len(batch), size))
            try:
                reply = self._client.push(self._kiosk_id, batch, body)
            except BaseException:
                ahead.wait()
                raise
            upcoming, upcoming_body = ahead.result()
            self._took_time(reply)
            through = acknowledgeable(batch, reply.answer)
            if through is not None:
                self._log.acknowledge(through)
            refused = [r for r in reply.answer.results if r.status == "rejected"]
            acknowledged = sum(1 for e in batch if through is not None and e.seq <= through)
            with self._lock:
                self._state = replace(
                    self._state,
                    sent_total=self._state.sent_total + acknowledged,
                    last_refusal=(
                        f"seq {refused[-1].seq}: {refused[-1].reason}"
                        if refused
                        else self._state.last_refusal
                    ),
                )
            if through is None or through < batch[-1].seq:
                raise IncompleteAnswer(
                    f"the centre answered for {acknowledged} of {len(batch)} events; "
                    "the rest will be sent again"
                )
            if upcoming and upcoming[0].seq != through + 1:  # the log moved under us: re-read
                upcoming = self._log.pending(size)
                upcoming_body = self._client.encode_push(self._kiosk_id, upcoming)
            batch, body = upcoming, upcoming_body

    def _push_photos(self) -> None:
        """Send waiting photos, a batch per request, for up to photo_budget_s; any event that
        came in meanwhile goes first. A centre without the photo channel (404) is not asked
        again; a batch it refuses (400) is skipped, not sent forever."""
        self._photos_left = False
        queue = self._photos
        send = getattr(self._client, "photos", None)
        if queue is None or send is None or self._photos_unsupported:
            return
        started = self._mono()
        while not self._stopping:
            if self._log.pending_count() > 0:
                self._push_all()
            if self._mono() - started >= self._tuning.photo_budget_s:
                self._photos_left = True
                return
            work = queue.next_photos(MAX_PHOTOS_PER_REQUEST, self._tuning.photo_batch_bytes)
            if work is None:
                return
            if work.photos:
                batch = PhotoBatch(
                    kiosk_id=self._kiosk_id,
                    photos=[PhotoUpload.of(p.sha256, p.event_id, p.jpeg) for p in work.photos],
                )
                try:
                    reply = send(batch)
                except Refused as exc:
                    if exc.status == 404:
                        self._photos_unsupported = True
                        log.info("the centre takes no photos (404): not sending them")
                        return
                    log.warning("the centre refused %d photos: %s", len(work.photos), exc)
                else:
                    self._took_time(reply)
                    taken = 0
                    for result in reply.answer.results:
                        if result.status in ("stored", "duplicate"):
                            taken += 1
                        else:
                            log.warning(
                                "photo %s… not kept by the centre: %s %s",
                                result.sha256[:12],
                                result.status,
                                result.reason,
                            )
                    with self._lock:
                        self._state = replace(
                            self._state, photos_sent=self._state.photos_sent + taken
                        )
            queue.photos_sent(work.through_seq)

    def _read_ahead(self, skip: int, size: int) -> tuple[list[Event], bytes]:
        following = self._log.pending(skip + size)[skip:]
        body = self._client.encode_push(self._kiosk_id, following) if following else b""
        return following, body

    def look_up_names(
        self,
        wanted: Callable[[], list[str]],
        learned: Callable[[list[str], NamesAnswer], None],
    ) -> None:
        """After each pull, ask the centre for the names of the cadres `wanted()` gives (other
        sites' cadres whose badges this kiosk read) and hand the answer to `learned(asked,
        answer)`. Never fails a cycle: an older centre (404) is not asked again."""
        self._names = (wanted, learned)

    def _ask_names(self) -> None:
        lookup = getattr(self, "_names", None)
        names = getattr(self._client, "names", None)
        if lookup is None or names is None or getattr(self, "_names_unsupported", False):
            return
        wanted, learned = lookup
        asked = wanted()[:MAX_NAMES_ASKED]
        if not asked:
            return
        try:
            reply = names(NamesRequest(cadre_ids=asked))
        except Refused as exc:
            if exc.status == 404:
                self._names_unsupported = True
            log.info("names of visitors not answered: %s", exc)
            return
        except SyncError as exc:
            log.info("names of visitors not answered: %s", exc)
            return
        learned(asked, reply.answer)

    def _pull(self) -> None:
        reply = self._client.pull(self._pull_versions())
        self._took_time(reply)
        if self._on_pull is not None:
            self._on_pull(reply.answer)

    def _send_heartbeat(self) -> None:
        if self._heartbeat is not None:
            beat = self._heartbeat()
        else:
            beat = Heartbeat(
                queue_length=0,
                camera=CameraReport(ok=False, detail="not reported"),
                clock=ClockReport(trusted=False, boot_id=self._boot_id),
                ready=True,
            )
        with self._lock:
            mine = list(self._samples)
        samples = (list(beat.clock.samples) + mine)[-MAX_CLOCK_SAMPLES:]
        beat = beat.model_copy(
            update={
                "queue_length": max(self._log.pending_count(), 0),
                "clock": beat.clock.model_copy(update={"samples": samples}),
                "sent_at": self._wall(),
                "acknowledged_seq": self._log.acknowledged_seq,
            }
        )
        beat = beat.model_copy(update=dict.fromkeys(self._refused_fields))
        try:
            reply = self._client.heartbeat(beat)
        except Refused as exc:
            # A centre older than a field refuses it: say the rest, and stop offering it until
            # the kiosk restarts (after the centre's update).
            unknown = [
                name
                for name in NEWER_HEARTBEAT_FIELDS
                if getattr(beat, name) is not None and _names_field(exc, name)
            ]
            if not unknown:
                raise
            log.warning("the centre does not take %s; heartbeats go without", ", ".join(unknown))
            self._refused_fields.update(unknown)
            reply = self._client.heartbeat(beat.model_copy(update=dict.fromkeys(unknown)))
        with self._lock:
            self._samples = [s for s in self._samples if s not in mine]
        self._took_time(reply)
        self._resend(reply.answer.resend_after)

    def _resend(self, after: int | None) -> None:
        """The centre lost records it had acknowledged (restored from an older backup): move
        the cursor back so the next push sends them again. The log keeps every record (archived
        segments are read like live ones), and the centre stores each once, by event id."""
        if after is None or after >= self._log.acknowledged_seq or after == self._resent_after:
            return
        log.warning(
            "the centre has this kiosk's records only through seq %d of %d acknowledged: "
            "sending the rest again",
            after,
            self._log.acknowledged_seq,
        )
        self._log.rewind(after)
        self._resent_after = after
        self._waiter.set()

    def _took_time(self, reply: Reply[Any]) -> None:
        sample = reply.timing.sample(reply.answer.server_time, self._boot_id)
        with self._lock:
            self._state = replace(self._state, clock_offset_s=sample.offset_s)
            # Keep the fastest round trips for the next heartbeat: the most precise offsets.
            ranked = sorted([*self._samples, sample], key=lambda s: s.rtt_s or 0.0)
            self._samples = ranked[:5]
        if self._on_clock_sample is not None:
            self._on_clock_sample(sample)

    # --- the thread --------------------------------------------------------------------------

    def backoff_delay(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(failures-1))]."""
        ceiling: float = min(
            self._tuning.backoff_cap_s,
            self._tuning.backoff_base_s * (2 ** min(failures - 1, 30)),
        )
        return max(0.05, self._rand() * ceiling)

    def run_forever(self) -> None:
        """The agent's loop (start() runs it on a daemon thread) until stop()."""
        while not self._stopping:
            due = self._last_full is None or (
                self._mono() - self._last_full >= self._tuning.interval_s
            )
            ok = self.run_cycle(full=due)
            if self._stopping:
                break
            failures = self.snapshot().consecutive_failures
            delay = self._tuning.interval_s if ok else self.backoff_delay(failures)
            if ok and self._photos_left:
                delay = 0.05  # photos still waiting: go on after a breath
            self.sleep(delay, failing=not ok)

    def sleep(self, delay: float, failing: bool) -> None:
        """Wait `delay`, or less if woken; while failing, a wake waits out the minimum interval."""
        with self._lock:
            self._next_attempt_mono = self._mono() + delay
        woken = self._waiter.wait(delay)
        self._waiter.clear()
        if woken and failing and not self._stopping and self._last_attempt_mono is not None:
            rest = self._tuning.wake_min_interval_s - (self._mono() - self._last_attempt_mono)
            if rest > 0:
                with self._lock:
                    self._next_attempt_mono = self._mono() + rest
                self._waiter.wait(rest)
                self._waiter.clear()
        with self._lock:
            self._next_attempt_mono = None


def _names_field(exc: Refused, name: str) -> bool:
    """Whether a 400 answer blames the field `name` (or something inside it)."""
    fields = exc.answer.fields if exc.answer is not None else []
    return exc.status == 400 and any(
        f.field == name or f.field.startswith(name + ".") for f in fields
    )
