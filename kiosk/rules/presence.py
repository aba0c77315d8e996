"""Who is present, departed, or arrived without departing on a service day, and who is absent:
read back from the log's per-cadre index and the site's time, never stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, Protocol

from kiosk.clock import TimeReading
from kiosk.roster import RosterSnapshot
from kiosk.rules.timeline import SiteTime
from kiosk.store import EventLog, EventSummary
from sync.events import Event


class GateRow(Protocol):
    """A record at another gate of the site (kiosk/peers/store.py PeerRow)."""

    @property
    def kiosk_id(self) -> str: ...

    @property
    def summary(self) -> EventSummary: ...

    @property
    def when(self) -> datetime: ...


class OtherGates(Protocol):
    """The site's other kiosks' records, as this kiosk holds them (kiosk/peers/store.py)."""

    def latest(self, cadre_id: str) -> GateRow | None: ...

    def rows(self, cadre_id: str) -> Sequence[GateRow]: ...

    def cadre_ids(self) -> list[str]: ...


@dataclass(frozen=True)
class Presence:
    cadre_id: str
    state: Literal["present", "departed", "no_departure"]
    since: datetime  # time of the event that put the cadre in this state (site time zone)
    arrived: datetime | None = None
    worked: timedelta | None = None
    gate: str = ""  # the kiosk of that event, when another gate's ("" : this kiosk)
    arrived_gate: str = ""


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


def _merged(
    log: EventLog, site: SiteTime, cadre_id: str, other: OtherGates | None, now: TimeReading
) -> tuple[list[EventSummary], list[str]]:
    """The cadre's records at every gate by time, and each one's gate ("" : this kiosk)."""
    own = [(site.when(row, now), "", row) for row in log.recent(cadre_id)]
    theirs = [(r.when, r.kiosk_id, r.summary) for r in other.rows(cadre_id)] if other else []
    if not theirs:
        return [row for _, _, row in own], ["" for _ in own]
    merged = sorted(own + theirs, key=lambda item: item[0])
    return [row for _, _, row in merged], [gate for _, gate, _ in merged]


def presence(
    log: EventLog, site: SiteTime, day: date | None = None, other: OtherGates | None = None
) -> dict[str, Presence]:
    """Who is present, departed, or arrived without departing, on `day` (default: today), at
    any gate of the site when `other` holds the other kiosks' records."""
    now = site.keeper.read()
    today = site.service_day(now.shown)
    day = day or today
    out: dict[str, Presence] = {}
    cadres = list(log.cadre_ids())
    if other is not None:
        own = set(cadres)
        cadres += [c for c in other.cadre_ids() if c not in own]
    for cadre_id in cadres:
        rows, gates = _merged(log, site, cadre_id, other, now)
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
            out[cadre_id] = Presence(
                cadre_id,
                "departed",
                when,
                arrived,
                worked,
                gate=gates[index],
                arrived_gate=gates[index - 1] if arrival else "",
            )
            continue
        later = index < len(rows) - 1
        elapsed = site.elapsed(row, now)
        open_now = (
            not later
            and day == today
            and (elapsed is None or elapsed <= site.settings.longest_shift)
        )
        state: Literal["present", "no_departure"] = "present" if open_now else "no_departure"
        out[cadre_id] = Presence(
            cadre_id, state, when, when, gate=gates[index], arrived_gate=gates[index]
        )
    return out


def absent(
    log: EventLog,
    site: SiteTime,
    roster: RosterSnapshot,
    day: date | None = None,
    other: OtherGates | None = None,
) -> list[str]:
    """Cadres of this site's roster with no arrival on `day` (at any gate, with `other`)."""
    seen = presence(log, site, day, other)
    return sorted(c for c in roster.cadres if roster.on_site(c) and c not in seen)
