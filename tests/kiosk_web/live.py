"""A real kiosk server on 127.0.0.1 (waitress in a thread) with the badge camera and a fake
clock, for the browser tests and bench/latency.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.app import build_scan_loop
from kiosk.server import KioskServer
from tests.fakes.clock import FakeClock
from tests.kiosk_web.badge_camera import BadgeCamera
from tests.kiosk_web.helpers import Kit, make_kit


@dataclass
class LiveKiosk:
    kit: Kit
    camera: BadgeCamera
    server: KioskServer
    url: str

    @property
    def services(self):
        return self.kit.services


@contextmanager
def live_kiosk(
    tmp_path: Path,
    key: Ed25519PrivateKey,
    *,
    port: int = 0,
    camera: BadgeCamera | None = None,
    clock: FakeClock | None = None,
    threads: int = 8,
    **overrides: object,
) -> Iterator[LiveKiosk]:
    camera = camera or BadgeCamera()
    overrides.setdefault("camera_repeat_s", 0.6)
    kit = make_kit(
        tmp_path,
        key,
        scan_loop_factory=lambda services: build_scan_loop(services, source=camera),
        clock=clock,
        **overrides,
    )
    server = KioskServer(kit.app, "127.0.0.1", port, threads)
    kit.services.start()
    thread = threading.Thread(target=server.run, name="test-kiosk-server", daemon=True)
    thread.start()
    try:
        yield LiveKiosk(kit, camera, server, server.url())
    finally:
        server.shutdown()
        thread.join(timeout=15)
