"""The round-robin proxy the several-process tests and bench/dawn.py put before the centre."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.fakes.round_robin_proxy import RoundRobinProxy


class Backend:
    """An HTTP/1.1 server that answers its own port and counts the connections it accepted.
    `die()` makes it behave as a killed process: kept connections are dropped unanswered and
    new ones refused."""

    def __init__(self) -> None:
        self.connections = 0
        self.dead = False
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                backend.connections += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if backend.dead:
                    self.close_connection = True
                    return
                body = str(backend.port).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def die(self) -> None:
        self.dead = True
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    made = [Backend(), Backend()]
    yield made
    for backend in made:
        if not backend.dead:
            backend.die()


def _get(proxy: RoundRobinProxy) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(proxy.url + "x", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


@pytest.mark.parametrize(("keepalive", "per_backend"), [(0, 5), (4, 1)])
def test_requests_alternate_and_connections_are_kept_only_when_asked(
    backends, keepalive, per_backend
) -> None:
    proxy = RoundRobinProxy([b.port for b in backends], keepalive=keepalive).start()
    try:
        answers = [_get(proxy) for _ in range(10)]
    finally:
        proxy.stop()
    ports = [str(b.port) for b in backends]
    assert answers == [(200, ports[i % 2]) for i in range(10)]
    assert [b.connections for b in backends] == [per_backend, per_backend]


def test_a_kept_connection_to_a_dead_backend_moves_on_to_the_next(backends) -> None:
    first, second = backends
    proxy = RoundRobinProxy([first.port, second.port], keepalive=4).start()
    try:
        assert [_get(proxy) for _ in range(4)] == [
            (200, str(first.port)),
            (200, str(second.port)),
        ] * 2
        first.die()
        after = [_get(proxy) for _ in range(6)]
    finally:
        proxy.stop()
    assert after == [(200, str(second.port))] * 6
    assert proxy.refused[first.port] >= 1 and proxy.failed[first.port] == 0
