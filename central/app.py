"""The central server's Flask application factory.

Everything a request handler needs hangs off `app.extensions["central"]` (a `Central`, defined in
central/services.py), reached with `central_of()`: the settings, the engine, the clock, the stay
rules, the stays refresher and the duty runner. Blueprints register here: the ingest API
(central/api.py), the read API and /healthz (central/readapi/) and the staff pages (central/web/).

The background duties (stays, housekeeping) run on threads of the duty runner, each under a
database lease so that of several `central serve` processes one runs it at a time; the job worker
claims queued jobs itself, one job to one process. With TESTING set (or run_duties=False) no
thread starts: a test that pushes through the API calls `central_of(app).stays.drain()` before it
looks at stays, and one that starts a job calls `central_of(app).jobs.drain()` to run it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import Engine

from central import keys
from central import settings as central_settings
from central.api import api
from central.db.engine import create_schema, make_serving_engine
from central.duties import DutyRunner
from central.duties.housekeeping import housekeeping_duty
from central.duties.lease import new_holder_id
from central.ingest.proofs import BadgeProofs
from central.ingest.push import Checks
from central.instance_files import make_private, sweep_enrolment_images
from central.jobs.worker import JobWorker
from central.photos import CentralPhotos, photo_retention_duty
from central.readapi.routes import read_api
from central.releases import release_duty
from central.services import Central, utc_now
from central.settings import CentralSettings
from central.stays.pairing import StayRules
from central.stays.refresher import DUTY_NAME as STAYS_DUTY
from central.stays.refresher import StayRefresher
from central.timefix import to_utc_naive
from central.web import init_app as init_staff_pages
from sync.centre_key import fingerprint, shown
from sync.web_security import security_headers

log = logging.getLogger(__name__)


def create_app(
    instance_path: str | Path | None = None,
    settings: CentralSettings | None = None,
    *,
    engine: Engine | None = None,
    now: Callable[[], datetime] | None = None,
    config: Mapping[str, Any] | None = None,
    run_duties: bool | None = None,
) -> Flask:
    """Build the centre's app.

    instance_path: the instance folder (default: $CENTRAL_INSTANCE or ./instance/central).
    settings: defaults to central.toml + CENTRAL_* of the instance folder.
    engine: an engine to use instead of one made from settings.database_url (tests, benches).
    now: clock returning aware UTC datetimes (tests).
    config: extra Flask config (TESTING, ...), applied last.
    run_duties: start the background duty threads; default: unless TESTING.
    """
    instance = Path(instance_path) if instance_path else central_settings.default_instance()
    instance = instance.resolve()
    instance.mkdir(parents=True, exist_ok=True)
    if settings is None:
        settings = central_settings.load(instance)
    holder = new_holder_id()
    make_private(instance, settings)
    if engine is None:
        engine = make_serving_engine(
            settings.database_url_for(instance), settings.server_threads, f"central {holder}"
        )
    create_schema(engine)
    centre_key = settings.centre_key_path(instance)
    if keys.create_centre_key(centre_key):
        log.warning(
            "made a new centre key %s (fingerprint %s); kiosks pinned to another key refuse "
            "this centre until pinned again (`kiosk pin-centre`)",
            centre_key,
            shown(fingerprint(keys.load_centre_key(centre_key).public_key())),
        )

    app = Flask("central", instance_path=str(instance), instance_relative_config=True)
    if config:
        app.config.update(config)
    clock = now or utc_now
    rules = StayRules.from_settings(settings)
    duties = DutyRunner(engine, holder, lease_s=settings.duty_lease_s)
    refresher = StayRefresher(engine, rules, now=clock, wake=lambda: duties.wake(STAYS_DUTY))
    duties.add(refresher.duty())
    # Real time: sessions and throttle windows are written by it (central/web/auth.py).
    duties.add(housekeeping_duty(utc_now, settings.login_window_s))
    duties.add(
        photo_retention_duty(
            CentralPhotos.of_instance(instance),
            lambda: rules.day.service_day(to_utc_naive(clock())),
            settings.photo_retention_days,
        )
    )
    duties.add(release_duty(utc_now, settings.release_halt_rollbacks))
    # Tests run queued jobs on their own thread with `central_of(app).jobs.drain()`.
    worker = JobWorker(
        engine,
        settings,
        instance,
        now=now,
        isolation="thread" if app.config["TESTING"] else None,
    )
    app.extensions["central"] = Central(
        instance=instance,
        settings=settings,
        engine=engine,
        now=clock,
        rules=rules,
        stays=refresher,
        jobs=worker,
        checks=Checks(
            BadgeProofs.of_key_file(settings.issuing_key_path(instance), keys.public_keyring),
            timedelta(seconds=settings.time_claim_tolerance_s),
        ),
        duties=duties,
        signer=keys.CentreSigner(centre_key),
    )
    sweep_enrolment_images(instance, engine, clock())
    if settings.run_job_worker and not app.config["TESTING"]:
        worker.start()

    app.register_blueprint(api)
    app.register_blueprint(read_api)
    init_staff_pages(app)
    if run_duties if run_duties is not None else not app.config["TESTING"]:
        duties.start()

    @app.after_request
    def _security_headers(response: Response) -> Response:
        # The staff blueprint sets the same ones first; this covers the API and the root.
        for name, value in security_headers(no_store=request.endpoint != "staff.static").items():
            response.headers.setdefault(name, value)
        return response

    return app
