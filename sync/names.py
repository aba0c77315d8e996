"""People's names in order and found again: pinyin sort keys, initials, and search.

Shared by the kiosk (the lead's lists and roster search) and the centre (its lists), which may not
import each other. Chinese names sort the way a Chinese reader expects, by pinyin, syllable by
syllable (何 he, 冯 feng, 刘 liu, 吴 wu: 冯 何 刘 吴), not by code point (何 冯 刘 吴). Names in
Latin letters sort among them by their letters ("Zhang Wei" next to 张伟).

Pinyin comes from pypinyin's character dictionary, looked up one character at a time (cached): a
name is no phrase, and the phrase segmentation pypinyin does for sentences costs ~0.3 ms a name,
12 s for 40,000. A handful of characters read differently as a surname (曾 zeng, not ceng; 单
shan, 解 xie, 仇 qiu...): the first character of a name is read as a surname. Characters
pypinyin does not know (rare ones of CJK Extension B and later) sort after every letter, by code
point.

Search: `matches("sx", "宋昕", "C001")` is true: a query matches a name's characters, the id (any
case), the name's pinyin from the start of any syllable ("songxin", "song", "xin") or its initials
from the first ("sx"). Every reading of a polyphonic character is tried for initials (单 s, d, c).
"""

from __future__ import annotations

import itertools
import os
import re
import unicodedata
from functools import lru_cache

# pypinyin's documented switches: without its phrase dictionary (names are no phrases) and without
# a private copy of the character dictionary, importing it costs 12 MB and 0.2 s instead of 56 MB
# and 0.5 s, which matters on a Raspberry Pi. A caller who set them otherwise keeps its choice.
os.environ.setdefault("PYPINYIN_NO_PHRASES", "1")
os.environ.setdefault("PYPINYIN_NO_DICT_COPY", "1")

from pypinyin.pinyin_dict import pinyin_dict

# Surnames whose reading differs from the character's most common one (first reading first).
SURNAME_READINGS: dict[str, tuple[str, int]] = {
    "曾": ("zeng", 1),
    "单": ("shan", 4),
    "解": ("xie", 4),
    "仇": ("qiu", 2),
    "查": ("zha", 1),
    "区": ("ou", 1),
    "朴": ("piao", 2),
    "翟": ("zhai", 2),
    "盖": ("ge", 3),
    "乐": ("yue", 4),
    "覃": ("qin", 2),
    "缪": ("miao", 4),
    "种": ("chong", 2),
    "秘": ("bi", 4),
    "员": ("yun", 4),
    "繁": ("po", 2),
    "折": ("she", 2),
    "阚": ("kan", 4),
    "纪": ("ji", 3),
    "任": ("ren", 2),
    "华": ("hua", 4),
    "那": ("na", 1),
    "尉": ("yu", 4),
    "万": ("wan", 4),
    "长": ("chang", 2),
}
# Compound surnames whose first character alone would be read otherwise.
COMPOUND_SURNAMES: dict[str, tuple[tuple[str, int], ...]] = {
    "尉迟": (("yu", 4), ("chi", 2)),
    "万俟": (("mo", 4), ("qi", 2)),
    "长孙": (("zhang", 3), ("sun", 1)),
    "单于": (("chan", 2), ("yu", 2)),
}
UNKNOWN_TONE = 9
MAX_INITIAL_VARIANTS = 32
# pypinyin's dictionary writes tones as marks (lǚ): decomposed (NFD), each mark is a combining
# character after its vowel. The diaeresis makes u into ü, written v as on a keyboard.
_TONE_MARKS = {"\u0304": 1, "\u0301": 2, "\u030c": 3, "\u0300": 4}
_DIAERESIS = "\u0308"
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

Syllable = tuple[str, int]  # letters (no tone mark, ü as v) and tone 1-5 (5: neutral)


def _is_han(char: str) -> bool:
    return unicodedata.name(char, "").startswith("CJK") and unicodedata.category(char) == "Lo"


def _syllable(marked: str) -> Syllable:
    letters: list[str] = []
    tone = 5
    for char in unicodedata.normalize("NFD", marked):
        if char in _TONE_MARKS:
            tone = _TONE_MARKS[char]
        elif char == _DIAERESIS and letters and letters[-1] == "u":
            letters[-1] = "v"
        elif char.isascii() and char.isalpha():
            letters.append(char)
    return "".join(letters), tone


