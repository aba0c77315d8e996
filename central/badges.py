"""Badge issuing and printable badge sheets.

Issuing gives a cadre badge serial 1 and today's date the first time; after a revocation the next
badge gets the serial after the revoked one. Printing never changes a badge that is still valid,
so a lost sheet can be printed again and yields the same codes (Ed25519 signs deterministically).

Each badge shows the name (Chinese, in an embedded and subset TrueType font), the unit, the site,
and the QR with the cadre id as text under it. The QR holds only the signed token, never a name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fpdf import FPDF
from sqlalchemy import Engine, bindparam, select, update

from central import fonts as fonts_module
from central import roster
from central.db import schema
from central.fonts import MISSING_MARK, FontSet, FontSpec, font_index
from central.ingest.proofs import remember_badges
from sync.badge_token import BadgeCheck, issue_token, key_id_of, verify_token

MAX_QR_VERSION = 7
MAX_SERIAL = 0xFFFF
QUIET_ZONE_MODULES = 4
FONT_FAMILY = "badge-cjk"


class BadgeIssueError(Exception):
    pass


@dataclass(frozen=True)
class Badge:
    cadre_id: str
    name: str
    unit: str
    site_id: str | None
    site_name: str | None
    serial: int
    issued: date
    payload: str


# ---------------------------------------------------------------------------------------------
# Issuing


def _serial_to_print(row: dict[str, Any], today: date) -> tuple[int, date]:
    serial, issued, revoked = row["badge_serial"], row["badge_issued"], row["revoked_through"]
    if serial is None:
        return max(1, (revoked or 0) + 1), today
    if revoked is not None and serial <= revoked:
        return revoked + 1, today
    return serial, issued


def issue_badges(
    engine: Engine,
    private_key: Ed25519PrivateKey,
    site_id: str | None = None,
    cadre_ids: Sequence[str] = (),
    today: date | None = None,
    now: datetime | None = None,
) -> list[Badge]:
    """Badges for every cadre (or a site's, or the ones named), giving serials where needed.

    Raises roster.UnknownCadre when a named cadre is not in the roster.
    """
    today = today or date.today()
    now = now or roster.utc_now()
    key_id = key_id_of(private_key.public_key())
    badges: list[Badge] = []
    with engine.connect() as conn, conn.begin() as transaction:
        version = roster.next_version(conn)
        query = (
            select(schema.cadres, schema.sites.c.name.label("site_name"))
            .select_from(schema.cadres.outerjoin(schema.sites))
            .order_by(schema.cadres.c.site_id, schema.cadres.c.cadre_id)
        )
        if site_id is not None:
            query = query.where(schema.cadres.c.site_id == site_id)
        if cadre_ids:
            query = query.where(schema.cadres.c.cadre_id.in_(list(cadre_ids)))
        rows = [dict(r._mapping) for r in conn.execute(query)]
        found = {row["cadre_id"] for row in rows}
        for cadre_id in cadre_ids:
            if cadre_id not in found:
                raise roster.UnknownCadre(cadre_id)
        changed = []
        for row in rows:
            serial, issued = _serial_to_print(row, today)
            if serial > MAX_SERIAL:
                raise BadgeIssueError(f"cadre {row['cadre_id']}: badge serial {serial} too high")
            if (serial, issued) != (row["badge_serial"], row["badge_issued"]):
                changed.append(
                    {"b_cadre_id": row["cadre_id"], "b_serial": serial, "b_issued": issued}
                )
            payload = issue_token(private_key, row["cadre_id"], serial, issued)
            badges.append(
                Badge(
                    row["cadre_id"],
                    row["name"],
                    row["unit"],
                    row["site_id"],
                    row["site_name"],
                    serial,
                    issued,
                    payload,
                )
            )
        if not changed:
            transaction.rollback()  # nothing new issued: keep the roster version as it was
        else:
            conn.execute(
                update(schema.cadres)
                .where(schema.cadres.c.cadre_id == bindparam("b_cadre_id"))
                .values(
                    badge_serial=bindparam("b_serial"),
                    badge_issued=bindparam("b_issued"),
                    updated_at=now,
                    change_version=version,
                ),
                changed,
            )
    with engine.begin() as conn:
        # Badges the centre signed are genuine: their scans need no signature check at ingest.
        remember_badges(
            conn,
            [
                (b.payload, BadgeCheck(True, "ok", b.cadre_id, b.serial, key_id, b.issued))
                for b in badges
            ],
        )
    return badges


def check_badge(
    engine: Engine, keyring: dict[int, Ed25519PublicKey], payload: str
) -> tuple[BadgeCheck, dict[str, Any] | None]:
    """Verify a scanned payload against the keyring and the roster's revocations.

    Returns the check and the cadre's roster row (None when the token names no known cadre).
    """
    first = verify_token(payload, keyring)
    if first.cadre_id is None:
        return first, None
    with engine.connect() as conn:
        row = roster.get_cadre(conn, first.cadre_id)
    if row is None or row["revoked_through"] is None:
        return first, row
    return verify_token(payload, keyring, {first.cadre_id: row["revoked_through"]}), row


def names_without_glyphs(
    font_set: FontSet, people: Iterable[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """(cadre id, name, unit) of people whose name or unit has characters no badge font can
    draw, each with those characters as U+ codes: said at roster import and on a print."""
    people = list(people)
    lacking = fonts_module.missing_characters(font_set, (n + u for _, n, u in people))
    if not lacking:
        return []
    found: list[dict[str, Any]] = []
    for cadre_id, name, unit in people:
        chars = sorted({char for char in name + unit if char in lacking})
        if chars:
            found.append(
                {
                    "cadre_id": cadre_id,
                    "name": name,
                    "characters": [f"U+{ord(char):04X}" for char in chars],
                }
            )
    return found


# ---------------------------------------------------------------------------------------------
# The QR code


def _qr_dark(payload: str) -> Any:
    """The code's dark modules (no quiet zone) as a numpy bool array, at ECC level M in the
    smallest version.

    zxing-cpp's encoder (C++, about 0.1 ms a code) rather than the qrcode package (pure Python,
    about 40 ms, most of it choosing the mask): at 40,000 badges that is the difference between
    seconds and half an hour. Raises BadgeIssueError above version 7: a bigger code would need
    smaller modules than the printed size can carry.
    """
    try:
        code = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    except (ValueError, RuntimeError) as exc:
        raise BadgeIssueError(f"badge code cannot be made: {exc}") from exc
    dark = numpy.asarray(code.to_image(scale=1, add_quiet_zones=False)) < 128
    version = (len(dark) - 17) // 4
    if version > MAX_QR_VERSION:
        raise BadgeIssueError(f"badge code needs QR version {version} (at most {MAX_QR_VERSION})")
    return dark


def qr_modules(payload: str) -> list[list[bool]]:
    """The code's dark modules, row by row (no quiet zone)."""
    rows: list[list[bool]] = _qr_dark(payload).tolist()
    return rows


