"""The lead's JSON: codes and ISO times, for programs; the page puts them in words itself.

`/lead/api/events` reads a range of service days (`from`, `to`, at most MAX_DAYS) a page at a time
(`after_seq`, `limit`), or follows the log (`since_seq`: every event after that seq, whatever its
day, in seq order, for a program that keeps up). Every event carries its seq, its codes (kind,
source, flags), its best known true time in the site's zone to the second, and the time the
kiosk's clock gave when it was recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from flask_babel import gettext as _

from kiosk.rules import standing
from kiosk.web.common import services
from kiosk.web.lead_day import person, today
from kiosk.web.status import readiness
from sync.events import EARLIEST_TIME, LATEST_TIME, Event

MAX_DAYS = 92
DEFAULT_LIMIT = 500
MAX_LIMIT = 2000


def event_json(event: Event, status: str | None = None) -> dict[str, Any]:
    rules = services().rules
    when = rules.local(rules.true_time(event))
    who = person(event.cadre_id)
    return {
        "seq": event.seq,
        "event_id": str(event.event_id),
        "kiosk_id": event.kiosk_id,
        "cadre_id": event.cadre_id,
        "name": who.name if who.named else None,
        "on_roster": not who.visitor,
        "kind": event.kind,
        "source": event.source,
        "flags": list(event.flags),
        "time": when.isoformat(timespec="seconds"),
        "service_day": rules.service_day(when).isoformat(),
        "device_time": event.device_time.isoformat(timespec="seconds"),
        "clock_trusted": event.clock_trusted,
        "operator": event.operator,
        "reason": event.reason,
        "corrects": str(event.corrects) if event.corrects else None,
        "status": status,
    }


def _int_arg(args: Mapping[str, str], name: str, default: int | None) -> int | None:
    text = args.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 18:
        raise ValueError(_("%(name)s is a whole number.", name=name))
    return int(text)


def _day_arg(args: Mapping[str, str], name: str, default: date) -> date:
    text = args.get(name)
    if not text:
        return default
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(_("Dates are written YYYY-MM-DD.")) from None
    if not EARLIEST_TIME.date() < day < LATEST_TIME.date():
        raise ValueError(_("Dates are written YYYY-MM-DD."))
    return day


def events_answer(args: Mapping[str, str]) -> dict[str, Any]:
    """The answer of /lead/api/events; ValueError (in words) for bad arguments."""
    kiosk = services()
    limit = _int_arg(args, "limit", DEFAULT_LIMIT) or DEFAULT_LIMIT
    limit = min(max(limit, 1), MAX_LIMIT)
    zone = {"timezone": str(kiosk.settings.timezone), "now": _now_iso()}
    since = _int_arg(args, "since_seq", None)
    if since is not None:
        batch = kiosk.log.events_after(since, limit + 1)
        more = len(batch) > limit
        batch = batch[:limit]
        return {
            **zone,
            "since_seq": since,
            "events": [event_json(e) for e in batch],
            "next_since_seq": batch[-1].seq if batch else since,
            "more": more,
        }
    first = _day_arg(args, "from", _day_arg(args, "day", today()))
    last = _day_arg(args, "to", first)
    if last < first:
        first, last = last, first
    if (last - first).days + 1 > MAX_DAYS:
        raise ValueError(_("At most %(n)d days at a time.", n=MAX_DAYS))
    after = _int_arg(args, "after_seq", 0) or 0
    events: list[Event] = []
    day = first
    while day <= last:
        events += kiosk.rules.events_of_day(day)
        day += timedelta(days=1)
    status = standing(events)
    ordered = sorted((e for e in events if e.seq > after), key=lambda e: e.seq)
    page = ordered[:limit]
    return {
        **zone,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "events": [event_json(e, status.get(str(e.event_id))) for e in page],
        "next_after_seq": page[-1].seq if len(ordered) > limit else None,
    }


def _now_iso() -> str:
    kiosk = services()
    return kiosk.rules.local(kiosk.keeper.read().shown).isoformat(timespec="seconds")


def readiness_json() -> dict[str, Any]:
    return {"now": _now_iso(), "items": [item.as_json() for item in readiness(services())]}


def state_json() -> dict[str, Any]:
    """What the page polls: the log's last seq and a fingerprint of the readiness list, so it
    fetches itself again only when something it shows has changed."""
    kiosk = services()
    items = [(i.key, i.state, i.code) for i in readiness(kiosk)]
    ready = hashlib.sha256(json.dumps(items).encode()).hexdigest()[:12]
    return {
        "last_seq": kiosk.log.last_seq,
        "day": today().isoformat(),
        "readiness": ready,
        "roster_version": kiosk.roster.current.version,
    }
