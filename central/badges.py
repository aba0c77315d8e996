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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import qrcode
import qrcode.constants
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fpdf import FPDF
from fpdf.enums import PathPaintRule
from sqlalchemy import Engine, bindparam, select, update

from central import roster
from central.db import schema
from central.fonts import FontSpec
from sync.badge_token import BadgeCheck, issue_token, verify_token

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


# ---------------------------------------------------------------------------------------------
# The QR code


def qr_modules(payload: str) -> list[list[bool]]:
    """The code's dark modules (no quiet zone), at ECC level M in the smallest version.

    Raises BadgeIssueError above version 7: a bigger code would need smaller modules than the
    printed size can carry.
    """
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(payload, optimize=0)
    code.make(fit=True)
    if code.version > MAX_QR_VERSION:
        raise BadgeIssueError(
            f"badge code needs QR version {code.version} (at most {MAX_QR_VERSION})"
        )
    return code.get_matrix()


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


DrawBadge = Callable[[FPDF, Badge, Box], None]


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


def _draw_qr(pdf: FPDF, payload: str, x: float, y: float, area: float) -> float:
    """Draw the code with its quiet zone in an `area` mm square; returns the module size.

    One filled path for all modules: separate rectangles leave hairline seams when a viewer
    anti-aliases them, and those seams can break a scan of a rendered page.
    """
    modules = qr_modules(payload)
    count = len(modules)
    module = area / (count + 2 * QUIET_ZONE_MODULES)
    origin_x = x + QUIET_ZONE_MODULES * module
    origin_y = y + QUIET_ZONE_MODULES * module
    with pdf.new_path(paint_rule=PathPaintRule.FILL_NONZERO) as path:
        path.style.fill_color = "#000000"
        path.style.stroke_color = None
        for r, row in enumerate(modules):
            c = 0
            while c < count:
                if not row[c]:
                    c += 1
                    continue
                start = c
                while c < count and row[c]:
                    c += 1
                # A hair of overlap closes the seam between neighbouring rows as well.
                path.rectangle(
                    origin_x + start * module,
                    origin_y + r * module,
                    (c - start) * module,
                    module * 1.02,
                )
    return module


def _wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """Break `text` into lines no wider than `width`; CJK breaks anywhere, Latin at spaces."""
    lines: list[str] = []
    line = ""
    for char in text:
        if pdf.get_string_width(line + char) <= width or not line:
            line += char
            continue
        cut = line.rfind(" ") if char != " " and line[-1:].isascii() else -1
        if cut > 0:
            lines.append(line[:cut])
            line = line[cut + 1 :] + char
        else:
            lines.append(line)
            line = "" if char == " " else char
    if line:
        lines.append(line)
    return lines


def _fit(
    pdf: FPDF, text: str, width: float, largest: float, smallest: float, max_lines: int
) -> tuple[float, list[str]]:
    """The largest size at which `text` fits on one line, else wrapped at `smallest`."""
    size = largest
    while size >= smallest:
        pdf.set_font_size(size)
        if pdf.get_string_width(text) <= width:
            return size, [text]
        size -= 0.5
    pdf.set_font_size(smallest)
    lines = _wrap(pdf, text, width)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and pdf.get_string_width(last + "…") > width:
            last = last[:-1]
        lines[-1] = last + "…"
    return smallest, lines


def _text_block(
    pdf: FPDF,
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
    size, lines = _fit(pdf, text, box.w, largest, smallest, max_lines)
    line_h = size * 0.3528 * 1.25  # points to mm, with leading
    pdf.set_text_color(grey)
    for index, line in enumerate(lines):
        pdf.set_xy(box.x, box.y + index * line_h)
        pdf.cell(box.w, line_h, line, align=align)
    pdf.set_text_color(0)
    return line_h * len(lines)


def _footer(badge: Badge) -> str:
    return f"No.{badge.serial}  {badge.issued.isoformat()}"


def _site_label(badge: Badge) -> str:
    return badge.site_name or badge.site_id or ""


def _draw_a6(pdf: FPDF, badge: Badge, box: Box) -> None:
    pad = 9.0
    inner = box.w - 2 * pad
    x = box.x + pad
    _text_block(pdf, _site_label(badge), Box(x, box.y + 7, inner, 6), 11, 8, 1, grey=90)
    used = _text_block(pdf, badge.name, Box(x, box.y + 14, inner, 16), 34, 18, 2)
    _text_block(pdf, badge.unit, Box(x, box.y + 16 + max(used, 14), inner, 12), 13, 9, 2)
    area = 72.0
    qr_x, qr_y = box.x + (box.w - area) / 2, box.y + 47
    module = _draw_qr(pdf, badge.payload, qr_x, qr_y, area)
    id_y = qr_y + area - (QUIET_ZONE_MODULES - 1) * module
    _text_block(pdf, badge.cadre_id, Box(x, id_y, inner, 8), 15, 8, 1)
    _text_block(pdf, _footer(badge), Box(x, box.y + box.h - 14, inner, 4), 7, 7, 1, grey=110)


def _draw_card(pdf: FPDF, badge: Badge, box: Box) -> None:
    area = 42.0  # QR with its quiet zone: a 35-37 mm code for versions 6-7
    qr_x, qr_y = box.x + box.w - area - 1, box.y + 1
    module = _draw_qr(pdf, badge.payload, qr_x, qr_y, area)
    id_y = qr_y + area - (QUIET_ZONE_MODULES - 1) * module
    _text_block(pdf, badge.cadre_id, Box(qr_x, id_y, area, 4), 9, 5, 1)
    x = box.x + 5
    width = qr_x - x - 1  # text stays out of the quiet zone
    used = _text_block(pdf, badge.name, Box(x, box.y + 6, width, 10), 20, 11, 2, align="L")
    unit_y = box.y + 8 + max(used, 8)
    _text_block(pdf, badge.unit, Box(x, unit_y, width, 12), 9, 7, 3, align="L")
    _text_block(pdf, _site_label(badge), Box(x, box.y + 39, width, 4), 8, 6, 1, "L", grey=90)
    _text_block(pdf, _footer(badge), Box(x, box.y + 45, width, 3), 6, 6, 1, "L", grey=110)


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


def render_sheets(badges: Sequence[Badge], out: Path, layout_name: str, font: FontSpec) -> int:
    """Write the badges as A4 sheets to `out` (atomically); returns the number of pages."""
    if layout_name not in LAYOUTS:
        raise BadgeIssueError(f"unknown layout {layout_name!r}; choose one of {', '.join(LAYOUTS)}")
    layout = LAYOUTS[layout_name]
    pdf = FPDF(unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    pdf.set_title("Cadre badges")
    pdf.set_creator("cadre-kiosk central")
    # fontTools notes, for every sheet, that it drops the font's embedded bitmaps when subsetting.
    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
    pdf.add_font(FONT_FAMILY, fname=str(font.path), collection_font_number=font.face)
    pdf.set_font(FONT_FAMILY, size=10)
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
        layout.draw(pdf, badge, box)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    pdf.output(str(partial))
    os.replace(partial, out)
    return pdf.pages_count