def qr_version(payload: str) -> int:
    return (len(qr_modules(payload)) - 17) // 4


# ---------------------------------------------------------------------------------------------
# Sheets


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float


MM_PER_PT = 25.4 / 72


class Sheet:
    """An FPDF document and the fonts on it, with the two drawing operations a badge needs.

    Text goes through FPDF.text() (no markup parsing, no shaping: names need neither) in runs,
    each in the first font of the set that has its characters; widths come from the fonts'
    metrics, measured once per text at size 1 and scaled. The QR code is one filled path written
    as PDF operators. Together these cut the per-badge cost from about 60 ms (fpdf2's path
    objects are deep-copied on every draw, cell() parses each text) to about 2 ms; the fonts are
    subset once, for the whole document, when it is written.
    """

    def __init__(self, fonts: FontSet) -> None:
        self.fonts = fonts
        self.pdf = FPDF(unit="mm", format="A4")
        self.pdf.set_auto_page_break(False)
        self.pdf.set_margins(0, 0, 0)
        self.pdf.set_title("Cadre badges")
        self.pdf.set_creator("cadre-kiosk central")
        # fontTools notes, for every font, that it drops the embedded bitmaps when subsetting.
        logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
        self._families: dict[int, str] = {}
        self._runs: dict[str, list[tuple[int, str, float]]] = {}
        self._chars: dict[str, tuple[int, str, float]] = {}
        self._family(0)
        self.pdf.set_font(self._families[0], size=10)
        self.missing: set[str] = set()

    def _family(self, index: int) -> str:
        """The FPDF family of font `index`, added on first use: a fallback (HanaMinB is 30 MB)
        is read only for a document that needs it."""
        family = self._families.get(index)
        if family is None:
            family = FONT_FAMILY if index == 0 else f"{FONT_FAMILY}-{index}"
            spec = self.fonts.fonts[index]
            self.pdf.add_font(family, fname=str(spec.path), collection_font_number=spec.face)
            self._families[index] = family
        return family

    def runs(self, text: str) -> list[tuple[int, str, float]]:
        """(font index, text, width at 1 pt in mm) runs of `text`; missing characters become
        MISSING_MARK in the primary font (and are noted in self.missing)."""
        cached = self._runs.get(text)
        if cached is not None:
            return cached
        runs: list[tuple[int, str, float]] = []
        for char in text:
            known = self._chars.get(char)
            if known is None:
                known = self._char(char)
                self._chars[char] = known
            index, char, width = known
            if runs and runs[-1][0] == index:
                last = runs[-1]
                runs[-1] = (index, last[1] + char, last[2] + width)
            else:
                runs.append((index, char, width))
        if len(self._runs) < 50_000:  # units and site names repeat on thousands of badges
            self._runs[text] = runs
        return runs

    def _char(self, char: str) -> tuple[int, str, float]:
        """(font index, the character drawn, its width at 1 pt in mm)."""
        index = 0 if char.isspace() else font_index(self.fonts, char)
        if index is None:
            self.missing.add(char)
            char, index = MISSING_MARK, 0
        table = fonts_module.metrics(self.fonts.fonts[index])
        return index, char, table.widths.get(ord(char), table.default) / 1000 * MM_PER_PT

    def width(self, text: str, size: float) -> float:
        """Width of `text` in mm at `size` points."""
        return sum(run[2] for run in self.runs(text)) * size

    def text(self, x: float, baseline: float, text: str, size: float, grey: int = 0) -> None:
        self.pdf.set_text_color(grey)
        for index, part, width in self.runs(text):
            self.pdf.set_font(self._family(index), size=size)
            self.pdf.text(x, baseline, part)
            x += width * size

    def qr(self, payload: str, x: float, y: float, area: float) -> float:
        """Draw the code with its quiet zone in an `area` mm square; returns the module size.

        One filled path for all modules: separate rectangles leave hairline seams when a viewer
        anti-aliases them, and those seams can break a scan of a rendered page.
        """
        dark = _qr_dark(payload)
        count = len(dark)
        module = area / (count + 2 * QUIET_ZONE_MODULES)
        k = self.pdf.k
        origin_x = (x + QUIET_ZONE_MODULES * module) * k
        origin_y = (self.pdf.h - y - QUIET_ZONE_MODULES * module) * k
        # In module units, y downwards from the code's top left corner: the runs of dark modules
        # of each row as integers, found and written by numpy and one % format.
        edges = numpy.diff(numpy.pad(dark.astype(numpy.int8), ((0, 0), (1, 1))), axis=1)
        starts = numpy.argwhere(edges == 1)
        ends = numpy.argwhere(edges == -1)
        cells = numpy.column_stack((starts[:, 1], starts[:, 0], ends[:, 1] - starts[:, 1]))
        # A hair of overlap (1.02 modules high) closes the seam between neighbouring rows.
        runs = ("%d %d %d 1.02 re\n" * len(cells)) % tuple(cells.ravel().tolist())
        operators = [
            f"q 0 g {module * k:.4f} 0 0 {-module * k:.4f} {origin_x:.3f} {origin_y:.3f} cm",
            runs,
        ]
        operators.append("f Q")
        # fpdf2 has no public call for raw content; _out appends to the current page's stream.
        self.pdf._out("\n".join(operators))
        return module


