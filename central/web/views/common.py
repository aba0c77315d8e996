"""Bits the views share: reading a day or a range of days from the query string."""

from __future__ import annotations

from datetime import date, timedelta

from flask import request

from central.web.context import state
from sync.events import EARLIEST_TIME, LATEST_TIME

MAX_RANGE_DAYS = 366


def today() -> date:
    return state().today()


def parse_day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return default
    # The pages step a day or a range back and forth: 0001-01-01 or 9999-12-31 cannot be.
    if not EARLIEST_TIME.date() <= day <= LATEST_TIME.date():
        return default
    return day


def day_arg(name: str = "day") -> date:
    return parse_day(request.args.get(name), today())


def range_args(default_days: int = 7) -> tuple[date, date]:
    """?from=...&to=... as service days; swapped when reversed, at most a year long."""
    last = parse_day(request.args.get("to"), today())
    first = parse_day(request.args.get("from"), last - timedelta(days=default_days - 1))
    if first > last:
        first, last = last, first
    if (last - first).days >= MAX_RANGE_DAYS:
        first = last - timedelta(days=MAX_RANGE_DAYS - 1)
    return first, last
