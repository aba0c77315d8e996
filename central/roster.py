"""The roster: sites and cadres, imported from the spreadsheets central staff keep.

Every change to the roster (an import, a badge issued, a badge revoked) takes the next value of
one roster version counter and stamps it on each row it changes, in the same transaction. A kiosk
that holds version N asks for the rows whose `change_version` is above N (`changes_since`).

An import is read and validated whole before anything is written (central/roster_file.py), and
written in one transaction: a file with a bad row changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from central.db.schema import badge_revocations, cadres, roster_counter, sites
from central.roster_file import ParsedRoster, RosterRow
from central.timefix import to_utc_naive

WRITE_CHUNK = 2_000
_DISTRICT_SEPARATOR = re.compile(r"[-_./]")


def district_of(site_id: str) -> str:
    """A site's district: its id without the last part (BJ-DC-01 is in BJ-DC); an id with no
    separator is its own district. The roster has no district column; ids are given district by
    district. The staff pages (central/web/lists.py) and the exports count by it."""
    cut = max((m.start() for m in _DISTRICT_SEPARATOR.finditer(site_id)), default=-1)
    return site_id[:cut] if cut > 0 else site_id


def next_version(conn: Connection) -> int:
    """Take the next roster version inside the caller's transaction (locks the counter row)."""
    conn.execute(
        update(roster_counter)
        .where(roster_counter.c.id == 1)
        .values(version=roster_counter.c.version + 1)
    )
    return current_version(conn)


def current_version(conn: Connection) -> int:
    version: int = conn.execute(
        select(roster_counter.c.version).where(roster_counter.c.id == 1)
    ).scalar_one()
    return version


def utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Storing an import


@dataclass(frozen=True)
class ImportResult:
    version: int  # the roster version the changed rows carry (unchanged when nothing changed)
    inserted: int
    updated: int
    unchanged: int
    sites_added: int
    sites_renamed: int


class RosterRejected(Exception):
    """A roster file with bad rows: nothing of it was stored."""

    def __init__(self, parsed: ParsedRoster):
        self.problems = parsed.problems
        bad_lines = len({problem.line for problem in parsed.problems})
        super().__init__(f"{parsed.source}: {bad_lines} bad rows, nothing imported")


