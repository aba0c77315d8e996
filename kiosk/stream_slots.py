"""Who may hold the kiosk's long-lived streams (the screen's events and camera preview).

Each open stream holds a waitress worker thread for as long as it is open, so they are counted:

- `total` slots in all (a few threads stay free for the lead's pages and the watchdog's probe);
- `reserved_local` of them only the Pi itself (loopback) may take: with the screen opened to the
  network (`screen_remote_allowed`), the network can never take the Pi's own screen's place;
- at most `per_client` per client address (an IPv6 /64 counts as one). A new stream from an
  address at its limit, or when no slot is free for it, ends that address's oldest one: a page
  that reloads, or a screen that reconnects after a hiccup, never waits for its own stale
  streams, and a process that grabs streams only ever displaces itself, or (on the Pi itself,
  where every process is one address) is displaced by the screen reconnecting.

A stream ends when its client leaves (waitress tells the app, see kiosk/web/screen.py), when it is
displaced (its `ended` event is set), or when the kiosk stops.
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from dataclasses import dataclass, field

from kiosk.lead_auth import client_key


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass(eq=False)
class Slot:
    client: str
    local: bool
    number: int
    ended: threading.Event = field(default_factory=threading.Event)
    _owner: StreamSlots | None = None

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._release(self)


class StreamSlots:
    def __init__(self, total: int, per_client: int, reserved_local: int = 2) -> None:
        self.total = total
        self.per_client = max(1, per_client)
        self.reserved_local = reserved_local
        self._lock = threading.Lock()
        self._held: list[Slot] = []
        self._numbers = itertools.count()

    def take(self, address: str | None) -> Slot | None:
        """A slot for a stream from `address`, or None when there is none to give."""
        local = is_loopback(address)
        client = client_key(address)
        with self._lock:
            mine = [s for s in self._held if s.client == client]
            if mine and (len(mine) >= self.per_client or not self._room(local)):
                self._displace(mine[0])  # its own oldest makes way, never someone else's
            if not self._room(local):
                return None
            slot = Slot(client, local, next(self._numbers), _owner=self)
            self._held.append(slot)
            return slot

    def _room(self, local: bool) -> bool:  # with the lock held
        if len(self._held) >= self.total:
            return False
        remote_held = sum(1 for s in self._held if not s.local)
        return local or remote_held < self.total - min(self.reserved_local, self.total)

    def _displace(self, slot: Slot) -> None:  # with the lock held
        slot.ended.set()
        slot._owner = None
        self._held.remove(slot)

    def _release(self, slot: Slot) -> None:
        with self._lock:
            if slot in self._held:
                self._held.remove(slot)

    @property
    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def held_by(self, address: str | None) -> int:
        client = client_key(address)
        with self._lock:
            return sum(1 for s in self._held if s.client == client)
