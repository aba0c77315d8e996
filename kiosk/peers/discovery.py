"""Finding the site's peers on the LAN: mDNS / DNS-SD with `zeroconf`, beside the centre's list.

Each kiosk advertises `<kiosk id>._cadre-kiosk._tcp.local.` with its port and, in the TXT record,
its site and kiosk id; it browses for the others and notes the address of each of its own site.
The centre's list stays what decides who is a peer and with which key: an address found here is
only where to knock (a kiosk the centre gave no `peer_address`). A false advertisement can send
requests to the wrong host, whose answers then fail the signature check; it cannot make anyone
a peer. A network that blocks multicast leaves the centre's addresses; nothing else changes.
Discovery starts when the centre first names a peer: a kiosk alone at its site (most of them)
never touches the LAN's multicast.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import ifaddr
from zeroconf import ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_cadre-kiosk._tcp.local."


def _lan_addresses() -> list[str]:
    """This host's IPv4 addresses but loopback's."""
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                found.append(ip.ip)
    return found


def _text(properties: dict[bytes, bytes | None], key: bytes) -> str:
    value = properties.get(key)
    return value.decode("utf-8", "replace") if value else ""


class Discovery:
    """Advertises this kiosk and keeps the addresses of its site's kiosks seen on the LAN."""

    def __init__(self, kiosk_id: str, site_id: str, port: int) -> None:
        self.kiosk_id = kiosk_id
        self.site_id = site_id
        self.port = port
        self.problem = ""  # why discovery is not running ("" : it is, or not started)
        self._lock = threading.Lock()
        self._found: dict[str, str] = {}  # kiosk id -> host:port
        self._names: dict[str, str] = {}  # service name -> kiosk id
        self._zeroconf: Zeroconf | None = None
        self._browser: ServiceBrowser | None = None
        self._info: ServiceInfo | None = None
        self._stopped = False
        self._started = False

    def start(self) -> None:
        """Advertise and browse from a thread of its own: registering probes the LAN for a
        second or more, and zeroconf may give up on a busy machine (EventLoopBlocked); neither
        may hold up or stop the kiosk's start. Only the first call starts it."""
        with self._lock:
            if self._started or self._stopped:
                return
            self._started = True
        threading.Thread(target=self._start, name="peers-discovery", daemon=True).start()

    def _start(self) -> None:
        try:
            zeroconf = Zeroconf()
            with self._lock:
                if self._stopped:
                    zeroconf.close()
                    return
                self._zeroconf = zeroconf
            addresses = [socket.inet_aton(a) for a in _lan_addresses()]
            self._info = ServiceInfo(
                SERVICE_TYPE,
                f"{self.kiosk_id}.{SERVICE_TYPE}",
                port=self.port,
                properties={"site": self.site_id, "kiosk": self.kiosk_id},
                addresses=addresses,
                server=f"{self.kiosk_id}.local.",
            )
            zeroconf.register_service(self._info, allow_name_change=True)
            self._browser = ServiceBrowser(zeroconf, SERVICE_TYPE, handlers=[self._changed])
        except Exception as exc:  # no multicast, no interface, zeroconf's own errors
            if self._stopped:  # the kiosk stopped while this was starting
                self._close()
                return
            self.problem = str(exc)[:200] or type(exc).__name__
            log.warning("peers: no LAN discovery (%r); the centre's addresses only", exc)
            self._close()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._close()

    def _close(self) -> None:
        with self._lock:
            zeroconf, self._zeroconf = self._zeroconf, None
        if zeroconf is None:
            return
        try:
            if self._browser is not None:
                self._browser.cancel()
            if self._info is not None:
                zeroconf.unregister_service(self._info)
        except Exception:  # ending: nothing more to do about it
            log.debug("peers: discovery did not end cleanly", exc_info=True)
        finally:
            zeroconf.close()

    def _changed(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            with self._lock:
                kiosk_id = self._names.pop(name, None)
                if kiosk_id is not None:
                    self._found.pop(kiosk_id, None)
            return
        # zeroconf calls handlers on its own loop thread: the lookup waits in a thread of ours.
        threading.Thread(
            target=self._resolve, args=(zeroconf, service_type, name), daemon=True
        ).start()

    def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        try:
            info = zeroconf.get_service_info(service_type, name, timeout=3000)
        except Exception:  # a closed zeroconf, a malformed record: nothing found
            return
        if info is not None:
            self.take(name, info.properties, info.parsed_addresses(), info.port)

    def take(
        self, name: str, properties: dict[bytes, bytes | None], addresses: list[str], port: Any
    ) -> None:
        """An advertisement seen: kept when it is another kiosk of this site with an IPv4."""
        kiosk_id = _text(properties, b"kiosk")
        if _text(properties, b"site") != self.site_id or not kiosk_id or kiosk_id == self.kiosk_id:
            return
        ipv4 = [a for a in addresses if a.count(".") == 3]
        if not ipv4 or not isinstance(port, int) or not 0 < port < 65536:
            return
        with self._lock:
            self._names[name] = kiosk_id
            self._found[kiosk_id] = f"{ipv4[0]}:{port}"

    def address_of(self, kiosk_id: str) -> str:
        with self._lock:
            return self._found.get(kiosk_id, "")

    def found(self) -> dict[str, str]:
        with self._lock:
            return dict(self._found)
