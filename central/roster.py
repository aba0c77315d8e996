"""The roster: sites and cadres, imported from the spreadsheets central staff keep.

Every change to the roster (an import, a badge issued, a badge revoked) takes the next value of
one roster version counter and stamps it on each row it changes, in the same transaction. A kiosk
that holds version N asks for the rows whose `change_version` is above N (`changes_since`).

An import is read and validated whole before anything is written, and written in one transaction:
a file with a bad row changes nothing, and every bad row is reported with its line and reason.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    func,
    select,
    update,
)

from central.db.schema import (
    NAME_MAX,
    SITE_ID_MAX,
    SITE_NAME_MAX,
    UNIT_MAX,
    cadres,
    roster_counter,
    sites,
)
from sync.badge_token import CADRE_ID_PATTERN

# A roster bigger than this is a wrong file (a whole HR export), not a roster.
MAX_ROWS = 500_000
WRITE_CHUNK = 2_000


def next_version(conn: Connection) -> int:
    """Take the next roster version inside the caller's transaction (locks the counter row)."""
    conn.execute(
        update(roster_counter)
        .where(roster_counter.c.id == 1)
        .values(version=roster_counter.c.version + 1)
    )
    return conn.execute(
        select(roster_counter.c.version).where(roster_counter.c.id == 1)
    ).scalar_one()


def current_version(conn: Connection) -> int:
    return conn.execute(
        select(roster_counter.c.version).where(roster_counter.c.id == 1)
    ).scalar_one()


def utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Reading a roster file


class RosterFileError(Exception):
    """The file as a whole cannot be read as a roster (encoding, format, headers)."""


@dataclass(frozen=True)
class RosterRow:
    line: int  # line in the CSV file / row in the sheet, as the person who edits it sees it
    cadre_id: str
    name: str
    unit: str | None  # None: the file has no unit column, keep what is stored
    site_id: str | None  # None: no site column, or the cell is empty
    site_name: str | None


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ParsedRoster:
    source: str
    rows: list[RosterRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


# Accepted spellings of each column, compared after stripping spaces and case-folding.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "cadre_id": ("编号", "id", "cadre_id", "工号"),
    "name": ("姓名", "name"),
    "unit": ("单位", "unit"),
    "site_id": ("站点", "site", "site_id"),
    "site_name": ("站点名称", "site_name"),
}
REQUIRED_COLUMNS = ("cadre_id", "name")
_HEADER_LOOKUP = {alias.casefold(): key for key, names in COLUMN_ALIASES.items() for alias in names}


def _normalise_header(cell: object) -> str:
    # Excel users pad headers with ordinary and ideographic spaces; BOM remnants are seen too.
    return str(cell if cell is not None else "").strip(" \t\r\n\u3000\ufeff").casefold()


