"""A round-robin HTTP proxy on loopback: what nginx's upstream of several `central serve`
processes does, small enough to read.

Each request goes to the next backend in turn, so requests of one kiosk really do reach
different processes: on a new connection each time, or with `keepalive` on one of up to that
many idle connections kept per backend (nginx's `keepalive` in an upstream, as
docs/central-nginx.md sets it; a kept connection the backend has closed is replaced by a new
one, as nginx does). A backend that refuses the connection (its process is dead) is skipped for
the next one, as nginx's `proxy_next_upstream error` does; a backend that fails after the
request was sent gets the client a 502, as nginx does for a POST, and the kiosk sends it again
later. It only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}
)


class RoundRobinProxy:
    def __init__(
        self, backend_ports: list[int], timeout_s: float = 60.0, keepalive: int = 0
    ) -> None:
        self.backends = list(backend_ports)
        self.timeout_s = timeout_s
        self.keepalive = keepalive
        self._idle: dict[int, list[http.client.HTTPConnection]] = {p: [] for p in backend_ports}
        self.sent: Counter[int] = Counter()  # requests answered, per backend port
        self.refused: Counter[int] = Counter()  # connections refused, per backend port
        self.failed: Counter[int] = Counter()  # failures after sending (502 to the client)
        self._next = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> RoundRobinProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for idle in self._idle.values():
                for conn in idle:
                    conn.close()
                idle.clear()

    def _order(self) -> list[int]:
        """The backends in the order to try for one request: the next in turn first."""
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
        return self.backends[start:] + self.backends[:start]

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        for port in self._order():
            kept = self._take_idle(port)
            if kept is not None:
                try:
                    return self._exchange(port, kept, method, path, headers, body)
                except (OSError, http.client.HTTPException):
                    kept.close()  # closed by the backend while idle: a new connection below
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout_s)
            try:
                conn.connect()
            except ConnectionRefusedError:
                conn.close()
                with self._lock:
                    self.refused[port] += 1
                continue
            try:
                return self._exchange(port, conn, method, path, headers, body)
            except (OSError, http.client.HTTPException):
                conn.close()
                with self._lock:
                    self.failed[port] += 1
                return 502, [("Content-Type", "text/plain")], b"upstream failed\n"
        return 502, [("Content-Type", "text/plain")], b"no upstream answers\n"

    def _exchange(
        self,
        port: int,
        conn: http.client.HTTPConnection,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn.request(method, path, body=body or None, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        with self._lock:
            self.sent[port] += 1
            idle = self._idle[port]
            keep = bool(self.keepalive) and not answer.will_close and len(idle) < self.keepalive
            if keep:
                idle.append(conn)
        if not keep:
            conn.close()
        kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_HEADERS]
        return answer.status, kept, data

    def _take_idle(self, port: int) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle[port]
            return idle.pop() if idle else None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                headers["X-Forwarded-For"] = self.client_address[0]
                status, answer_headers, data = proxy.forward(self.command, self.path, headers, body)
                self.send_response(status)
                for key, value in answer_headers:
                    if key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _relay
            do_POST = _relay
            do_PUT = _relay

        return Handler
