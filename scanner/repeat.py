"""Repeat suppression: a badge held in front of the camera is reported once, not 15 times a second.

A payload is reported when it is seen after not having been seen for `window_s` (or never). Each
sighting renews it, so a badge held still for a minute is reported once, and again only after it
has been out of view for the whole window. Different payloads are independent: the next person's
badge is reported at once. This is not the kiosk's "already checked in" rule (minutes long, in
kiosk/rules); it only stops one presentation of a badge from becoming many.
"""

from __future__ import annotations

from collections.abc import Iterable


class RepeatFilter:
    def __init__(self, window_s: float) -> None:
        if window_s < 0:
            raise ValueError("window_s must not be negative")
        self.window_ns = int(window_s * 1e9)
        self._last_seen: dict[str, int] = {}

    def admit(self, payloads: Iterable[str], now_ns: int) -> list[str]:
        """The payloads of one frame that are to be reported; every one counts as seen."""
        self._forget_before(now_ns - self.window_ns)
        report = []
        for payload in dict.fromkeys(payloads):
            last = self._last_seen.get(payload)
            if last is None or now_ns - last > self.window_ns:
                report.append(payload)
            self._last_seen[payload] = now_ns
        return report

    def _forget_before(self, cutoff_ns: int) -> None:
        if len(self._last_seen) > 64:
            self._last_seen = {p: t for p, t in self._last_seen.items() if t >= cutoff_ns}
