"""The kiosk's answer to a peer: its own records after a seq, signed (GET /peers/events).

Only a kiosk the centre named as a peer of this site gets an answer, and only when it signed
its request with its key; everyone else gets 403 (unsigned, unknown, revoked, another site's).
Only the origin's own records are served: asked for another kiosk's, the answer is 404.
Records older than yesterday's service day are not sent (a new peer starts there).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.peers.identity import PeerDirectory
from kiosk.store import EventLog
from sync.peers import (
    KIOSK_HEADER,
    MAX_PEER_EVENTS,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    answer_message,
    nonce_is_valid,
    request_message,
    sign,
    verify,
)


@dataclass(frozen=True)
class Served:
    status: int
    body: bytes
    headers: dict[str, str]


class PeerServer:
    def __init__(
        self,
        kiosk_id: str,
        site_id: str,
        key: Ed25519PrivateKey,
        directory: PeerDirectory,
        log: EventLog,
        window_start: Callable[[], datetime],
    ) -> None:
        self.kiosk_id = kiosk_id
        self.site_id = site_id
        self.key = key
        self.directory = directory
        self.log = log
        self.window_start = window_start
        self._lock = threading.Lock()
        self._window: tuple[datetime, int] | None = None  # (window start, its first seq)

    def _first_seq(self) -> int:
        """The first seq of the window (cached per window start: one look a day)."""
        start = self.window_start()
        with self._lock:
            if self._window is not None and self._window[0] == start:
                return self._window[1]
        seqs = [
            e.seq for e in self.log.events_between(start, datetime.max.replace(tzinfo=start.tzinfo))
        ]
        first = min(seqs, default=self.log.last_seq + 1)
        with self._lock:
            self._window = (start, first)
        return first

    def answer(self, full_path: str, args: Mapping[str, str], headers: Mapping[str, str]) -> Served:
        asker = headers.get(KIOSK_HEADER, "")
        nonce = headers.get(NONCE_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "")
        key = self.directory.key_of(asker) if asker else None
        if key is None or not nonce_is_valid(nonce):
            return self._plain(403, "not a peer of this site")
        message = request_message(self.site_id, asker, self.kiosk_id, full_path, nonce)
        if not verify(key, message, signature):
            return self._plain(403, "not signed by that peer")
        origin = args.get("origin", self.kiosk_id)
        if origin != self.kiosk_id:
            return self._signed(asker, nonce, 404, {"error": "only the origin serves its records"})
        try:
            after = int(args.get("after", "0"))
            limit = int(args.get("limit", str(MAX_PEER_EVENTS)))
        except ValueError:
            return self._signed(asker, nonce, 400, {"error": "after and limit are numbers"})
        limit = max(1, min(limit, MAX_PEER_EVENTS))
        after = max(after, self._first_seq() - 1, 0)
        events = self.log.events_after(after, limit)
        body = {
            "origin": self.kiosk_id,
            "site_id": self.site_id,
            "head_seq": self.log.last_seq,
            "events": [e.wire() for e in events],
        }
        return self._signed(asker, nonce, 200, body)

    def _signed(self, asker: str, nonce: str, status: int, body: object) -> Served:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        message = answer_message(self.site_id, self.kiosk_id, asker, nonce, status, data)
        return Served(
            status,
            data,
            {
                "Content-Type": "application/json",
                KIOSK_HEADER: self.kiosk_id,
                SIGNATURE_HEADER: sign(self.key, message),
            },
        )

    @staticmethod
    def _plain(status: int, reason: str) -> Served:
        return Served(
            status, json.dumps({"error": reason}).encode(), {"Content-Type": "application/json"}
        )
