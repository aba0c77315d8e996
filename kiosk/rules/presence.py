"""Who is present, departed, or arrived without departing on a service day, and who is absent:
read back from the log's per-cadre index and the site's time, never stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from kiosk.roster import RosterSnapshot
from kiosk.rules.timeline import SiteTime
from kiosk.store import EventLog
from sync.events import Event


@dataclass(frozen=True)
class Presence:
    cadre_id: str
    state: Literal["present", "departed", "no_departure"]
    since: datetime  # time of the event that put the cadre in this state (site time zone)
    arrived: datetime | None = None
    worked: timedelta | None = None


def events_of_day(log: EventLog, site: SiteTime, day: date) -> list[Event]:
    """Every event (voids and corrections too) whose best known time falls in `day`."""
    start, end = site.day_bounds(day)
    # Untrusted clocks can be hours off, so ask the log for a wider window, then decide
    # on the corrected time.
    margin = timedelta(days=1)
    return [
        event
        for event in log.events_between(start - margin, end + margin)
        if start <= site.true_time(event) < end
    ]


def presence(log: EventLog, site: SiteTime, day: date | None = None) -> dict[str, Presence]:
    """Who is present, departed, or arrived without departing, on `day` (default: today)."""
    now = site.keeper.read()
    today = site.service_day(now.shown)
    day = day or today
    out: dict[str, Presence] = {}
    for cadre_id in log.cadre_ids():
        rows = log.recent(cadre_id)
        on_day = [
            (i, row) for i, row in enumerate(rows) if site.service_day(site.when(row, now)) == day
        ]
        if not on_day:
            continue
        index, row = on_day[-1]
        when = site.local(site.when(row, now))
        if row.kind == "departure":
            arrival = rows[index - 1] if index > 0 and rows[index - 1].kind == "arrival" else None
            worked = when - site.when(arrival, now) if arrival else None
            arrived = site.local(site.when(arrival, now)) if arrival else None
            out[cadre_id] = Presence(cadre_id, "departed", when, arrived, worked)
            continue
        later = index < len(rows) - 1
        elapsed = site.elapsed(row, now)
        open_now = (
            not later
            and day == today
            and (elapsed is None or elapsed <= site.settings.longest_shift)
        )
        state: Literal["present", "no_departure"] = "present" if open_now else "no_departure"
        out[cadre_id] = Presence(cadre_id, state, when, when)
    return out


def absent(
    log: EventLog, site: SiteTime, roster: RosterSnapshot, day: date | None = None
) -> list[str]:
    """Cadres of this site's roster with no arrival on `day`."""
    seen = presence(log, site, day)
    return sorted(c for c in roster.cadres if roster.on_site(c) and c not in seen)
