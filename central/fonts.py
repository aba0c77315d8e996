"""The CJK font embedded in badge sheets: where it comes from and whether it covers a name.

Debian's fonts-wqy-zenhei ships WenQuanYi Zen Hei as a TrueType collection (.ttc); face 0 is the
proportional Zen Hei. scripts/install-system-packages.sh installs it, so every machine that
prints badges embeds the same font.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont, TTLibError

DEFAULT_FONT_FILE = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
FONT_APT_PACKAGE = "fonts-wqy-zenhei"


class FontError(Exception):
    pass


@dataclass(frozen=True)
class FontSpec:
    path: Path
    face: int = 0  # face number inside a .ttc collection; 0 for a plain .ttf


def require_font(path: Path, face: int = 0) -> FontSpec:
    """The font as a FontSpec, or FontError saying how to get it."""
    if not path.is_file():
        hint = (
            f"install it with `sudo apt-get install {FONT_APT_PACKAGE}`"
            if path.name == Path(DEFAULT_FONT_FILE).name
            else "set badge_font_file in central.toml to a TrueType font with Chinese glyphs"
        )
        raise FontError(f"badge font {path} not found: {hint}")
    if path.suffix.casefold() in (".ttc", ".otc"):
        try:
            faces = len(TTCollection(str(path), lazy=True).fonts)
        except (TTLibError, OSError) as exc:
            raise FontError(f"badge font {path}: not a readable font collection ({exc})") from exc
        if not 0 <= face < faces:
            raise FontError(f"badge font {path} has faces 0-{faces - 1}, not {face}")
    return FontSpec(path, face)


@cache
def _code_points(spec: FontSpec) -> frozenset[int]:
    font = TTFont(str(spec.path), fontNumber=spec.face, lazy=True)
    try:
        return frozenset(font.getBestCmap() or {})
    finally:
        font.close()


def missing_characters(spec: FontSpec, texts: Iterable[str]) -> set[str]:
    """Characters of `texts` the font has no glyph for (they would print as blanks)."""
    covered = _code_points(spec)
    return {
        char for text in texts for char in text if not char.isspace() and ord(char) not in covered
    }
