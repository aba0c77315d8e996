"""What the staff pages need from the application: the store, the settings, the clock.

The centre's shared state is `central.services.Central` on `app.extensions["central"]`; the staff
pages add their own (the login throttle) on `app.extensions["staff"]`. Views reach both through
`state()` instead of module globals, as tests build many apps in one process. Neither holds a
user's state: sessions, throttle counts and form tokens are rows of the database, shared by
every process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Engine

from central.services import Central, utc_now
from central.settings import CentralSettings
from central.stays.pairing import StayRules
from central.web.security import LoginThrottle
from central.web.shared_overview import SharedFigures


@dataclass
class StaffState:
    central: Central
    throttle: LoginThrottle
    # The all-sites figures with their live stamp, shared by every request of this process
    # (views/live.py); set by init_app, which knows the application.
    overview: SharedFigures[Any] | None = None

    @property
    def engine(self) -> Engine:
        return self.central.engine

    @property
    def settings(self) -> CentralSettings:
        return self.central.settings

    @property
    def instance(self) -> Path:
        return self.central.instance

    @property
    def now(self) -> Callable[[], datetime]:
        return self.central.now

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    @property
    def rules(self) -> StayRules:
        return getattr(self.central, "rules", None) or StayRules.from_settings(self.settings)

    def today(self) -> date:
        """The service day it is now (a day begins at `service_day_start`, not midnight)."""
        return self.rules.day.service_day(self.now().astimezone(UTC).replace(tzinfo=None))


def state() -> StaffState:
    return cast(StaffState, current_app.extensions["staff"])


def new_state(app_central: Central) -> StaffState:
    settings = app_central.settings
    return StaffState(
        central=app_central,
        throttle=LoginThrottle(
            app_central.engine,
            max_failures=settings.login_max_failures,
            window_s=settings.login_window_s,
            address_max_failures=settings.login_max_failures_per_address,
            now=utc_now,  # real time, as the sessions' (central/web/auth.py)
        ),
    )


__all__ = ["StaffState", "new_state", "state"]
