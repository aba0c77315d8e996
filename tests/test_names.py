"""Names in pinyin order, and found again by pinyin, initials, characters or id (sync/names.py)."""

from __future__ import annotations

from sync.names import initials, matches, sort_key, spelled, syllables


def ordered(names: list[str]) -> list[str]:
    return sorted(names, key=sort_key)


def test_chinese_names_sort_by_pinyin_not_by_code_point():
    names = ["何", "冯", "刘", "吴"]
    assert sorted(names) == ["何", "冯", "刘", "吴"]  # code point order, as the issue saw it
    assert ordered(names) == ["冯", "何", "刘", "吴"]  # feng, he, liu, wu


def test_order_goes_syllable_by_syllable_then_tone():
    # li-an before lian: the first syllable decides, as in a dictionary.
    assert ordered(["连", "李安"]) == ["李安", "连"]
    # Same letters: tone decides (li2 梨, li3 李).
    assert ordered(["李明", "黎明"]) == ["黎明", "李明"]
    assert ordered(["王芳", "王", "汪芳"]) == ["汪芳", "王", "王芳"]  # wang1 before wang2


def test_a_surname_is_read_as_a_surname():
    assert spelled("曾国藩") == "zengguofan"  # not ceng
    assert spelled("单雄信") == "shanxiongxin"  # not dan
    assert spelled("尉迟恭") == "yuchigong"
    assert ordered(["曾国藩", "岑参", "张伟"]) == ["岑参", "曾国藩", "张伟"]
    # Only the first character: 曾 inside a given name keeps its usual reading.
    assert syllables("李曾") == ("li", "ceng")


def test_latin_names_sort_among_pinyin_and_unknown_characters_last():
    names = ["𠮷祥", "Zhang Wei", "王芳", "alice", "Ｂｏｂ"]
    assert ordered(names) == ["alice", "Ｂｏｂ", "王芳", "Zhang Wei", "𠮷祥"]


def test_initials_cover_every_reading_of_a_polyphonic_character():
    assert initials("宋昕") == ("sx",)
    assert initials("单雄信")[0] == "sxx"
    assert {"dxx", "cxx"} <= set(initials("单雄信"))
    assert initials("Zhang Wei") == ("zw",)


def test_search_by_characters_id_pinyin_and_initials():
    assert matches("宋", "宋昕", "C001")
    assert matches("sx", "宋昕", "C001")
    assert matches("SX", "宋昕", "C001")
    assert matches("ＳＸ", "宋昕", "C001")  # typed on a full-width keyboard
    assert matches("song xin", "宋昕", "C001")
    assert matches("xin", "宋昕", "C001")  # the given name's pinyin alone
    assert matches("c00", "宋昕", "C001")
    assert matches("", "宋昕", "C001")
    assert not matches("lm", "宋昕", "C001")
    assert matches("x", "宋昕", "C001")  # the start of 昕 xin
    assert not matches("ongx", "宋昕", "C001")  # pinyin only from the start of a syllable
    assert not matches("明", "宋昕", "C001")
