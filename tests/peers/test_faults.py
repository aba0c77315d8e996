"""Peers that fail: garbage, slow, forged chain, a forged signature, a scan without its proof,
another site's record. Each is dropped with its reason on the readiness panel; a good peer's
records count; and a scan goes through while a slow peer still holds its thread."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.web.status import readiness
from sync.events import GENESIS_HASH, Event, seal
from sync.peers import (
    KIOSK_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    PeerInfo,
    PeersAnswer,
    answer_message,
    public_text,
    sign,
)
from tests.kiosk_web.helpers import login, make_kit
from tests.waiting import wait_for

SITE = "site-1"


def records(
    kit, origin: str, cadre_ids: list[str], *, site: str = SITE, **extra: Any
) -> list[Event]:
    """Chained records of `origin`, an hour ago, each with its badge proof unless `extra` says."""
    at = kit.clock.now() - timedelta(hours=1)
    out: list[Event] = []
    for cadre_id in cadre_ids:
        previous = out[-1] if out else None
        fields: dict[str, Any] = {
            "event_id": uuid.uuid4(),
            "kiosk_id": origin,
            "site_id": site,
            "seq": previous.seq + 1 if previous else 1,
            "cadre_id": cadre_id,
            "badge_serial": 1,
            "kind": "arrival",
            "source": "camera",
            "device_time": at,
            "boot_id": f"boot-{origin}",
            "monotonic_ns": 10**12,
            "clock_trusted": True,
            "prev_hash": previous.hash if previous else GENESIS_HASH,
            "badge_token": kit.badge(cadre_id),
        }
        fields.update(extra)
        out.append(seal(fields))
    return out


class FakePeer:
    """A peer that answers as `mode` says, signing with its own key (or another's)."""

    def __init__(self, kiosk_id: str, mode: str, events: list[Event]) -> None:
        self.kiosk_id = kiosk_id
        self.mode = mode
        self.events = events
        self.key = Ed25519PrivateKey.generate()
        self.holding = threading.Event()  # the slow peer is inside a request
        self.release = threading.Event()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:
                peer.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def info(self) -> PeerInfo:
        address = f"127.0.0.1:{self.server.server_address[1]}"
        return PeerInfo(kiosk_id=self.kiosk_id, public_key=public_text(self.key), address=address)

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        asker = request.headers.get(KIOSK_HEADER, "")
        nonce = request.headers.get(NONCE_HEADER, "")
        after = int(parse_qs(urlsplit(request.path).query).get("after", ["0"])[0])
        body = json.dumps(
            {
                "origin": self.kiosk_id,
                "site_id": SITE,
                "head_seq": len(self.events),
                "events": [e.wire() for e in self.events if e.seq > after],
            }
        ).encode()
        key = self.key
        if self.mode == "garbage":
            body = b"\x00\xffnot what a peer says"
        elif self.mode == "bad_signature":
            key = Ed25519PrivateKey.generate()
        elif self.mode == "slow":
            self.holding.set()
            self.release.wait(60)
        signature = sign(key, answer_message(SITE, self.kiosk_id, asker, nonce, 200, body))
        try:
            request.send_response(200)
            request.send_header("Content-Length", str(len(body)))
            request.send_header(SIGNATURE_HEADER, signature)
            request.end_headers()
            request.wfile.write(body)
        except OSError:
            pass  # the kiosk gave up on it

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_bad_peers_are_dropped_with_a_reason_and_scanning_goes_on(tmp_path):
    key = Ed25519PrivateKey.generate()
    kit = make_kit(tmp_path, key, peer_interval_s=0.1, peer_timeout_s=1.0, peer_discovery=False)
    good_records = records(kit, "good", ["C002"])
    forged = records(kit, "forged", ["C003", "C003"])
    # The second record claims to follow the first but does not: a forged chain.
    fields = forged[1].wire()
    del fields["hash"]
    forged[1] = seal(fields | {"prev_hash": "f" * 64})
    peers = [
        FakePeer("good", "good", good_records),
        FakePeer("garbage", "garbage", records(kit, "garbage", ["C003"])),
        FakePeer("slow", "slow", records(kit, "slow", ["C003"])),
        FakePeer("forged", "good", forged),
        FakePeer("impostor", "bad_signature", records(kit, "impostor", ["C003"])),
        FakePeer("no-proof", "good", records(kit, "no-proof", ["C003"], badge_token=None)),
        FakePeer("elsewhere", "good", records(kit, "elsewhere", ["C003"], site="site-9")),
    ]
    services = kit.services
    try:
        services.peers.directory.replace(PeersAnswer(site_id=SITE, peers=[p.info for p in peers]))
        services.peers.start()
        slow = peers[2]
        assert slow.holding.wait(20), "the slow peer was never asked"
        # The slow peer holds its thread inside a request: a scan goes through all the same.
        outcome = services.handle_payload(kit.badge("C001"), "camera")
        assert outcome["outcome"] == "arrival"
        assert not slow.release.is_set() and slow.holding.is_set()

        expected = {
            "good": "ok",
            "garbage": "garbage",
            "slow": "slow",
            "forged": "broken_chain",
            "impostor": "bad_signature",
            "no-proof": "no_proof",
            "elsewhere": "other_site",
        }

        def states() -> dict[str, str]:
            return {s.kiosk_id: s.state for s in services.peers.link.status()}

        wait_for(lambda: states() == expected, 30, "each peer's state")
        store = services.peers.store
        # Nothing of a bad answer is kept; of the forged chain, what came before the break.
        assert store.head_seq("good") == 1 and store.head_seq("forged") == 1
        for origin in ("garbage", "slow", "impostor", "no-proof", "elsewhere"):
            assert store.head_seq(origin) == 0, origin

        # The readiness panel names each gate and why it was dropped, in Chinese first.
        items = {i.values["kiosk_id"]: i for i in readiness(services) if i.key == "peer"}
        assert {k: (i.state, i.code) for k, i in items.items()} == {
            k: ("ok" if v == "ok" else "bad", v) for k, v in expected.items()
        }
        client = kit.app.test_client()
        login(client)
        page = client.get("/lead/").get_data(as_text=True)
        for words in (
            "已停用：回复太慢",
            "已停用：它的记录链接不上",
            "已停用：回复不是该签到机签名的",
        ):
            assert words in page, words

        # The good peer's arrival counts here: C002 scanned now leaves, with the hour worked.
        left = services.handle_payload(kit.badge("C002"), "camera")
        assert left["outcome"] == "departure", left
        assert left["worked_s"] == 3600
        page = client.get("/lead/").get_data(as_text=True)
        assert "在 good→kiosk-t1" in page  # the departed list says at which gates
        assert {e.kiosk_id for e in services.log.iter_events()} == {"kiosk-t1"}
    finally:
        services.peers.stop()
        for peer in peers:
            peer.close()
        services.log.close()
