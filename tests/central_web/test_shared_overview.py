"""The all-sites figures worked out once per process for everyone watching
(central/web/shared_overview.py): one working out for many viewers, kept fresh in the
background while watched, and a new arrival on the page within about `overview_refresh_s`."""

from __future__ import annotations

import threading
import time
from datetime import date

from central.web.shared_overview import SharedFigures
from tests.central_web.helpers import log_in
from tests.central_web.seed import local, push, seed

DAY = date(2026, 11, 29)


class Counting:
    """A work_out that counts, says which thread did it, and may be slow."""

    def __init__(self, slow_s: float = 0.0) -> None:
        self.slow_s = slow_s
        self.threads: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, day: date) -> int:
        time.sleep(self.slow_s)
        with self.lock:
            self.threads.append(threading.current_thread().name)
            return len(self.threads)


def test_many_viewers_at_once_share_one_working_out():
    work_out = Counting(slow_s=0.3)
    shared = SharedFigures(work_out, every_s=5.0)
    answers: list[int] = []
    viewers = [threading.Thread(target=lambda: answers.append(shared.get(DAY))) for _ in range(20)]
    try:
        for viewer in viewers:
            viewer.start()
        for viewer in viewers:
            viewer.join(10)
        assert answers == [1] * 20
        assert len(work_out.threads) == 1
        # Asked again at once: the same figures, nothing worked out.
        assert shared.get(DAY) == 1 and len(work_out.threads) == 1
    finally:
        shared.stop()


def test_watched_figures_are_kept_fresh_in_the_background_then_left():
    work_out = Counting()
    shared = SharedFigures(work_out, every_s=0.05, watched_for_s=0.5)
    try:
        assert shared.get(DAY) == 1
        deadline = time.monotonic() + 5
        while shared.get(DAY) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert shared.get(DAY) >= 4
        # The request thread worked out the first only; the rest came from the background.
        assert work_out.threads[0] == threading.current_thread().name
        assert set(work_out.threads[1:]) == {"shared-overview"}
        # Nobody asks: it stops working them out.
        time.sleep(1.0)
        settled = len(work_out.threads)
        time.sleep(0.3)
        assert len(work_out.threads) == settled
    finally:
        shared.stop()


def test_zero_works_out_for_every_request():
    work_out = Counting()
    shared = SharedFigures(work_out, every_s=0)
    assert [shared.get(DAY) for _ in range(3)] == [1, 2, 3]


def test_the_page_shows_a_new_arrival_within_the_refresh(make_app):
    app = make_app(public_url="http://centre.test/", overview_refresh_s=0.2)
    viewer = app.test_client()
    log_in(viewer, "viewer")
    seeded = seed(app)
    first = viewer.get("/staff/live/overview.json?day=2026-11-29").get_json()
    assert first["sites"]["S01"]["arrived"] == 3
    east = seeded.kiosks["S01"]
    central = app.extensions["central"]
    push(central.engine, east, [east.event("C003", "arrival", local(11, 50))], central.now(), app)
    pushed = time.monotonic()
    seen = first
    while seen.get("sites", {}).get("S01", {}).get("arrived") != 4:
        assert time.monotonic() - pushed < 5, seen
        time.sleep(0.05)
        seen = viewer.get(f"/staff/live/overview.json?day=2026-11-29&since={first['stamp']}")
        seen = seen.get_json()
    assert seen["stamp"] != first["stamp"]
    # Once the figures caught up, a poll with their stamp is "unchanged".
    again = viewer.get(f"/staff/live/overview.json?day=2026-11-29&since={seen['stamp']}")
    assert again.get_json() == {"unchanged": True, "stamp": seen["stamp"]}
    app.extensions["staff"].overview.stop()
