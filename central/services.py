"""What the centre's request handlers need, on `app.extensions["central"]`: a `Central`.

Defined below both the application factory (central/app.py) and what it registers (the kiosk API,
central/api.py, and the staff pages, central/web/), so those import this module and never the
factory. `central_of()` reaches it from a request, or from an app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import Engine

from central.duties import DutyRunner
from central.ingest.push import Checks
from central.jobs.worker import JobWorker
from central.keys import CentreSigner
from central.kiosks import KnownTokens
from central.settings import CentralSettings
from central.stays.pairing import StayRules
from central.stays.refresher import StayRefresher


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Central:
    """What the centre's code needs at request time."""

    instance: Path
    settings: CentralSettings
    engine: Engine
    now: Callable[[], datetime]  # aware UTC; a seam so tests can move time
    rules: StayRules  # how records pair into stays (from the settings)
    stays: StayRefresher  # recomputes queued stays behind the ingest API (a duty)
    duties: DutyRunner  # periodic work under database leases, one process at a time
    jobs: JobWorker  # runs queued background jobs (badge sheets, exports)
    checks: Checks  # what judges whether pushed records count (badge keys, time tolerance)
    signer: CentreSigner  # signs every answer to kiosks with the centre key
    push_tokens: KnownTokens = field(default_factory=KnownTokens)  # kiosk tokens seen valid


def central_of(app: Flask | None = None) -> Central:
    central: Central = (app or current_app).extensions["central"]
    return central
