"""The fault proxy itself must misbehave exactly as asked, or the fault tests prove nothing."""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.fakes.faulty_proxy import FaultPlan, FaultyProxy


@pytest.fixture
def counting_server():
    hits: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(body)
            data = json.dumps({"stored": len(hits)}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, hits
    server.shutdown()
    server.server_close()


def post(url: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("POST", "/push", body=b'{"x":1}', headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def proxy_for(server, fault: str) -> FaultyProxy:
    return FaultyProxy(*server.server_address[:2], FaultPlan({fault: 1.0}, delay_s=0.01)).start()


def test_pass_through(counting_server):
    server, _hits = counting_server
    proxy = FaultyProxy(*server.server_address[:2], FaultPlan({})).start()
    assert post(proxy.url) == (200, b'{"stored": 1}')
    assert proxy.counts["pass"] == 1
    proxy.stop()


def test_duplicate_delivers_twice(counting_server):
    server, hits = counting_server
    proxy = proxy_for(server, "duplicate")
    status, body = post(proxy.url)
    assert status == 200 and json.loads(body) == {"stored": 2} and len(hits) == 2
    proxy.stop()


@pytest.mark.parametrize("fault", ["lost_response", "drop", "reset"])
def test_connection_faults(counting_server, fault):
    server, hits = counting_server
    proxy = proxy_for(server, fault)
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        post(proxy.url)
    # Only a lost response reaches the centre: it stored the batch the kiosk never heard about.
    assert len(hits) == (1 if fault == "lost_response" else 0)
    proxy.stop()


def test_garbage_and_truncated_and_500(counting_server):
    server, hits = counting_server
    for fault, check in [
        ("garbage", lambda s, b: s == 200 and b.startswith(b"<html>")),
        ("error500", lambda s, b: s == 500),
    ]:
        proxy = proxy_for(server, fault)
        assert check(*post(proxy.url)), fault
        proxy.stop()
    proxy = proxy_for(server, "truncated")
    with pytest.raises(http.client.IncompleteRead):
        post(proxy.url)
    proxy.stop()
    assert len(hits) == 2  # garbage and truncated forwarded; 500 did not
