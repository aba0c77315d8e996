"""Fetching the site's peers' records: one small thread per peer, never on the scan path.

Each thread asks its peer for the records after the last one kept, signed (sync/peers.py),
every `peer_interval_s`, with a hard deadline per exchange (`peer_timeout_s`: a watchdog shuts
the socket, so a peer that trickles bytes cannot hold the thread), and reads at most
MAX_ANSWER_BYTES. A peer that fails (down, slow, garbage, bad signature, a record that does not
check) is dropped for a while (doubling up to a minute) with the reason, which the readiness
panel and the lead's page show; the kiosk scans on with what it has.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from kiosk.peers.check import check_records
from kiosk.peers.identity import PeerDirectory
from kiosk.peers.store import PeerStore
from sync.peers import (
    KIOSK_HEADER,
    MAX_ANSWER_BYTES,
    MAX_PEER_EVENTS,
    NONCE_HEADER,
    PEER_EVENTS_PATH,
    SIGNATURE_HEADER,
    PeerEventsAnswer,
    PeerInfo,
    answer_message,
    new_nonce,
    request_message,
    sign,
    verify,
)

log = logging.getLogger(__name__)

# Reason codes besides kiosk/peers/check.py's (kiosk/web words them).
OK = "ok"
NOT_YET = "not_yet"
NO_ADDRESS = "no_address"
UNREACHABLE = "unreachable"
SLOW = "slow"
GARBAGE = "garbage"
TOO_LARGE = "too_large"
BAD_SIGNATURE = "bad_signature"
REFUSED = "refused"  # the peer refused us (403): it does not know us yet, or we were revoked
MAX_BACKOFF_S = 60.0
PAGES_PER_ROUND = 20


class PeerFault(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class PeerStatus:
    kiosk_id: str
    address: str
    state: str = NOT_YET
    detail: str = ""
    last_ok_at: float | None = None  # wall time (epoch s) of the last good exchange
    head_seq: int | None = None  # the peer's last record when it last answered
    known_seq: int = 0  # the last of its records this kiosk keeps

    @property
    def reachable(self) -> bool:
        return self.state == OK

    @property
    def behind(self) -> int | None:
        """How many of the peer's records this kiosk does not have yet (None: not known)."""
        if self.head_seq is None:
            return None
        return max(0, self.head_seq - self.known_seq)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class PeerLink:
    """The peers' threads, their status, and the store they fill."""

    def __init__(
        self,
        kiosk_id: str,
        site_id: str,
        key: Ed25519PrivateKey,
        directory: PeerDirectory,
        store: PeerStore,
        keyring: Callable[[], Mapping[int, Ed25519PublicKey]],
        *,
        interval_s: float = 0.5,
        timeout_s: float = 2.0,
        wall: Callable[[], float] = time.time,
        discovered: Callable[[str], str] | None = None,
        when_peers: Callable[[], None] | None = None,
    ) -> None:
        """`discovered(kiosk_id)`: the address LAN discovery found for a peer the centre named
        without one ("" : none). `when_peers()`: called while the centre names any peer (LAN
        discovery starts then: a kiosk alone at its site neither looks nor is looked for)."""
        self.kiosk_id = kiosk_id
        self.site_id = site_id
        self.key = key
        self.directory = directory
        self.store = store
        self.keyring = keyring
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.wall = wall
        self.discovered = discovered
        self.when_peers = when_peers
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._status: dict[str, PeerStatus] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._manager: threading.Thread | None = None

    # ------------------------------------------------------------------ lifetime

    def start(self) -> None:
        self._manager = threading.Thread(target=self._manage, name="peers", daemon=True)
        self._manager.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        threads = [self._manager, *self._threads.values()]
        for thread in threads:
            if thread is not None:
                thread.join(timeout=timeout)

    def _manage(self) -> None:
        """Start a thread for each peer the centre names; a peer no longer named stops."""
        last_prune = 0.0
        while not self._stop.is_set():
            named = {p.kiosk_id: p for p in self.directory.peers()}
            if named and self.when_peers is not None:
                self.when_peers()
            with self._lock:
                for kiosk_id in list(self._status):
                    if kiosk_id not in named:
                        del self._status[kiosk_id]
                for kiosk_id, peer in named.items():
                    if kiosk_id not in self._threads or not self._threads[kiosk_id].is_alive():
                        self._status.setdefault(kiosk_id, PeerStatus(kiosk_id, peer.address))
                        thread = threading.Thread(
                            target=self._follow,
                            args=(kiosk_id,),
                            name=f"peer-{kiosk_id}",
                            daemon=True,
                        )
                        self._threads[kiosk_id] = thread
                        thread.start()
            if time.monotonic() - last_prune > 600:
                last_prune = time.monotonic()
                try:
                    self.store.prune()
                except OSError:
                    log.exception("pruning peers' records failed")
            self._stop.wait(1.0)

    def _follow(self, kiosk_id: str) -> None:
        failures = 0
        while not self._stop.is_set():
            peer = next((p for p in self.directory.peers() if p.kiosk_id == kiosk_id), None)
            if peer is None:
                with self._lock:
                    self._threads.pop(kiosk_id, None)
                return
            delay = self.interval_s
            try:
                self.fetch(peer)
                failures = 0
            except PeerFault as fault:
                failures += 1
                delay = min(MAX_BACKOFF_S, self.interval_s * 2 ** min(failures, 10))
                self._note(peer, fault.reason, fault.detail)
                if failures == 1:
                    log.warning("peer %s dropped: %s", kiosk_id, fault)
            except Exception as exc:  # a bug must not end the thread silently
                failures += 1
                delay = MAX_BACKOFF_S
                log.exception("peer %s: unexpected failure", kiosk_id)
                self._note(peer, GARBAGE, str(exc)[:200])
            self._stop.wait(delay)

    # ------------------------------------------------------------------ one exchange

    def fetch(self, peer: PeerInfo) -> int:
        """Fetch and keep what `peer` has after what this kiosk keeps; how many records kept.
        Raises PeerFault with the reason the peer is dropped for."""
        if not peer.address and self.discovered is not None:
            peer = peer.model_copy(update={"address": self.discovered(peer.kiosk_id)})
        if not peer.address:
            raise PeerFault(NO_ADDRESS)
        peer_key = self.directory.key_of(peer.kiosk_id)
        if peer_key is None:
            raise PeerFault(REFUSED, "not a peer")
        kept = 0
        for _ in range(PAGES_PER_ROUND):
            after = self.store.head_seq(peer.kiosk_id)
            answer = self._ask(peer, peer_key, after)
            checked = check_records(
                answer.events,
                peer.kiosk_id,
                self.site_id,
                self.store.head(peer.kiosk_id),
                self.keyring(),
            )
            self.store.add(peer.kiosk_id, checked.events)
            kept += len(checked.events)
            if checked.problem:
                raise PeerFault(checked.problem, checked.detail)
            self._note(peer, OK, head_seq=answer.head_seq)
            if len(answer.events) < MAX_PEER_EVENTS or not checked.events:
                break
        return kept

    def _ask(self, peer: PeerInfo, peer_key: Ed25519PublicKey, after: int) -> PeerEventsAnswer:
        query = urlencode({"origin": peer.kiosk_id, "after": after, "limit": MAX_PEER_EVENTS})
        path = f"{PEER_EVENTS_PATH}?{query}"
        nonce = new_nonce()
        signature = sign(
            self.key, request_message(self.site_id, self.kiosk_id, peer.kiosk_id, path, nonce)
        )
        headers = {KIOSK_HEADER: self.kiosk_id, NONCE_HEADER: nonce, SIGNATURE_HEADER: signature}
        status, body, answer_headers = self._get(peer.address, path, headers)
        if status == 403:
            raise PeerFault(REFUSED, body[:200].decode("utf-8", "replace"))
        message = answer_message(self.site_id, peer.kiosk_id, self.kiosk_id, nonce, status, body)
        if not verify(peer_key, message, answer_headers.get(SIGNATURE_HEADER.lower(), "")):
            raise PeerFault(BAD_SIGNATURE, f"HTTP {status}")
        if status != 200:
            raise PeerFault(GARBAGE, f"HTTP {status}")
        try:
            answer = PeerEventsAnswer.model_validate(json.loads(body))
        except (ValidationError, ValueError) as exc:
            raise PeerFault(GARBAGE, str(exc)[:200]) from None
        if answer.origin != peer.kiosk_id or answer.site_id != self.site_id:
            raise PeerFault(GARBAGE, "an answer for another kiosk or site")
        return answer

    def _get(
        self, address: str, path: str, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        """One GET with a deadline on the whole exchange: connecting, headers and body."""
        try:
            host, port = _split(address)
        except ValueError:
            raise PeerFault(NO_ADDRESS, address) from None
        conn = http.client.HTTPConnection(host, port, timeout=self.timeout_s)
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(self.timeout_s, cut)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read(MAX_ANSWER_BYTES + 1)
            if expired.is_set():
                raise PeerFault(SLOW, f"no answer within {self.timeout_s:g} s")
            if len(body) > MAX_ANSWER_BYTES:
                raise PeerFault(TOO_LARGE, f"over {MAX_ANSWER_BYTES} bytes")
            answer_headers = {k.lower(): v for k, v in response.getheaders()}
            return response.status, body, answer_headers
        except PeerFault:
            raise
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set() or isinstance(exc, TimeoutError):
                raise PeerFault(SLOW, f"no answer within {self.timeout_s:g} s") from None
            # A connection closed before any answer (RemoteDisconnected is both) is a peer
            # gone, not garbage.
            if isinstance(exc, http.client.HTTPException) and not isinstance(exc, ConnectionError):
                raise PeerFault(GARBAGE, type(exc).__name__) from None
            raise PeerFault(UNREACHABLE, str(exc)[:200]) from None
        finally:
            watchdog.cancel()
            conn.close()

    # ------------------------------------------------------------------ status

    def _note(
        self, peer: PeerInfo, state: str, detail: str = "", head_seq: int | None = None
    ) -> None:
        with self._lock:
            old = self._status.get(peer.kiosk_id) or PeerStatus(peer.kiosk_id, peer.address)
            new = replace(
                old,
                address=peer.address,
                state=state,
                detail=detail,
                known_seq=self.store.head_seq(peer.kiosk_id),
            )
            if state == OK:
                new = replace(new, last_ok_at=self.wall(), head_seq=head_seq)
            self._status[peer.kiosk_id] = new

    def status(self) -> list[PeerStatus]:
        """Each named peer's state, by kiosk id (known_seq as kept now)."""
        with self._lock:
            rows = list(self._status.values())
        return sorted(
            (replace(r, known_seq=self.store.head_seq(r.kiosk_id)) for r in rows),
            key=lambda r: r.kiosk_id,
        )

    def problems(self) -> list[PeerStatus]:
        """Peers dropped for a reason (not those not asked yet)."""
        return [s for s in self.status() if s.state not in (OK, NOT_YET)]
