"""How times, durations and ages read on the staff pages, in the centre's time zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from flask import Blueprint
from flask_babel import gettext, ngettext

from central.web.context import state


def local(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        # The store keeps UTC; SQLite hands it back without the offset.
        value = value.replace(tzinfo=UTC)
    return value.astimezone(state().zone)


def hhmm(value: datetime | None) -> str:
    shown = local(value)
    return "" if shown is None else shown.strftime("%H:%M")


def day_time(value: datetime | None) -> str:
    shown = local(value)
    return "" if shown is None else shown.strftime("%Y-%m-%d %H:%M:%S")


def duration(value: timedelta | float | None) -> str:
    """9 h 12 min; seconds may be given as a number."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    minutes = max(0, round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    if hours:
        return str(gettext("%(h)d h %(m)d min", h=hours, m=minutes))
    return str(gettext("%(m)d min", m=minutes))


def age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, coarsely: "3 h ago", "never"."""
    if value is None:
        return str(gettext("never"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    if seconds < 60:
        return str(gettext("just now"))
    if seconds < 3600:
        minutes = int(seconds // 60)
        return str(ngettext("%(num)d min ago", "%(num)d min ago", minutes))
    if seconds < 86400 * 2:
        hours = int(seconds // 3600)
        return str(ngettext("%(num)d h ago", "%(num)d h ago", hours))
    days = int(seconds // 86400)
    return str(ngettext("%(num)d days ago", "%(num)d days ago", days))


def size(value: int | None) -> str:
    """Bytes as a person reads them: 812 MB, 14.2 GB (powers of 1024, as df -h)."""
    if value is None:
        return ""
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024:
            return (
                f"{amount:.0f} {unit}"
                if unit in ("B", "KB") or amount >= 100
                else f"{amount:.1f} {unit}"
            )
        amount /= 1024
    return f"{amount:.1f} TB"


def zone_note() -> str:
    """The page's one time zone and its offset now, said once per page ("Asia/Shanghai
    UTC+08:00")."""
    zone = state().zone
    offset = datetime.now(UTC).astimezone(zone).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{zone.key} UTC{sign}{hours:02d}:{rest:02d}"


def local_input(value: datetime | None) -> str:
    """A time as a datetime-local field's value, in the page's time zone, to the second."""
    shown = local(value)
    return "" if shown is None else shown.strftime("%Y-%m-%dT%H:%M:%S")


def iso_day(value: date) -> str:
    return value.isoformat()


def register(blueprint: Blueprint) -> None:
    filters: dict[str, Callable[..., str]] = {
        "hhmm": hhmm,
        "day_time": day_time,
        "duration": duration,
        "age": age,
        "iso_day": iso_day,
        "local_input": local_input,
        "size": size,
    }
    for name, function in filters.items():
        blueprint.add_app_template_filter(function, name)
