"""A fault-injecting HTTP proxy for the network seam between a kiosk and the centre.

It listens on loopback, forwards each request to the real centre, and on a seeded random draw
misbehaves the way real site networks do: drops, resets, delays, 500s, garbage and truncated
bodies, a response lost after the centre stored the batch, the same request delivered twice.
Used by the fault tests and bench/faults.py; it only ever talks to 127.0.0.1.

Answers pass with their headers (the centre's signature among them). `tamper`, when given, is the
man in the middle: it gets each answer that passes (route, request body, status, headers, body)
and returns what the kiosk gets instead.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = (
    "drop",  # close the connection before forwarding: the centre never sees the request
    "reset",  # TCP reset before forwarding
    "delay",  # forward after a pause
    "error500",  # answer 500 without forwarding
    "garbage",  # forward, then answer 200 with a body that is not JSON
    "truncated",  # forward, then answer with half the body and close
    "lost_response",  # forward (the centre stores), then close without answering
    "duplicate",  # forward the same request twice, answer with the second response
)


# (path, request body, status, headers, body) -> (status, headers, body)
Tamper = Callable[[str, bytes, int, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]
PASSED_HEADERS = {"content-type", "www-authenticate"}


def passed_headers(headers: dict[str, str]) -> dict[str, str]:
    """The answer's headers a proxy hands on (hop-by-hop and length ones are its own)."""
    return {
        k: v
        for k, v in headers.items()
        if k.lower() in PASSED_HEADERS or k.lower().startswith("x-")
    }


@dataclass
class FaultPlan:
    """Probability of each fault per request; whatever is left passes through untouched."""

    rates: dict[str, float] = field(default_factory=dict)
    delay_s: float = 0.2
    seed: int = 1

    @classmethod
    def everything(cls, total: float = 0.5, seed: int = 1) -> FaultPlan:
        return cls({name: total / len(FAULTS) for name in FAULTS}, seed=seed)


class FaultyProxy:
    def __init__(
        self,
        target_host: str,
        target_port: int,
        plan: FaultPlan,
        tamper: Tamper | None = None,
    ):
        self.target = (target_host, target_port)
        self.plan = plan
        self.tamper = tamper
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(plan.seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def draw(self) -> str:
        with self._lock:
            roll = self._rng.random()
            edge = 0.0
            for name, rate in self.plan.rates.items():
                edge += rate
                if roll < edge:
                    self.counts[name] += 1
                    return name
            self.counts["pass"] += 1
            return "pass"

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes):
        conn = http.client.HTTPConnection(*self.target, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:  # quiet: tests read counts instead
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in {"host", "connection", "content-length"}
                }
                fault = proxy.draw()
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    return
                if fault == "error500":
                    self._answer(500, b"upstream exploded", "text/plain")
                    return
                if fault == "delay":
                    time.sleep(proxy.plan.delay_s)
                try:
                    status, got, data = proxy.forward(self.command, self.path, headers, body)
                    if fault == "duplicate":
                        status, got, data = proxy.forward(self.command, self.path, headers, body)
                except OSError:
                    self._answer(502, b"centre unreachable", "text/plain")
                    return
                passed = passed_headers(got)
                if proxy.tamper is not None:
                    status, passed, data = proxy.tamper(self.path, body, status, passed, data)
                if fault == "lost_response":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault == "garbage":
                    self._answer(200, b"<html>captive portal</html>\x00\xff", "application/json")
                    return
                if fault == "truncated":
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in passed.items():
                        if name.lower() != "content-type":
                            self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._answer(status, data, "application/json", passed)

            def _answer(
                self,
                status: int,
                data: bytes,
                content_type: str,
                extra: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (extra or {}).items():
                    if name.lower() != "content-type":
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = _relay
            do_POST = _relay
            do_PUT = _relay

        return Handler
