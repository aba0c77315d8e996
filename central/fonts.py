"""The fonts embedded in badge sheets: where they come from, which characters they cover, and
how wide a text is in them.

Debian's fonts-wqy-zenhei ships WenQuanYi Zen Hei as a TrueType collection (.ttc); face 0 is the
proportional Zen Hei. It covers the common Chinese characters (URO and Extension A) but only one
character of Extension B, so a name like 𠮷祥 (U+20BB7) would print as 祥. Debian's
fonts-hanazono adds HanaMinA (URO and Extension A in full) and HanaMinB (Extensions B to F): the
fallbacks. scripts/install-system-packages.sh installs both packages, so every machine that
prints badges embeds the same fonts.

A character goes to the first font of the set that has it; a character no font has is reported
(by name and cadre) before anything is printed, and printed as 〓 (the typesetter's mark for a
missing character) rather than silently left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont, TTLibError

from central.settings import CentralSettings

DEFAULT_FONT_FILE = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
FONT_APT_PACKAGE = "fonts-wqy-zenhei"
DEFAULT_FALLBACK_FILES = (
    "/usr/share/fonts/truetype/hanazono/HanaMinA.ttf",
    "/usr/share/fonts/truetype/hanazono/HanaMinB.ttf",
)
FALLBACK_APT_PACKAGE = "fonts-hanazono"
MISSING_MARK = "〓"  # GETA MARK: where a character has no glyph in any font


class FontError(Exception):
    pass


@dataclass(frozen=True)
class FontSpec:
    path: Path
    face: int = 0  # face number inside a .ttc collection; 0 for a plain .ttf


@dataclass(frozen=True)
class FontSet:
    """The badge font and its fallbacks, in the order a character looks for a glyph."""

    primary: FontSpec
    fallbacks: tuple[FontSpec, ...] = ()

    @property
    def fonts(self) -> tuple[FontSpec, ...]:
        return (self.primary, *self.fallbacks)


def _apt_hint(path: Path) -> str:
    if path.name == Path(DEFAULT_FONT_FILE).name:
        return f"install it with `sudo apt-get install {FONT_APT_PACKAGE}`"
    if path.name in {Path(name).name for name in DEFAULT_FALLBACK_FILES}:
        return f"install it with `sudo apt-get install {FALLBACK_APT_PACKAGE}`"
    return "set badge_font_file / badge_fallback_font_files in central.toml to TrueType fonts"


def require_font(path: Path, face: int = 0) -> FontSpec:
    """The font as a FontSpec, or FontError saying how to get it."""
    if not path.is_file():
        raise FontError(f"badge font {path} not found: {_apt_hint(path)}")
    if path.suffix.casefold() in (".ttc", ".otc"):
        try:
            faces = len(TTCollection(str(path), lazy=True).fonts)
        except (TTLibError, OSError) as exc:
            raise FontError(f"badge font {path}: not a readable font collection ({exc})") from exc
        if not 0 <= face < faces:
            raise FontError(f"badge font {path} has faces 0-{faces - 1}, not {face}")
    return FontSpec(path, face)


def font_set(
    primary: Path, face: int = 0, fallbacks: Sequence[str] = ()
) -> tuple[FontSet, list[str]]:
    """The fonts to print with, and a note for each fallback that is not there.

    The primary font must exist (FontError); a missing fallback is left out with a note, and the
    names only it could print are then reported as unprintable like any other.
    """
    spec = require_font(primary, face)
    found: list[FontSpec] = []
    notes: list[str] = []
    for name in fallbacks:
        try:
            found.append(require_font(Path(name)))
        except FontError as exc:
            notes.append(str(exc))
    return FontSet(spec, tuple(found)), notes


def from_settings(settings: CentralSettings) -> tuple[FontSet, list[str]]:
    """The badge fonts the settings name (badge_font_file, badge_fallback_font_files)."""
    return font_set(
        Path(settings.badge_font_file),
        settings.badge_font_face,
        settings.badge_fallback_font_files,
    )


@dataclass(frozen=True)
class Metrics:
    """A font's advance widths by code point, in thousandths of the font size."""

    widths: dict[int, float]
    default: float  # for a code point the font lacks (never drawn in it; keeps sums defined)


@cache
def metrics(spec: FontSpec) -> Metrics:
    font = TTFont(str(spec.path), fontNumber=spec.face, lazy=True)
    try:
        scale = 1000.0 / font["head"].unitsPerEm
        hmtx = font["hmtx"].metrics
        widths = {
            code: hmtx[glyph][0] * scale
            for code, glyph in (font.getBestCmap() or {}).items()
            if glyph in hmtx
        }
    finally:
        font.close()
    return Metrics(widths, 1000.0)


def covered(spec: FontSpec) -> frozenset[int]:
    return frozenset(metrics(spec).widths)


def _fonts_of(fonts: FontSpec | FontSet) -> tuple[FontSpec, ...]:
    return fonts.fonts if isinstance(fonts, FontSet) else (fonts,)


def font_index(fonts: FontSpec | FontSet, char: str) -> int | None:
    """Which font of the set draws `char` (0: the primary), None when none has it."""
    code = ord(char)
    for index, spec in enumerate(_fonts_of(fonts)):
        if code in metrics(spec).widths:
            return index
    return None


def missing_characters(fonts: FontSpec | FontSet, texts: Iterable[str]) -> set[str]:
    """Characters of `texts` no font of the set has a glyph for (they cannot be printed).

    A fallback's table is read only for characters the fonts before it lack: HanaMinB's is big,
    and most rosters never need it.
    """
    specs = _fonts_of(fonts)
    lacking = {char for text in texts for char in set(text) if not char.isspace()}
    for spec in specs:
        if not lacking:
            break
        table = metrics(spec).widths
        lacking = {char for char in lacking if ord(char) not in table}
    return lacking
