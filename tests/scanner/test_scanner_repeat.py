from __future__ import annotations

import pytest

from scanner.repeat import RepeatFilter

S = 1_000_000_000  # nanoseconds per second


def test_reported_once_while_in_view_however_long():
    repeats = RepeatFilter(window_s=3)
    reported = [repeats.admit(["A"], t * S // 10) for t in range(0, 600)]  # 60 s at 10 fps
    assert reported[0] == ["A"]
    assert all(r == [] for r in reported[1:])


def test_reported_again_only_after_out_of_view_for_the_window():
    repeats = RepeatFilter(window_s=3)
    assert repeats.admit(["A"], 0) == ["A"]
    assert repeats.admit([], 1 * S) == []
    assert repeats.admit(["A"], 3 * S) == []  # gone for exactly the window: still the same one
    assert repeats.admit(["A"], 6 * S + 1) == ["A"]  # gone for longer than the window


def test_a_different_badge_is_reported_at_once():
    repeats = RepeatFilter(window_s=3)
    assert repeats.admit(["A"], 0) == ["A"]
    assert repeats.admit(["B"], S // 10) == ["B"]
    assert repeats.admit(["A", "B"], S // 5) == []
    assert repeats.admit(["C", "C"], S // 4) == ["C"]


def test_many_badges_are_forgotten_after_the_window_without_losing_track_of_recent_ones():
    repeats = RepeatFilter(window_s=1)
    for i in range(200):
        assert repeats.admit([f"P{i}"], i * S // 100) == [f"P{i}"]
    assert repeats.admit(["P199"], 2 * S) == []
    assert repeats.admit(["P0"], 2 * S) == ["P0"]


def test_negative_window_is_refused():
    with pytest.raises(ValueError):
        RepeatFilter(-1)
