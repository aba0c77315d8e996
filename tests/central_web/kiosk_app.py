"""A real kiosk app enrolled at a staff-pages test centre, reaching it through its WSGI app."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import requests
from flask import Flask

from central import kiosks
from kiosk import enrolment
from kiosk import settings as kiosk_settings
from kiosk.app import create_app
from sync.client import CentralClient
from tests.fakes.clock import FakeClock
from tests.fakes.machine import FakeMachine
from tests.fakes.network import WSGIAdapter, session_with

URL = "http://centre.test/"


def enrolled_kiosk(
    tmp_path: Path,
    centre: Flask,
    site: str,
    machine: FakeMachine | None = None,
    name: str = "k",
    clock: FakeClock | None = None,
) -> tuple[Flask, list[float], str, requests.Session]:
    """A kiosk app enrolled at `centre` over a session that calls the centre's app: the app,
    its monotonic clock (a list to move), its kiosk id and the session."""
    engine = centre.extensions["central"].engine
    now = centre.extensions["central"].now()
    session = session_with(WSGIAdapter(centre))
    new = kiosks.add_kiosk(engine, site, now, timedelta(hours=1))
    instance = tmp_path / name
    instance.mkdir()
    (instance / "kiosk.toml").write_text("sync_plain_http_allowed = true  # in process\n")
    fingerprint = centre.extensions["central"].signer.fingerprint()
    client = CentralClient(URL, session=session)
    answer = enrolment.enroll(instance, URL, new.code, fingerprint, client=client)
    # As `kiosk run` starts: from the kiosk.toml the enrolment wrote.
    settings = kiosk_settings.load(instance, env={})
    assert (settings.kiosk_id, settings.central_url) == (answer.kiosk_id, URL)
    monotonic = [5000.0]
    app = create_app(
        instance,
        settings,
        clock=clock or FakeClock(now),
        scan_loop_factory=lambda services: None,
        monotonic=lambda: monotonic[0],
        machine=machine,
    )
    return app, monotonic, new.kiosk_id, session