DrawBadge = Callable[[Sheet, Badge, Box], None]


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    badge_w: float  # millimetres
    badge_h: float
    columns: int
    rows: int
    left: float  # sheet edge to the first badge
    top: float
    cut_lines: bool  # plain paper needs cut lines; pre-cut label sheets must not get any
    draw: DrawBadge

    @property
    def per_page(self) -> int:
        return self.columns * self.rows


def _wrap(sheet: Sheet, text: str, width: float, size: float) -> list[str]:
    """Break `text` into lines no wider than `width` at `size`: Latin at spaces (a word wider
    than the line is broken between letters), CJK between any two characters."""
    lines: list[str] = []
    line = ""
    for char in text:
        if not line or sheet.width(line + char, size) <= width:
            line += char
            continue
        cut = line.rfind(" ") if char != " " and line[-1:].isascii() else -1
        if cut > 0 and sheet.width(line[cut + 1 :] + char, size) <= width:
            lines.append(line[:cut])
            line = line[cut + 1 :] + char
        else:
            lines.append(line.rstrip(" "))
            line = "" if char == " " else char
    if line:
        lines.append(line)
    return lines


SMALLEST_PT = 5.0  # below this a name is not legible on a badge: lines are added instead


def fit_text(
    sheet: Sheet, text: str, width: float, largest: float, smallest: float, max_lines: int
) -> tuple[float, list[str]]:
    """The size and lines of `text` in `width` mm: one line, shrunk from `largest` down to
    `smallest`; then wrapped on up to `max_lines` lines, from `largest` down to half of
    `smallest`. Never cut: a text that still does not fit gets more lines."""
    one_line = sheet.width(text, 1.0)
    if one_line == 0:
        return largest, [text]
    size = min(largest, int(width / one_line * 2) / 2)  # steps of half a point
    if size >= smallest:
        return size, [text]
    size = largest
    floor = max(SMALLEST_PT, smallest / 2)
    while size >= floor:
        lines = _wrap(sheet, text, width, size)
        if len(lines) <= max_lines:
            return size, lines
        size -= 0.5
    return floor, _wrap(sheet, text, width, floor)


