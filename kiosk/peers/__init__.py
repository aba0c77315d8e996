"""A site is a small cluster: the kiosks of one site exchange their records on the LAN.

    identity.py  this kiosk's peer key; the site's peers as the centre named them (peers.json)
    check.py     what a peer's records must be to be kept: chain, site, badge proof
    store.py     the peers' records, read-only and bounded (today and yesterday); conflicts
    serve.py     GET /peers/events: this kiosk's own records, to a signed peer, signed
    puller.py    one thread per peer fetching its records, with deadlines and reasons
    discovery.py mDNS / DNS-SD: where peers the centre named without an address listen

The check-in rules read the store (the last record of a cadre at any gate), never the network;
the records of the store are never pushed to the centre by this kiosk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kiosk.peers.discovery import Discovery
from kiosk.peers.identity import PeerDirectory, load_key
from kiosk.peers.puller import PeerLink, PeerStatus
from kiosk.peers.serve import PeerServer
from kiosk.peers.store import Conflict, PeerRow, PeerStore
from kiosk.roster import RosterStore
from kiosk.rules import CheckIn
from kiosk.settings import KioskSettings
from kiosk.store import EventLog

PEERS_FOLDER = "peers"

__all__ = [
    "Conflict",
    "Discovery",
    "PeerDirectory",
    "PeerLink",
    "PeerRow",
    "PeerServer",
    "PeerStatus",
    "PeerStore",
    "SitePeers",
    "make_site_peers",
]


@dataclass
class SitePeers:
    directory: PeerDirectory
    store: PeerStore
    server: PeerServer
    link: PeerLink
    discovery: Discovery | None = None

    def start(self) -> None:
        # LAN discovery starts when the centre names a peer (PeerLink's when_peers).
        self.link.start()

    def stop(self) -> None:
        self.link.stop()
        if self.discovery is not None:
            self.discovery.stop()


def make_site_peers(
    instance: Path,
    settings: KioskSettings,
    log: EventLog,
    rules: CheckIn,
    roster: RosterStore,
) -> SitePeers:
    """The peers of a kiosk, wired to its log, rules and roster (not started)."""

    def window_start() -> datetime:
        today = rules.service_day(rules.keeper.read().shown)
        return rules.day_bounds(today - timedelta(days=1))[0]

    def own_rows(cadre_id: str) -> list[PeerRow]:
        return [
            PeerRow(settings.kiosk_id, row, rules.true_time(row)) for row in log.recent(cadre_id)
        ]

    key = load_key(instance)
    directory = PeerDirectory(instance, settings.site_id)
    store = PeerStore(
        instance / PEERS_FOLDER,
        when=rules.true_time,
        window_start=window_start,
        own_rows=own_rows,
        conflict_window=rules.settings.longest_shift,
    )
    discovery = None
    if settings.peer_discovery:
        discovery = Discovery(settings.kiosk_id, settings.site_id, settings.listen_port)
    server = PeerServer(settings.kiosk_id, settings.site_id, key, directory, log, window_start)
    link = PeerLink(
        settings.kiosk_id,
        settings.site_id,
        key,
        directory,
        store,
        lambda: roster.current.keyring,
        interval_s=settings.peer_interval_s,
        timeout_s=settings.peer_timeout_s,
        discovered=discovery.address_of if discovery is not None else None,
        when_peers=discovery.start if discovery is not None else None,
    )
    return SitePeers(directory, store, server, link, discovery)