def _cell_text(value: object) -> str:
    """A cell as text. Excel stores ids like 10023 as numbers (and 10023.0 as a float)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _refused_character(text: str) -> str | None:
    """The first character no roster text may hold: controls, format marks, line separators.

    Format marks (Cf) include bidi overrides that make a name display as something else.
    Private-use characters stay allowed: older systems encode rare name characters there.
    """
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            return f"U+{ord(char):04X}"
    return None


def _clean_text(raw: str, label: str, limit: int, problems: list[str]) -> str:
    text = unicodedata.normalize("NFC", raw.strip(" \t\u3000"))
    bad = _refused_character(text)
    if bad:
        problems.append(f"{label} contains a control or invisible character ({bad})")
    if len(text) > limit:
        problems.append(f"{label} is {len(text)} characters long (at most {limit})")
    return text


def _validate(
    line: int, cells: dict[str, str], seen: dict[str, int]
) -> tuple[RosterRow | None, list[str]]:
    problems: list[str] = []
    cadre_id = cells.get("cadre_id", "").strip(" \t\u3000")
    if not cadre_id:
        problems.append("missing id")
    elif not CADRE_ID_PATTERN.fullmatch(cadre_id):
        shown = cadre_id if len(cadre_id) <= 40 else cadre_id[:40] + "…"
        problems.append(f"id {shown!r} must be 1-32 characters of A-Z a-z 0-9 . _ -")
    elif cadre_id in seen:
        problems.append(f"duplicate id {cadre_id} (first on line {seen[cadre_id]})")
    else:
        seen[cadre_id] = line
    name = _clean_text(cells.get("name", ""), "name", NAME_MAX, problems)
    if not name:
        problems.append("missing name")
    unit = _clean_text(cells["unit"], "unit", UNIT_MAX, problems) if "unit" in cells else None
    site_id = _clean_text(cells.get("site_id", ""), "site", SITE_ID_MAX, problems) or None
    site_name = (
        _clean_text(cells.get("site_name", ""), "site name", SITE_NAME_MAX, problems) or None
    )
    if site_name and not site_id:
        problems.append("site name given without a site")
    # A site id is a path segment of the staff pages (/staff/sites/<id>): with a slash, or as
    # "." or "..", its page could never be opened (browsers resolve "../" away).
    if site_id and (any(char in site_id for char in "/\\") or not site_id.strip(".")):
        problems.append(f"site {site_id!r} may not hold / or \\ or be only dots")
    if problems:
        return None, problems
    return RosterRow(line, cadre_id, name, unit, site_id, site_name), []


def _decode_csv(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        # What Chinese Excel writes for "CSV": GBK, a subset of GB18030.
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise RosterFileError(
            f"{source}: neither UTF-8 nor GB18030 text (byte {exc.start}); "
            "save it from Excel as CSV UTF-8 or as XLSX"
        ) from exc


def _csv_records(
    path: Path, on_total: Callable[[int], None] | None
) -> Iterator[tuple[int, Sequence[object]]]:
    text = _decode_csv(path.read_bytes(), str(path))
    if on_total:
        on_total(text.count("\n"))
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        for record in reader:
            yield start, record
            # A quoted cell may span lines: the next record starts after the lines just read.
            start = reader.line_num + 1
    except csv.Error as exc:
        raise RosterFileError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from exc


def _xlsx_records(
    path: Path, on_total: Callable[[int], None] | None
) -> Iterator[tuple[int, Sequence[object]]]:
    import zipfile
    from xml.etree.ElementTree import ParseError

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    damaged = (zipfile.BadZipFile, KeyError, ValueError, OSError, ParseError, InvalidFileException)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except damaged as exc:
        raise RosterFileError(f"{path}: not a readable XLSX workbook ({exc})") from exc
    try:
        sheet = workbook.worksheets[0]
        if on_total and sheet.max_row:  # from the sheet's dimension; some writers leave it out
            on_total(sheet.max_row)
        yield from enumerate(sheet.iter_rows(values_only=True), start=1)
    except damaged as exc:
        raise RosterFileError(f"{path}: damaged XLSX workbook ({exc})") from exc
    finally:
        workbook.close()


def read_roster_file(
    path: Path,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ParsedRoster:
    """Read and validate a CSV or XLSX roster. Bad rows become problems; nothing is stored.

    `on_total` hears about how many rows the file has once it is open; `progress` hears of each
    row checked. Raises RosterFileError when the file as a whole is unusable (format, encoding,
    headers).
    """
    suffix = path.suffix.casefold()
    if not path.is_file():
        raise RosterFileError(f"{path}: no such file")
    if suffix in (".xlsx", ".xlsm"):
        records = _xlsx_records(path, on_total)
    elif suffix in (".csv", ".txt", ".tsv"):
        records = _csv_records(path, on_total)
    elif suffix == ".xls":
        raise RosterFileError(f"{path}: old .xls workbooks are not read; save it as .xlsx or CSV")
    else:
        raise RosterFileError(f"{path}: expected a .csv or .xlsx file")
    return parse_records(records, str(path), progress)


def parse_records(
    records: Iterable[tuple[int, Sequence[object]]],
    source: str,
    progress: Callable[[int], None] | None = None,
) -> ParsedRoster:
    """Validate (line, cells) records whose first non-blank one is the header."""
    parsed = ParsedRoster(source)
    header: _Header | None = None
    seen: dict[str, int] = {}
    for line, record in records:
        texts = [_cell_text(value) for value in record]
        if not any(text.strip() for text in texts):
            continue  # blank rows: spreadsheets are full of them
        if header is None:
            header = _read_header(texts, line, source, parsed)
            continue
        if len(parsed.rows) + len(parsed.problems) >= MAX_ROWS:
            raise RosterFileError(f"{source}: more than {MAX_ROWS} rows; is this the right file?")
        cells = {key: texts[i] if i < len(texts) else "" for i, key in header.columns.items()}
        row, problems = _validate(line, cells, seen)
        if any(text.strip() for text in texts[header.width :]):
            problems.append("more cells than headers (an unquoted comma in a cell?)")
        if problems:
            parsed.problems.extend(RowProblem(line, reason) for reason in problems)
        elif row is not None:
            parsed.rows.append(row)
        if progress:
            progress(1)
    if header is None:
        raise RosterFileError(f"{source}: the file is empty")
    return parsed


@dataclass(frozen=True)
class _Header:
    columns: dict[int, str]  # cell index -> field name
    width: int  # cells in the header row up to the last non-blank one


def _read_header(texts: list[str], line: int, source: str, parsed: ParsedRoster) -> _Header:
    columns: dict[int, str] = {}
    for index, text in enumerate(texts):
        header = _normalise_header(text)
        key = _HEADER_LOOKUP.get(header)
        if key is None:
            if header:
                parsed.ignored_columns.append(text.strip())
            continue
        if key in columns.values():
            raise RosterFileError(
                f"{source}: line {line}: two columns for {key} ({text.strip()!r})"
            )
        columns[index] = key
    missing = [key for key in REQUIRED_COLUMNS if key not in columns.values()]
    if missing:
        wanted = "; ".join(f"{key}: {' / '.join(COLUMN_ALIASES[key])}" for key in missing)
        found = ", ".join(repr(t.strip()) for t in texts if t.strip()) or "nothing"
        raise RosterFileError(
            f"{source}: line {line}: header lacks required columns ({wanted}); found {found}"
        )
    width = len(texts)
    while width and not texts[width - 1].strip():
        width -= 1
    return _Header(columns, width)


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
        return row.badge_serial


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