def _text_block(
    sheet: Sheet,
    text: str,
    box: Box,
    largest: float,
    smallest: float,
    max_lines: int,
    align: str = "C",
    grey: int = 0,
) -> float:
    """Write `text` fitted into the box's width from its top; returns the height used."""
    if not text:
        return 0.0
    size, lines = fit_text(sheet, text, box.w, largest, smallest, max_lines)
    size_mm = size * MM_PER_PT
    line_h = size_mm * 1.25  # with leading
    for index, line in enumerate(lines):
        top = box.y + index * line_h
        # Where FPDF.cell() puts the baseline in a line of this height.
        baseline = top + 0.5 * line_h + 0.3 * size_mm
        x = box.x
        if align == "C":
            x += (box.w - sheet.width(line, size)) / 2
        sheet.text(x, baseline, line, size, grey)
    return line_h * len(lines)


def _footer(badge: Badge) -> str:
    return f"No.{badge.serial}  {badge.issued.isoformat()}"


def _site_label(badge: Badge) -> str:
    return badge.site_name or badge.site_id or ""


def _draw_a6(sheet: Sheet, badge: Badge, box: Box) -> None:
    pad = 9.0
    inner = box.w - 2 * pad
    x = box.x + pad
    _text_block(sheet, _site_label(badge), Box(x, box.y + 7, inner, 6), 11, 8, 1, grey=90)
    used = _text_block(sheet, badge.name, Box(x, box.y + 14, inner, 16), 34, 18, 2)
    _text_block(sheet, badge.unit, Box(x, box.y + 16 + max(used, 14), inner, 12), 13, 9, 2)
    area = 72.0
    qr_x, qr_y = box.x + (box.w - area) / 2, box.y + 47
    module = sheet.qr(badge.payload, qr_x, qr_y, area)
    id_y = qr_y + area - (QUIET_ZONE_MODULES - 1) * module
    _text_block(sheet, badge.cadre_id, Box(x, id_y, inner, 8), 15, 8, 1)
    _text_block(sheet, _footer(badge), Box(x, box.y + box.h - 14, inner, 4), 7, 7, 1, grey=110)