@lru_cache(maxsize=65536)
def readings(char: str) -> tuple[Syllable, ...]:
    """Every reading pypinyin knows of one Han character, its most common first; () if none."""
    listed = pinyin_dict.get(ord(char)) if len(char) == 1 else None
    out: list[Syllable] = []
    for marked in listed.split(",") if listed else ():
        syllable = _syllable(marked.strip().lower())
        if syllable[0] and syllable not in out:
            out.append(syllable)
    return tuple(out)


def _pieces(name: str) -> list[tuple[str, tuple[Syllable, ...]]]:
    """The name cut into Han characters (with their readings, the surname's first) and words of
    other letters or digits (with themselves, lower case, as their one "reading")."""
    text = unicodedata.normalize("NFKC", name).strip()
    pieces: list[tuple[str, tuple[Syllable, ...]]] = []
    position = 0
    compound = next((c for c in COMPOUND_SURNAMES if text.startswith(c)), None)
    if compound is not None:
        for char, reading in zip(compound, COMPOUND_SURNAMES[compound], strict=True):
            pieces.append((char, (reading, *[r for r in readings(char) if r != reading])))
        position = len(compound)
    while position < len(text):
        char = text[position]
        if _is_han(char):
            known = readings(char)
            if position == 0 and char in SURNAME_READINGS:
                first = SURNAME_READINGS[char]
                known = (first, *[r for r in known if r != first])
            pieces.append((char, known))
            position += 1
            continue
        word = _WORD.match(text, position)
        if word is None:
            position += 1  # a space, a dot, a hyphen: not part of the order
            continue
        pieces.append((word.group(), ((word.group().casefold(), 0),)))
        position = word.end()
    return pieces


@lru_cache(maxsize=65536)
def sort_key(name: str) -> tuple[tuple[int, str, int], ...]:
    """The order of names: by pinyin syllable by syllable, then tone; Latin words by letters.

    Use as `sorted(people, key=lambda p: (sort_key(p.name), p.cadre_id))`: equal keys (the same
    reading) are told apart by the caller's second part."""
    key: list[tuple[int, str, int]] = []
    for text, known in _pieces(name):
        if known:
            letters, tone = known[0]
            key.append((0, letters, tone))
        else:
            # Unknown to pypinyin: after every letter, among themselves by code point.
            key.append((1, text, UNKNOWN_TONE))
    return tuple(key)


@lru_cache(maxsize=65536)
def syllables(name: str) -> tuple[str, ...]:
    """The name's likeliest pinyin, syllable by syllable, without tones: "宋昕" -> ("song",
    "xin"); a word of other letters stays one piece, in lower case."""
    return tuple(known[0][0] if known else text for text, known in _pieces(name))


def spelled(name: str) -> str:
    """The name's likeliest pinyin as one word: "宋昕" -> "songxin"."""
    return "".join(syllables(name))


@lru_cache(maxsize=65536)
def initials(name: str) -> tuple[str, ...]:
    """Every initials string the name may be typed as, the likeliest first: "单雄信" ->
    ("sxx", "dxx", "cxx"). Latin words give their first letters ("Zhang Wei" -> ("zw",))."""
    choices: list[list[str]] = []
    for text, known in _pieces(name):
        if not known:
            choices.append([text])
            continue
        firsts: list[str] = []
        for letters, _tone in known:
            if letters[0] not in firsts:
                firsts.append(letters[0])
        choices.append(firsts)
    variants = itertools.islice(itertools.product(*choices), MAX_INITIAL_VARIANTS)
    return tuple("".join(parts) for parts in variants)


def fold_query(query: str) -> str:
    """A typed query as compared: NFKC (full-width letters made plain), no spaces, lower case."""
    return "".join(unicodedata.normalize("NFKC", query).split()).casefold()


@lru_cache(maxsize=65536)
def _search_forms(name: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """What a query is compared with, once per name: the folded name, its pinyin from each
    syllable on ("songxin", "xin"), and its initials."""
    parts = syllables(name)
    tails = tuple("".join(parts[i:]) for i in range(len(parts)))
    return fold_query(name), tails, initials(name)


def matches(query: str, name: str, *others: str) -> bool:
    """Whether a typed query finds this person: in the name, in any of `others` (the id, the
    unit), or the start of the name's pinyin (from any syllable) or initials. An empty query
    finds everyone."""
    return matches_folded(fold_query(query), name, *others)


def matches_folded(wanted: str, name: str, *others: str) -> bool:
    """`matches` for a query already folded by `fold_query` (once for a whole list)."""
    if not wanted:
        return True
    folded, tails, firsts = _search_forms(name)
    if wanted in folded or any(wanted in fold_query(other) for other in others):
        return True
    if not wanted.isascii():
        return False
    return any(t.startswith(wanted) for t in tails) or any(f.startswith(wanted) for f in firsts)
