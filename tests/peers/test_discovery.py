"""LAN discovery (mDNS / DNS-SD): kiosks of a site find where the others listen; another site's
are not taken; a peer the centre named without an address is asked where discovery found it."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.peers.discovery import Discovery, _lan_addresses
from kiosk.peers.identity import PeerDirectory
from kiosk.peers.puller import UNREACHABLE, PeerFault, PeerLink
from kiosk.peers.store import PeerStore
from sync.peers import PeerInfo, PeersAnswer, public_text
from tests.waiting import wait_for


def link_of(tmp_path, directory: PeerDirectory, **hooks) -> PeerLink:
    """Kiosk a of site S1, its peers' records in an empty store."""
    store = PeerStore(
        tmp_path / "peers", when=lambda e: e.device_time, window_start=lambda: None, own_rows=list
    )  # type: ignore[arg-type]
    return PeerLink(
        "a", "S1", Ed25519PrivateKey.generate(), directory, store, dict, timeout_s=1, **hooks
    )


def test_kiosks_of_a_site_find_each_other_on_the_lan():
    if not _lan_addresses():
        pytest.skip("no LAN interface here (loopback only)")
    site = f"S-{uuid.uuid4().hex[:8]}"  # apart from any other test run on this network
    a = Discovery("a", site, 1111)
    b = Discovery("b", site, 2222)
    elsewhere = Discovery("c", f"{site}-other", 3333)
    for d in (a, b, elsewhere):
        d.start()
    try:
        assert a.problem == "", a.problem
        wait_for(lambda: "b" in a.found() and "a" in b.found(), 20, "a and b to see each other")
        assert a.address_of("b").endswith(":2222") and b.address_of("a").endswith(":1111")
        assert a.address_of("b").rsplit(":", 1)[0] in _lan_addresses()
        assert "c" not in a.found() and "c" not in b.found()
        b.stop()
        wait_for(lambda: "b" not in a.found(), 20, "a to see b leave")
    finally:
        for d in (a, b, elsewhere):
            d.stop()


def test_an_advertisement_of_another_site_or_without_an_address_is_not_taken():
    d = Discovery("a", "S1", 1111)
    d.take("x1", {b"site": b"S2", b"kiosk": b"x"}, ["10.0.0.5"], 8080)
    d.take("x2", {b"site": b"S1", b"kiosk": b"a"}, ["10.0.0.6"], 8080)  # itself
    d.take("x3", {b"site": b"S1", b"kiosk": b"y"}, ["fe80::1"], 8080)  # no IPv4
    d.take("x4", {b"site": b"S1", b"kiosk": b"z"}, ["10.0.0.7"], 0)
    assert d.found() == {}
    d.take("x5", {b"site": b"S1", b"kiosk": b"b"}, ["fe80::1", "10.0.0.8"], 8081)
    assert d.found() == {"b": "10.0.0.8:8081"}


def test_a_peer_named_without_an_address_is_asked_where_discovery_found_it(tmp_path):
    directory = PeerDirectory(tmp_path, "S1")
    directory.replace(
        PeersAnswer(
            site_id="S1",
            peers=[PeerInfo(kiosk_id="b", public_key=public_text(Ed25519PrivateKey.generate()))],
        )
    )
    asked: list[str] = []

    def discovered(kiosk_id: str) -> str:
        asked.append(kiosk_id)
        return "127.0.0.1:9"  # the discard port: nobody listens

    link = link_of(tmp_path, directory, discovered=discovered)
    with pytest.raises(PeerFault) as fault:
        link.fetch(directory.peers()[0])
    assert asked == ["b"] and fault.value.reason == UNREACHABLE


def test_discovery_that_fails_or_hangs_never_holds_up_the_kiosk(monkeypatch):
    """zeroconf gives up on a busy machine (EventLoopBlocked) and registering takes seconds:
    start returns at once, and a failure is a problem said, not an exception."""
    from zeroconf import EventLoopBlocked

    released = threading.Event()
    closed: list[str] = []

    class StuckZeroconf:
        def register_service(self, info, allow_name_change=False):
            released.wait(10)
            raise EventLoopBlocked("the event loop did not answer")

        def close(self):
            closed.append("closed")

    monkeypatch.setattr("kiosk.peers.discovery.Zeroconf", StuckZeroconf)
    d = Discovery("a", "S1", 1111)
    started = time.monotonic()
    d.start()
    assert time.monotonic() - started < 0.5
    released.set()
    wait_for(lambda: d.problem != "", 5, "the failure to be said")
    assert "event loop" in d.problem and closed == ["closed"]
    d.stop()


def test_discovery_starts_only_once_the_centre_names_a_peer(tmp_path):
    """A kiosk alone at its site neither advertises nor browses the LAN."""
    directory = PeerDirectory(tmp_path, "S1")
    asked = threading.Event()
    link = link_of(tmp_path, directory, when_peers=asked.set)
    link.start()
    try:
        assert not asked.wait(1.5)  # the manager looked at least once: nobody named
        directory.replace(
            PeersAnswer(
                site_id="S1",
                peers=[
                    PeerInfo(
                        kiosk_id="b",
                        public_key=public_text(Ed25519PrivateKey.generate()),
                        address="127.0.0.1:9",
                    )
                ],
            )
        )
        assert asked.wait(5)
    finally:
        link.stop()
