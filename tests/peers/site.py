"""Helpers of the peer tests: a switchable loopback link (partitions), a lead login, and a peer
request signed as a given kiosk."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlencode

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.peers import (
    KIOSK_HEADER,
    NONCE_HEADER,
    PEER_EVENTS_PATH,
    SIGNATURE_HEADER,
    new_nonce,
    request_message,
    sign,
)


class Link:
    """A TCP forwarder on loopback in front of one kiosk: `cut()` drops every connection, open
    and new (a partition); `heal()` lets them through again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._cut = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def heal(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with self._lock:
                    self._open.discard(sock)


def lead_session(url: str, pin: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/lead/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None, page[:500]
    answer = session.post(
        f"{url}/lead/login",
        data={"pin": pin, "name": "张组长", "csrf_token": token.group(1)},
        timeout=10,
    )
    assert answer.ok, answer.text[:500]
    return session


def signed_get(
    url: str, key: Ed25519PrivateKey, site_id: str, asker: str, answerer: str, after: int = 0
) -> requests.Response:
    """A peer request for `answerer`'s records, signed as `asker` with `key`."""
    path = f"{PEER_EVENTS_PATH}?{urlencode({'origin': answerer, 'after': after})}"
    nonce = new_nonce()
    signature = sign(key, request_message(site_id, asker, answerer, path, nonce))
    return requests.get(
        url + path,
        headers={KIOSK_HEADER: asker, NONCE_HEADER: nonce, SIGNATURE_HEADER: signature},
        timeout=10,
    )


def key_of(instance: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes((instance / "peer_key").read_bytes())