def import_parsed(
    engine: Engine,
    parsed: ParsedRoster,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Store a file read by read_roster_file, or nothing at all when any row of it was bad."""
    if parsed.problems:
        raise RosterRejected(parsed)
    return import_roster(engine, parsed.rows, now, progress)


def import_roster(
    engine: Engine,
    rows: Sequence[RosterRow],
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Insert new cadres, update changed ones, in one transaction. Rows must be validated
    (read_roster_file); import_parsed refuses a file with any bad row.

    Cadres missing from the file are kept: a file may hold one site's part of the roster.
    Only rows whose values change get the new roster version.
    """
    now = now or utc_now()
    with engine.connect() as conn:
        with conn.begin() as transaction:
            # Write first: on SQLite this takes the write lock at once instead of failing to
            # upgrade a read snapshot later; on PostgreSQL it queues concurrent roster writers.
            version = next_version(conn)
            new_sites, renamed_sites = _site_changes(conn, rows)
            inserts, updates, unchanged = _cadre_changes(conn, rows)
            nothing_changed = not (inserts or updates or new_sites or renamed_sites)
            if nothing_changed:
                # Give the version back: kiosks are not sent a change that holds nothing.
                transaction.rollback()
            else:
                _store_sites(conn, new_sites, renamed_sites, version)
                _store_cadres(conn, inserts, updates, version, now, progress)
        if nothing_changed:
            version = current_version(conn)
    if progress and unchanged:
        progress(unchanged)
    return ImportResult(
        version, len(inserts), len(updates), unchanged, len(new_sites), len(renamed_sites)
    )


def _site_changes(
    conn: Connection, rows: Sequence[RosterRow]
) -> tuple[dict[str, str], dict[str, str]]:
    """(new site id -> name, renamed site id -> new name). A new site without a name column
    is named by its id; an existing site is renamed only by an explicit site name."""
    stored = {r.site_id: r.name for r in conn.execute(select(sites.c.site_id, sites.c.name))}
    new: dict[str, str] = {}
    renamed: dict[str, str] = {}
    for row in rows:
        if row.site_id is None:
            continue
        if row.site_id not in stored:
            if row.site_name or row.site_id not in new:
                new[row.site_id] = row.site_name or row.site_id
        elif row.site_name and row.site_name != stored[row.site_id]:
            renamed[row.site_id] = row.site_name
    return new, renamed


def _cadre_changes(
    conn: Connection, rows: Sequence[RosterRow]
) -> tuple[list[RosterRow], list[RosterRow], int]:
    """(rows to insert, rows to update, count unchanged), comparing with what is stored."""
    columns = (cadres.c.cadre_id, cadres.c.name, cadres.c.unit, cadres.c.site_id)
    stored = {r.cadre_id: (r.name, r.unit, r.site_id) for r in conn.execute(select(*columns))}
    inserts: list[RosterRow] = []
    updates: list[RosterRow] = []
    unchanged = 0
    for row in rows:
        before = stored.get(row.cadre_id)
        if before is None:
            inserts.append(row)
        elif (row.name, before[1] if row.unit is None else row.unit, row.site_id) != before:
            updates.append(row)
        else:
            unchanged += 1
    return inserts, updates, unchanged


def _store_sites(
    conn: Connection, new: dict[str, str], renamed: dict[str, str], version: int
) -> None:
    if new:
        conn.execute(
            sites.insert(),
            [{"site_id": s, "name": n, "change_version": version} for s, n in new.items()],
        )
    if renamed:
        conn.execute(
            update(sites)
            .where(sites.c.site_id == bindparam("b_site_id"))
            .values(name=bindparam("b_name"), change_version=version),
            [{"b_site_id": s, "b_name": n} for s, n in renamed.items()],
        )


def _store_cadres(
    conn: Connection,
    inserts: list[RosterRow],
    updates: list[RosterRow],
    version: int,
    now: datetime,
    progress: Callable[[int], None] | None,
) -> None:
    """Bulk statements (executemany) in chunks, so a progress bar can move."""
    for chunk in _chunks(inserts):
        conn.execute(
            cadres.insert(),
            [
                {
                    "cadre_id": row.cadre_id,
                    "name": row.name,
                    "unit": row.unit or "",
                    "site_id": row.site_id,
                    "updated_at": now,
                    "change_version": version,
                }
                for row in chunk
            ],
        )
        if progress:
            progress(len(chunk))
    # A file without a unit column leaves units alone: update those rows without the column.
    for keeps_unit in (False, True):
        values: dict[str, Any] = {
            "name": bindparam("b_name"),
            "site_id": bindparam("b_site_id"),
            "updated_at": now,
            "change_version": version,
        }
        if not keeps_unit:
            values["unit"] = bindparam("b_unit")
        statement = (
            update(cadres).where(cadres.c.cadre_id == bindparam("b_cadre_id")).values(**values)
        )
        selected = [row for row in updates if (row.unit is None) == keeps_unit]
        for chunk in _chunks(selected):
            conn.execute(
                statement,
                [
                    {
                        "b_cadre_id": row.cadre_id,
                        "b_name": row.name,
                        "b_site_id": row.site_id,
                        **({} if keeps_unit else {"b_unit": row.unit}),
                    }
                    for row in chunk
                ],
            )
            if progress:
                progress(len(chunk))


def _chunks(items: list[RosterRow]) -> Iterator[list[RosterRow]]:
    for start in range(0, len(items), WRITE_CHUNK):
        yield items[start : start + WRITE_CHUNK]


# ---------------------------------------------------------------------------------------------
# Queries the sync server, the pages and the badge commands build on


class UnknownCadre(LookupError):
    def __init__(self, cadre_id: str):
        super().__init__(f"no cadre with id {cadre_id!r} in the roster")
        self.cadre_id = cadre_id


class NoBadgeIssued(Exception):
    def __init__(self, cadre_id: str):
        super().__init__(f"cadre {cadre_id} has no badge yet: nothing to revoke")
        self.cadre_id = cadre_id


@dataclass(frozen=True)
class RosterChanges:
    version: int  # the kiosk stores this and asks for changes since it next time
    sites: list[dict[str, Any]]
    cadres: list[dict[str, Any]]


CADRE_SYNC_COLUMNS = (
    cadres.c.cadre_id,
    cadres.c.name,
    cadres.c.unit,
    cadres.c.site_id,
    cadres.c.badge_serial,
    cadres.c.revoked_through,
    cadres.c.change_version,
)


def changes_since(conn: Connection, since_version: int) -> RosterChanges:
    """Sites and cadres changed after `since_version` (0: everything), and the current version.

    Call it inside one transaction (REPEATABLE READ on PostgreSQL) so the rows and the version
    agree; on SQLite a read transaction already sees one snapshot.
    """
    version = current_version(conn)
    site_rows = conn.execute(
        select(sites.c.site_id, sites.c.name, sites.c.change_version)
        .where(sites.c.change_version > since_version)
        .order_by(sites.c.site_id)
    )
    cadre_rows = conn.execute(
        select(*CADRE_SYNC_COLUMNS)
        .where(cadres.c.change_version > since_version)
        .order_by(cadres.c.cadre_id)
    )
    return RosterChanges(
        version,
        [dict(r._mapping) for r in site_rows],
        [dict(r._mapping) for r in cadre_rows],
    )


def revocations(conn: Connection) -> dict[str, int]:
    """cadre id -> highest revoked serial, as verify_token takes it."""
    rows = conn.execute(
        select(cadres.c.cadre_id, cadres.c.revoked_through).where(
            cadres.c.revoked_through.is_not(None)
        )
    )
    return {r.cadre_id: r.revoked_through for r in rows}


def get_cadre(conn: Connection, cadre_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(cadres).where(cadres.c.cadre_id == cadre_id)).first()
    return dict(row._mapping) if row else None


def revoke_badge(engine: Engine, cadre_id: str, now: datetime | None = None) -> int:
    """Revoke every badge of `cadre_id` printed so far; returns the serial revoked through.

    The next badge printed for the cadre gets the serial after it.
    """
    now = now or utc_now()
    with engine.begin() as conn:
        version = next_version(conn)
        row = conn.execute(
            select(cadres.c.badge_serial).where(cadres.c.cadre_id == cadre_id)
        ).first()
        if row is None:
            raise UnknownCadre(cadre_id)
        if row.badge_serial is None:
            raise NoBadgeIssued(cadre_id)
        conn.execute(
            update(cadres)
            .where(cadres.c.cadre_id == cadre_id)
            .values(revoked_through=row.badge_serial, updated_at=now, change_version=version)
        )
        # When, for the badge proofs of records read before and after it (central/ingest/).
        conn.execute(
            insert(badge_revocations).values(
                cadre_id=cadre_id,
                through_serial=row.badge_serial,
                revoked_at=to_utc_naive(now),
            )
        )
        serial: int = row.badge_serial
        return serial


def count_rows(conn: Connection) -> dict[str, int]:
    return {
        "cadres": conn.execute(select(func.count()).select_from(cadres)).scalar_one(),
        "sites": conn.execute(select(func.count()).select_from(sites)).scalar_one(),
    }


def cadres_for_badges(
    conn: Connection, site_id: str | None = None, cadre_ids: Sequence[str] = ()
) -> list[dict[str, Any]]:
    query = select(cadres).order_by(cadres.c.site_id, cadres.c.cadre_id)
    if site_id is not None:
        query = query.where(cadres.c.site_id == site_id)
    if cadre_ids:
        query = query.where(cadres.c.cadre_id.in_(list(cadre_ids)))
    return [dict(r._mapping) for r in conn.execute(query)]
