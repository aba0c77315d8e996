"""Badge issuing and sheets: QR size, read back from the rendered PDF by both decoders."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyzbar import pyzbar

from central import badges, fonts, roster, roster_file
from sync.badge_token import verify_token

PRINT_DPI = 150
MM_PER_INCH = 25.4

CADRES = [
    ("SZ-000001", "宋昕", "东城区卫生健康委员会", "S1"),
    ("SZ-000002", "欧阳娜娜", "Department of Health, a very long unit name for wrapping", "S1"),
    ("SZ-000003", "阿不都热合曼·买买提", "西城区", "S2"),
    ("a.b_c-0123456789ABCDEFGHIJKLMNOP", "李", "朝阳区", "S2"),  # the longest id allowed
    ("SZ-000005", "王小明", "", None),
]


def fill(engine):
    rows = [
        roster_file.RosterRow(line, cadre_id, name, unit, site, None)
        for line, (cadre_id, name, unit, site) in enumerate(CADRES, start=2)
    ]
    roster.import_roster(engine, rows)
    return engine


@pytest.fixture
def filled_store(store):
    return fill(store)


@pytest.fixture
def filled_any_store(central_engine):
    """On SQLite and PostgreSQL: for the tests about what issuing stores."""
    return fill(central_engine)


def render_pages(pdf_path: Path, dpi: int = PRINT_DPI):
    document = pdfium.PdfDocument(str(pdf_path))
    try:
        return [page.render(scale=dpi / 72).to_pil().convert("L") for page in document]
    finally:
        document.close()


def read_all(pages) -> tuple[dict[str, float], set[str]]:
    """(zxing-cpp payload -> code width in mm, pyzbar payloads) over every page."""
    by_zxing: dict[str, float] = {}
    by_zbar: set[str] = set()
    for image in pages:
        for result in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode):
            corners = result.position
            width_px = abs(corners.top_right.x - corners.top_left.x)
            by_zxing[result.text] = width_px / PRINT_DPI * MM_PER_INCH
        for symbol in pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE]):
            by_zbar.add(symbol.data.decode("ascii"))
    return by_zxing, by_zbar


@pytest.mark.parametrize(("layout", "min_code_mm"), [("a6-on-a4", 50), ("54x90-2x5", 30)])
def test_both_decoders_read_every_badge_from_the_sheet_at_150_dpi(
    filled_store, issuing_key, keyring, cjk_font, tmp_path, layout, min_code_mm
):
    issued = badges.issue_badges(filled_store, issuing_key, today=date(2026, 11, 29))
    out = tmp_path / "badges.pdf"
    pages = badges.render_sheets(issued, out, layout, cjk_font)
    per_page = badges.LAYOUTS[layout].per_page
    assert pages == -(-len(CADRES) // per_page)

    by_zxing, _ = read_all(render_pages(out))
    expected = {badge.payload for badge in issued}
    assert set(by_zxing) == expected
    for payload, width_mm in by_zxing.items():
        assert width_mm >= min_code_mm, f"code printed {width_mm:.1f} mm wide"
        check = verify_token(payload, keyring)
        assert check.valid, check.reason
    ids = {verify_token(p, keyring).cadre_id for p in by_zxing}
    assert ids == {cadre_id for cadre_id, *_ in CADRES}


# zbar alone misses a few codes whatever the layout: over 2,000 A6 badges of random keys at 150
# dpi it missed 4 (0.2%), zxing-cpp none. The kiosk reads with zxing-cpp first and zbar only as a
# fallback, so the random badges above must all be read by zxing-cpp, and zbar is held to the
# sheets of one fixed key: a layout that breaks zbar (quiet zone, size, contrast) still fails
# here, and the same badges are checked on every run.
FIXED_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.mark.parametrize("layout", ["a6-on-a4", "54x90-2x5"])
def test_zbar_reads_every_badge_of_a_fixed_key_from_the_sheet_at_150_dpi(
    filled_store, cjk_font, tmp_path, layout
):
    issued = badges.issue_badges(filled_store, FIXED_KEY, today=date(2026, 11, 29))
    out = tmp_path / "badges.pdf"
    badges.render_sheets(issued, out, layout, cjk_font)
    _, by_zbar = read_all(render_pages(out))
    assert by_zbar == {badge.payload for badge in issued}


def test_payload_holds_no_name_and_fits_version_7_at_ecc_m(filled_store, issuing_key):
    issued = badges.issue_badges(filled_store, issuing_key, today=date(2026, 11, 29))
    for badge in issued:
        assert badge.name not in badge.payload
        assert re.fullmatch(r"[0-9A-Z $%*+\-./:]+", badge.payload)
        assert badges.qr_version(badge.payload) <= badges.MAX_QR_VERSION
    longest = max(issued, key=lambda b: len(b.payload))
    assert badges.qr_version(longest.payload) == 7  # the 32-character id needs version 7


def test_a_code_above_version_7_is_refused():
    with pytest.raises(badges.BadgeIssueError, match="version 8"):
        badges.qr_modules("CB1" + "A" * 190)


def test_cjk_font_is_embedded_and_subset(filled_store, issuing_key, cjk_font, tmp_path):
    issued = badges.issue_badges(filled_store, issuing_key)
    out = tmp_path / "badges.pdf"
    badges.render_sheets(issued, out, "a6-on-a4", cjk_font)
    data = out.read_bytes()
    assert b"/FontFile2" in data  # the TrueType program is in the file
    assert re.search(rb"/BaseFont /[A-Z]{6}\+WenQuanYi", data)  # ABCDEF+ marks a subset
    assert len(data) < 400_000  # the whole 16 MB collection would be far above this
    document = pdfium.PdfDocument(str(out))
    text = document[0].get_textpage().get_text_range()
    document.close()
    assert "宋昕" in text and "东城区卫生健康委员会" in text and "SZ-000001" in text


def test_serials_start_at_1_stay_on_reprint_and_rise_after_revocation(
    filled_any_store, issuing_key, keyring
):
    first = {b.cadre_id: b for b in badges.issue_badges(filled_any_store, issuing_key)}
    assert {b.serial for b in first.values()} == {1}
    with filled_any_store.connect() as conn:
        version = roster.current_version(conn)
    again = {b.cadre_id: b for b in badges.issue_badges(filled_any_store, issuing_key)}
    assert {k: b.payload for k, b in again.items()} == {k: b.payload for k, b in first.items()}
    with filled_any_store.connect() as conn:
        assert roster.current_version(conn) == version  # a plain reprint changes nothing

    roster.revoke_badge(filled_any_store, "SZ-000001")
    check, row = badges.check_badge(filled_any_store, keyring, first["SZ-000001"].payload)
    assert (check.valid, check.reason, row["name"]) == (False, "revoked", "宋昕")

    [reissued] = badges.issue_badges(
        filled_any_store, issuing_key, cadre_ids=["SZ-000001"], today=date(2027, 1, 2)
    )
    assert (reissued.serial, reissued.issued) == (2, date(2027, 1, 2))
    assert badges.check_badge(filled_any_store, keyring, reissued.payload)[0].valid
    old = badges.check_badge(filled_any_store, keyring, first["SZ-000001"].payload)[0]
    assert old.reason == "revoked"
    with filled_any_store.connect() as conn:
        changed = roster.changes_since(conn, version).cadres
    assert [(c["cadre_id"], c["badge_serial"], c["revoked_through"]) for c in changed] == [
        ("SZ-000001", 2, 1)
    ]


def test_site_filter_and_unknown_cadre(filled_any_store, issuing_key):
    site_two = badges.issue_badges(filled_any_store, issuing_key, site_id="S2")
    assert sorted(b.cadre_id for b in site_two) == sorted(c[0] for c in CADRES if c[3] == "S2")
    with pytest.raises(roster.UnknownCadre):
        badges.issue_badges(filled_any_store, issuing_key, cadre_ids=["nobody"])


def test_missing_font_names_the_apt_package(tmp_path):
    with pytest.raises(fonts.FontError, match="apt-get install fonts-wqy-zenhei"):
        fonts.require_font(tmp_path / "wqy-zenhei.ttc")
    with pytest.raises(fonts.FontError, match="badge_font_file"):
        fonts.require_font(tmp_path / "other.ttf")
    with pytest.raises(fonts.FontError, match="faces 0-"):
        fonts.require_font(Path(fonts.DEFAULT_FONT_FILE), face=9)


def test_font_coverage_check_finds_characters_it_lacks(cjk_font):
    assert fonts.missing_characters(cjk_font, ["宋昕 欧阳娜娜 SZ-01"]) == set()
    # U+2A6A5 (CJK extension B) is beyond what WenQuanYi Zen Hei draws.
    assert fonts.missing_characters(cjk_font, ["王\U0002a6a5"]) == {"\U0002a6a5"}


LONG_NAMES = [
    ("L1", "Maximilian Alexander Schwarzenegger-Whitfield"),
    ("L2", "Wolfeschlegelsteinhausenbergerdorffvoralternwarengewissenhaft"),
    ("L3", "Anne-Marie Charlotte de la Fontaine-Beaumont"),
]


@pytest.mark.parametrize("layout", ["54x90-2x5", "a6-on-a4"])
def test_long_latin_names_are_printed_whole_inside_their_column(
    store, issuing_key, all_fonts, tmp_path, layout
):
    """Defect 9: long Latin names were cut with an ellipsis on the 90 x 54 card."""
    rows = [
        roster_file.RosterRow(n, cid, name, "Unit", "S1", None)
        for n, (cid, name) in enumerate(LONG_NAMES)
    ]
    roster.import_roster(store, rows)
    issued = badges.issue_badges(store, issuing_key)
    out = tmp_path / "long.pdf"
    badges.render_sheets(issued, out, layout, all_fonts)
    spec = badges.LAYOUTS[layout]
    document = pdfium.PdfDocument(str(out))
    try:
        page = document[0]
        text = page.get_textpage()
        whole = text.get_text_range()
        compact = re.sub(r"\s+", "", whole)
        for _cid, name in LONG_NAMES:
            assert name.replace(" ", "") in compact, name
        assert "…" not in whole
        # Every character of a name stays inside its badge's text column (left of the QR code
        # on the card, within the padding on the A6 badge).
        page_w, _page_h = page.get_size()
        points_per_mm = page_w / badges.A4_W
        for index in range(text.count_chars()):
            char = text.get_text_range(index, 1)
            if not char.strip() or char not in "".join(name for _, name in LONG_NAMES):
                continue
            left, _bottom, right, _top = text.get_charbox(index)
            x_mm = left / points_per_mm
            column = int((x_mm - spec.left) // spec.badge_w)
            badge_left = spec.left + column * spec.badge_w
            if layout == "54x90-2x5":
                qr_left = badge_left + spec.badge_w - 42.0 - 1
                assert right / points_per_mm <= qr_left + 0.01, (char, right / points_per_mm)
            else:
                assert right / points_per_mm <= badge_left + spec.badge_w - 9 + 0.01
    finally:
        document.close()


def test_a_name_in_cjk_extension_b_prints_with_the_fallback_font(
    store, issuing_key, all_fonts, tmp_path
):
    """Defect 3: 𠮷 (U+20BB7) is not in Zen Hei; it used to vanish from the sheet."""
    roster.import_roster(store, [roster_file.RosterRow(1, "X1", "𠮷祥", "东城区", "S1", None)])
    issued = badges.issue_badges(store, issuing_key)
    assert fonts.missing_characters(all_fonts.primary, ["𠮷祥"]) == {"𠮷"}
    assert fonts.missing_characters(all_fonts, ["𠮷祥"]) == set()
    out = tmp_path / "extb.pdf"
    badges.render_sheets(issued, out, "54x90-2x5", all_fonts)
    data = out.read_bytes()
    assert re.search(rb"/BaseFont /[A-Z]{6}\+HanaMin[AB]", data), "the fallback is embedded, subset"
    document = pdfium.PdfDocument(str(out))
    text = document[0].get_textpage().get_text_range()
    document.close()
    assert "𠮷祥" in re.sub(r"\s+", "", text)  # pdfium breaks the line where the font changes


def test_a_character_no_font_has_is_named_and_marked_not_dropped(store, all_fonts):
    ext_g = "\U0003134a"
    people = [
        ("A1", f"王{ext_g}明", "东城区"),
        ("A2", "𠮷祥", "西城区"),
        ("A3", "李娜", f"单位{ext_g}"),
    ]
    assert badges.names_without_glyphs(all_fonts, people) == [
        {"cadre_id": "A1", "name": f"王{ext_g}明", "characters": ["U+3134A"]},
        {"cadre_id": "A3", "name": "李娜", "characters": ["U+3134A"]},
    ]
    sheet = badges.Sheet(all_fonts)
    assert [part for _font, part, _w in sheet.runs(f"王{ext_g}明")] == ["王〓明"]
    assert sheet.missing == {ext_g}


def test_badge_qr_codes_read_back_at_every_version_the_ids_need(issuing_key):
    """zxing-cpp makes the codes: ECC level M, the smallest version, read back by both decoders."""
    import qrcode
    import qrcode.constants

    from sync.badge_token import issue_token

    for cadre_id in ("S1", "SZ-000001", "a.b_c-0123456789ABCDEFGHIJKLMNOP"):
        payload = issue_token(issuing_key, cadre_id, 1, date(2026, 11, 29))
        modules = badges.qr_modules(payload)
        # The smallest version at level M, as the reference encoder (qrcode) finds it.
        reference = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
        reference.add_data(payload, optimize=0)
        reference.make(fit=True)
        assert badges.qr_version(payload) == reference.version
        size = len(modules) * 8 + 64
        from PIL import Image

        image = Image.new("L", (size, size), 255)
        for r, row in enumerate(modules):
            for c, dark in enumerate(row):
                if dark:
                    image.paste(0, (32 + c * 8, 32 + r * 8, 40 + c * 8, 40 + r * 8))
        [read] = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
        assert read.text == payload and read.ec_level == "M"
        assert pyzbar.decode(image)[0].data.decode() == payload
