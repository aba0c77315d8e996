"""Names of cadres of other sites, for a kiosk that read their badges (sync/protocol.py
`NamesRequest`).

A kiosk's roster holds its own site; a cadre visiting from another site showed as a bare id. The
centre names a cadre to a kiosk only when it stored a badge scan (camera or barcode scanner, not a
manual entry typed by id) of that cadre from that very kiosk, with the badge's token proving it
(not quarantined): what the kiosk learns is whom it has
seen, so a stolen kiosk token cannot page through the city's roster.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from central.db.schema import cadres, events
from central.kiosks import KioskIdentity
from sync.protocol import NamedCadre

BADGE_SOURCES = ("camera", "wedge")


def names_for(conn: Connection, kiosk: KioskIdentity, asked: Sequence[str]) -> list[NamedCadre]:
    wanted = sorted(set(asked))
    if not wanted:
        return []
    seen = (
        select(events.c.cadre_id)
        .where(
            events.c.kiosk_id == kiosk.kiosk_id,
            events.c.cadre_id.in_(wanted),
            events.c.source.in_(BADGE_SOURCES),
            # A record that did not prove itself (no valid badge token for this cadre) is kept
            # but not counted: nor does it earn the kiosk a name.
            events.c.quarantine.is_(None),
        )
        .distinct()
    )
    rows = conn.execute(
        select(cadres.c.cadre_id, cadres.c.name, cadres.c.unit, cadres.c.site_id)
        .where(cadres.c.cadre_id.in_(seen))
        .order_by(cadres.c.cadre_id)
    )
    return [
        NamedCadre(
            cadre_id=row.cadre_id, name=row.name, unit=row.unit or "", site_id=row.site_id or ""
        )
        for row in rows
    ]
