"""Words said outside a page, in the reader's language: export cells (kinds, sources, states,
flags) and alert messages.

Exports and alerts are made outside a request (a background job, a periodic duty, `central
export`), so they translate with the staff pages' catalogue (central/translations) loaded here,
not through Flask-Babel. Message ids are English; `N_` marks them for extraction (`pybabel
extract ... ../web ../words.py ../alerts.py`, see central/web/i18n.py), and the "every message
translated" test covers these modules too. A value no table knows (a flag added later) is
written as it is rather than dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from babel.support import NullTranslations, Translations

Language = Literal["zh-CN", "en"]
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
BABEL_LOCALE = {"zh-CN": "zh_Hans_CN"}


def N_(message: str) -> str:
    """Marks a message id for extraction; translated later, in the sheet's language."""
    return message


KINDS = {
    "arrival": N_("arrival"),
    "departure": N_("departure"),
    "void": N_("void"),
}
# The same message ids as the staff pages' labels (central/web/labels.py): one translation each.
SOURCES = {
    "camera": N_("camera"),
    "wedge": N_("hand scanner"),
    "manual": N_("by hand"),
    "staff": N_("added by staff"),
}
TIME_STATUSES = {
    "trusted": N_("clock trusted"),
    "corrected": N_("corrected"),
    "uncorrected": N_("clock not corrected"),
    "staff": N_("added by staff"),
}
STAY_STATES = {
    "open": N_("not left yet"),
    "closed": N_("complete"),
    "no_departure": N_("no departure"),
    "no_arrival": N_("no arrival"),
}
ATTENDANCE = {
    "present": N_("present"),
    "departed": N_("departed"),
    "no_departure": N_("no departure"),
    "absent": N_("absent"),
    "visitor": N_("not on this site's roster"),
}
FLAGS = {
    # the centre's, on stays (central/stays/pairing.py)
    "overlong": N_("overlong"),
    "overlong_stay": N_("overlong"),
    "uncorrected_time": N_("clock not corrected"),
    "untrusted_clock": N_("clock not corrected"),
    "kiosk_disagrees": N_("kiosk disagrees"),
    "two_sites": N_("two sites"),
    "cross_kiosk": N_("left at another kiosk"),
    "corrected": N_("corrected by staff"),
    "no_arrival": N_("no arrival"),
    "no_departure": N_("no departure"),
    "manual": N_("entered by hand"),
    # the kiosk's, on records (kiosk/rules/outcome.py)
    "not_on_roster": N_("not on this site's roster"),
    "previous_arrival_without_departure": N_("earlier arrival had no departure"),
    "departure_without_arrival": N_("departure without arrival"),
    "time_entered_by_operator": N_("time entered by the lead"),
    "clock_uncertain": N_("kiosk clock uncertain"),
    "kind_chosen_on_screen": N_("arrive/leave chosen on the screen"),
    "no_face": N_("no face in view"),
    "no_photo": N_("no photo kept"),
    "several_badges": N_("one face, several badges"),
}
OTHER = N_("other (%(code)s)")


@cache
def _catalogue(language: Language) -> NullTranslations:
    locale = BABEL_LOCALE.get(language)
    if locale is None:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [locale])


class Words:
    """Translates the cells of one export."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self._gettext = _catalogue(language).gettext

    def __call__(self, message: str) -> str:
        return self._gettext(message)

    def _of(self, table: dict[str, str], value: str | None) -> str:
        if not value:
            return ""
        known = table.get(value)
        if known is None:  # a code added later: said as such, never dropped
            return self._gettext(OTHER) % {"code": value}
        return self._gettext(known)

    def kind(self, value: str | None) -> str:
        return self._of(KINDS, value)

    def source(self, value: str | None) -> str:
        return self._of(SOURCES, value)

    def time_status(self, value: str | None) -> str:
        return self._of(TIME_STATUSES, value)

    def stay_state(self, value: str | None) -> str:
        return self._of(STAY_STATES, value)

    def attendance(self, value: str | None) -> str:
        return self._of(ATTENDANCE, value)

    def flags(self, values: Iterable[str]) -> str:
        separator = "、" if self.language == "zh-CN" else ", "
        return separator.join(self._of(FLAGS, value) for value in values if value)


def utc_offset_label(offset: timedelta | None) -> str:
    """UTC+08:00 for an offset of 8 hours."""
    minutes = int((offset or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def zone_label(zone: ZoneInfo, start: datetime, end: datetime) -> str | None:
    """The zone's one UTC offset over [start, end] ("UTC+08:00"), or None when it changes in
    between (summer time): then every time must carry its own offset."""
    offsets = set()
    moment = start
    while moment <= end:
        offsets.add(moment.astimezone(zone).utcoffset())
        moment += timedelta(hours=6)
    offsets.add(end.astimezone(zone).utcoffset())
    return utc_offset_label(offsets.pop()) if len(offsets) == 1 else None
