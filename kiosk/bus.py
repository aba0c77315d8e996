"""The in-process event bus behind the server-sent event streams.

Publishers (the scan path, the status ticker) never wait for a browser: each subscriber has its
own bounded queue, and one that falls behind loses its oldest messages, not the publisher's time.
Messages carry ids of the form "<boot>-<n>", so a page that reconnects within the same server run
gets what it missed (Last-Event-ID) and one that reconnects after a restart does not get replays
of another run's numbers.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Events the kiosk screen cares about when it reconnects: scan results. Status is resent anyway.
REPLAYED = frozenset({"scan"})


@dataclass(frozen=True)
class Message:
    id: str
    event: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        body = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        # json.dumps never emits a raw newline, so the data fits one "data:" line.
        return f"id: {self.id}\nevent: {self.event}\ndata: {body}\n\n".encode()


class Subscription:
    def __init__(self, bus: EventBus, max_queue: int) -> None:
        self._bus = bus
        self._queue: deque[Message] = deque(maxlen=max_queue)
        self._ready = threading.Condition(bus._lock)
        self.closed = False
        self.dropped = 0

    def _offer(self, message: Message) -> None:  # called with the bus lock held
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(message)
        self._ready.notify()

    def get(self, timeout: float) -> Message | None:
        """The next message, or None when `timeout` passed or the bus closed."""
        with self._ready:
            if not self._queue and not self.closed:
                self._ready.wait(timeout)
            if self._queue:
                return self._queue.popleft()
            return None

    def close(self) -> None:
        self._bus._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self, max_queue: int = 256, history: int = 64) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()
        self._history: deque[Message] = deque(maxlen=history)
        self._counter = itertools.count(1)
        self.boot = secrets.token_hex(4)
        self.max_queue = max_queue
        self.closed = False

    def publish(self, event: str, data: dict[str, Any]) -> Message:
        with self._lock:
            message = Message(f"{self.boot}-{next(self._counter)}", event, data)
            if event in REPLAYED:
                self._history.append(message)
            for sub in self._subscribers:
                sub._offer(message)
        return message

    def subscribe(self, last_event_id: str | None = None) -> Subscription:
        """A new subscription; with the id of the last message seen, what came after it first."""
        with self._lock:
            sub = Subscription(self, self.max_queue)
            if self.closed:
                sub.closed = True
                return sub
            for message in self._missed_since(last_event_id):
                sub._queue.append(message)
            self._subscribers.add(sub)
            return sub

    def _missed_since(self, last_event_id: str | None) -> Iterator[Message]:
        if not last_event_id:
            return iter(())
        boot, _, number = last_event_id.partition("-")
        # isascii too: "²".isdigit() is True, and int() then raises on a browser's header.
        if boot != self.boot or not (number.isascii() and number.isdigit()):
            return iter(())
        seen = int(number)
        return (m for m in self._history if int(m.id.partition("-")[2]) > seen)

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)
            sub.closed = True
            sub._ready.notify_all()

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """Wakes every stream so it ends; later subscriptions end at once."""
        with self._lock:
            self.closed = True
            for sub in self._subscribers:
                sub.closed = True
                sub._ready.notify_all()
            self._subscribers.clear()