def _draw_card(sheet: Sheet, badge: Badge, box: Box) -> None:
    area = 42.0  # QR with its quiet zone: a 35-37 mm code for versions 6-7
    qr_x, qr_y = box.x + box.w - area - 1, box.y + 1
    module = sheet.qr(badge.payload, qr_x, qr_y, area)
    id_y = qr_y + area - (QUIET_ZONE_MODULES - 1) * module
    _text_block(sheet, badge.cadre_id, Box(qr_x, id_y, area, 4), 9, 5, 1)
    x = box.x + 5
    width = qr_x - x - 1  # text stays out of the quiet zone
    used = _text_block(sheet, badge.name, Box(x, box.y + 6, width, 10), 20, 11, 2, align="L")
    unit_y = box.y + 8 + max(used, 8)
    _text_block(sheet, badge.unit, Box(x, unit_y, width, 12), 9, 7, 3, align="L")
    _text_block(sheet, _site_label(badge), Box(x, box.y + 39, width, 4), 8, 6, 1, "L", grey=90)
    _text_block(sheet, _footer(badge), Box(x, box.y + 45, width, 3), 6, 6, 1, "L", grey=110)


A4_W, A4_H = 210.0, 297.0
LAYOUTS: dict[str, Layout] = {
    "a6-on-a4": Layout(
        "a6-on-a4",
        "A6 badges, 4 per A4 page, with cut lines",
        105,
        148.5,
        2,
        2,
        0,
        0,
        True,
        _draw_a6,
    ),
    "54x90-2x5": Layout(
        "54x90-2x5",
        "90 x 54 mm cards, 2 x 5 per A4 label sheet",
        90,
        54,
        2,
        5,
        15,
        13.5,
        False,
        _draw_card,
    ),
}


def _cut_lines(pdf: FPDF, layout: Layout) -> None:
    pdf.set_draw_color(170)
    pdf.set_line_width(0.2)
    pdf.set_dash_pattern(dash=2, gap=2)
    for column in range(1, layout.columns):
        x = layout.left + column * layout.badge_w
        pdf.line(x, 0, x, A4_H)
    for row in range(1, layout.rows):
        y = layout.top + row * layout.badge_h
        pdf.line(0, y, A4_W, y)
    pdf.set_dash_pattern()
    pdf.set_draw_color(0)


def render_sheets(
    badges: Sequence[Badge],
    out: Path,
    layout_name: str,
    font: FontSpec | FontSet,
    progress: Callable[[int], None] | None = None,
    writing: Callable[[], None] | None = None,
) -> int:
    """Write the badges as A4 sheets to `out` (atomically); returns the number of pages.

    `progress` hears the number of badges drawn so far (every 50 and at the end); `writing` is
    called once before the document is written out (subsetting the fonts, compressing).
    """
    if layout_name not in LAYOUTS:
        raise BadgeIssueError(f"unknown layout {layout_name!r}; choose one of {', '.join(LAYOUTS)}")
    layout = LAYOUTS[layout_name]
    sheet = Sheet(font if isinstance(font, FontSet) else FontSet(font))
    pdf = sheet.pdf
    for index, badge in enumerate(badges):
        slot = index % layout.per_page
        if slot == 0:
            pdf.add_page()
            if layout.cut_lines:
                _cut_lines(pdf, layout)
        column, row = slot % layout.columns, slot // layout.columns
        box = Box(
            layout.left + column * layout.badge_w,
            layout.top + row * layout.badge_h,
            layout.badge_w,
            layout.badge_h,
        )
        layout.draw(sheet, badge, box)
        if progress and (index + 1) % 50 == 0:
            progress(index + 1)
    if progress:
        progress(len(badges))
    if writing:
        writing()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    pdf.output(str(partial))
    os.replace(partial, out)
    return pdf.pages_count
