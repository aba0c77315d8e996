"""Kiosk settings set from the centre: `central kiosk set`, the form on the kiosks page, and
what each kiosk says it did with them.

A setting is set for a site (every kiosk there) or for one kiosk (the narrowest scope wins,
central/kiosks.py `settings_answer`); kiosks take it at their next pull (every sync_interval_s),
check it against their own settings model and apply at once what they safely can; the rest
waits for their next start. Each kiosk's heartbeat says which version it took, what waits for a
restart and what it refused (sync.protocol.SettingsReport); the kiosks page shows it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from central import kiosks
from central.db.schema import kiosks as kiosks_table
from central.db.schema import pushed_settings, sites
from sync.protocol import SettingsReport, pushable

SETTING_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class SettingsInputError(ValueError):
    """A setting as typed that cannot be set; the message says why."""


def parse_value(text: str) -> Any:
    """A value as typed: JSON (true, 30, 1.5, "text"), else the text itself."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(pairs: Iterable[str]) -> dict[str, Any]:
    """key=value pairs as typed on the command line, in order; a key given twice is an error."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsInputError(f"{pair!r}: expected key=value")
        if key in values:
            raise SettingsInputError(f"{key} is given twice")
        values[key] = parse_value(raw)
    return values


def scope_of(conn: Connection, site_id: str | None, kiosk_id: str | None) -> str:
    """The pushed_settings scope for a site or a kiosk that exists."""
    if bool(site_id) == bool(kiosk_id):
        raise SettingsInputError("name one site or one kiosk")
    if site_id:
        found = conn.execute(select(sites.c.site_id).where(sites.c.site_id == site_id)).first()
        if found is None:
            raise SettingsInputError(f"no site {site_id} in the roster")
        return f"site:{site_id}"
    found = conn.execute(
        select(kiosks_table.c.kiosk_id).where(kiosks_table.c.kiosk_id == kiosk_id)
    ).first()
    if found is None:
        raise SettingsInputError(f"no kiosk {kiosk_id}")
    return f"kiosk:{kiosk_id}"


def check_key(key: str) -> None:
    if not SETTING_NAME.fullmatch(key):
        raise SettingsInputError(f"{key!r} is not a setting name (lower case, digits and _)")
    if not pushable(key):
        raise SettingsInputError(
            f"{key} cannot be set from the centre: it changes what a kiosk trusts, where it "
            "listens or reads frames, or who may log in; set it on the kiosk itself"
        )


def set_settings(engine: Engine, scope: str, values: dict[str, Any], now: datetime, by: str) -> int:
    """Set each value at `scope` (None removes it); the settings version of the last one.
    Every key is checked before any is stored, so a refused key leaves the others unset too."""
    if not values:
        raise SettingsInputError("no setting given")
    for key in values:
        check_key(key)
    version = 0
    for key, value in values.items():
        version = kiosks.set_pushed_setting(engine, scope, key, value, now, by=by)
    return version


def pushed(conn: Connection) -> list[dict[str, Any]]:
    """Every setting set from the centre that still holds a value, by scope and key."""
    rows = conn.execute(
        select(pushed_settings).order_by(pushed_settings.c.scope, pushed_settings.c.key)
    ).all()
    shown = []
    for row in rows:
        value = json.loads(row.value)
        if value is None:
            continue
        shown.append(
            {
                "scope": row.scope,
                "key": row.key,
                "value": json.dumps(value, ensure_ascii=False),
                "version": row.version,
                "changed_at": row.changed_at,
                "changed_by": row.changed_by,
            }
        )
    return shown


def report_of(row: dict[str, Any]) -> SettingsReport | None:
    """What the kiosk said of the centre's settings in its latest heartbeat, if anything."""
    raw = row.get("report")
    if not raw:
        return None
    try:
        said = json.loads(raw).get("settings")
        return None if said is None else SettingsReport.model_validate(said)
    except (ValueError, AttributeError):
        return None
