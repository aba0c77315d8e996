"""Searching, filtering and sorting the staff pages' lists, the same way on every page.

- Names sort by pinyin (sync/names.py), never by code point: 冯 何 刘 吴, not 何 冯 刘 吴.
- A query finds a person or a site by its characters, its id, its pinyin from any syllable, or
  its initials ("sx" finds 宋昕).
- A site's district is its id without the last part: BJ-DC-01 and BJ-DC-02 are in BJ-DC (the
  roster has no district column; ids are given district by district). A site id with no
  separator is its own district.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from central.db import schema
from central.roster import district_of as district_of  # the pages import it from here
from sync import names

T = TypeVar("T")


def districts(site_ids: Iterable[str]) -> list[str]:
    """Districts of more than one site: a site alone is picked as a site, and ids without a
    separator (S001, S002...) would otherwise make a district of every site."""
    count: dict[str, int] = {}
    for site_id in site_ids:
        district = district_of(site_id)
        count[district] = count.get(district, 0) + 1
    return sorted(d for d, n in count.items() if n > 1)


def by_name(items: Iterable[T], name: Callable[[T], str], tie: Callable[[T], str]) -> list[T]:
    """In pinyin order of their names; equal readings by `tie` (an id)."""
    return sorted(items, key=lambda item: (names.sort_key(name(item) or tie(item)), tie(item)))


def finds(query: str) -> Callable[..., bool]:
    """A test for one query, folded once: `finds(q)(name, id, ...)`."""
    wanted = names.fold_query(query)

    def test(name: str, *others: str) -> bool:
        return names.matches_folded(wanted, name, *others)

    return test


def choice(value: str | None, allowed: Sequence[str], default: str) -> str:
    return value if value is not None and value in allowed else default


# --- the roster, held in memory for searching by pinyin ------------------------------------------


@dataclass(frozen=True)
class Person:
    cadre_id: str
    name: str
    unit: str
    site_id: str


class RosterIndex:
    """The roster's names, ids, units and sites, read again when the roster's version moves.

    Searching 40,000 names by pinyin cannot be a SQL LIKE: the pinyin is not in the store. The
    names are read once (about 0.1 s for 40,000) and kept until an import or a badge change
    raises the roster version; each search then asks one indexed number of the store.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: int | None = None
        self._people: list[Person] = []

    def people(self, conn: Connection) -> list[Person]:
        version = conn.execute(select(schema.roster_counter.c.version)).scalar()
        with self._lock:
            if version != self._version:
                c = schema.cadres
                rows = conn.execute(select(c.c.cadre_id, c.c.name, c.c.unit, c.c.site_id))
                self._people = by_name(
                    (Person(r.cadre_id, r.name, r.unit or "", r.site_id or "") for r in rows),
                    lambda p: p.name,
                    lambda p: p.cadre_id,
                )
                self._version = version
            return self._people

    def search(
        self,
        conn: Connection,
        query: str,
        site_id: str = "",
        district: str = "",
        limit: int = 200,
    ) -> tuple[list[Person], int]:
        """People the query finds (in pinyin order), at most `limit`, and how many in all."""
        test = finds(query)
        found: list[Person] = []
        total = 0
        for person in self.people(conn):
            if site_id and person.site_id != site_id:
                continue
            if district and district_of(person.site_id) != district:
                continue
            if query and not test(person.name, person.cadre_id):
                continue
            total += 1
            if len(found) < limit:
                found.append(person)
        return found, total


def roster_index() -> RosterIndex:
    """The app's one RosterIndex (each app its own: tests build many in one process)."""
    from flask import current_app

    index = current_app.extensions.get("staff_roster_index")
    if index is None:
        index = current_app.extensions.setdefault("staff_roster_index", RosterIndex())
    assert isinstance(index, RosterIndex)
    return index


def site_rows(conn: Connection) -> list[dict[str, Any]]:
    """Every site with its district, in id order: what a site picker lists."""
    return [
        {
            "site_id": site_id,
            "name": name,
            "district": district_of(site_id),
            "pinyin": names.spelled(name),
            "initials": names.initials(name)[0] if names.initials(name) else "",
        }
        for site_id, name in conn.execute(
            select(schema.sites.c.site_id, schema.sites.c.name).order_by(schema.sites.c.site_id)
        )
    ]
