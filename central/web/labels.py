"""The words the staff pages show for codes stored in the records: flags, kinds, sources, states.

The store keeps codes (`departure_without_arrival`, `camera`, `closed`); a page never shows one
as it is. Every code the kiosk, the ingest or the pairing writes has a label here, said through
the catalogue (tests/central_web/test_i18n.py lists the codes from their sources and checks each
one). A code nobody knows yet (a newer kiosk's flag) is shown as "other note" with the code in
its title, never as the bare code in a sentence.
"""

from __future__ import annotations

from collections.abc import Callable

from flask_babel import gettext

Say = Callable[[], str]

# Flags: the kiosk's (kiosk/rules/outcome.py) on a record, the centre's (central/stays/pairing.py)
# on a stay, and the status words the site page uses as flags.
FLAGS: dict[str, Say] = {
    "not_on_roster": lambda: gettext("not on this site's roster"),
    "previous_arrival_without_departure": lambda: gettext("earlier arrival had no departure"),
    "departure_without_arrival": lambda: gettext("departure without arrival"),
    "time_entered_by_operator": lambda: gettext("time entered by the lead"),
    "clock_uncertain": lambda: gettext("kiosk clock uncertain"),
    "kind_chosen_on_screen": lambda: gettext("arrive/leave chosen on the screen"),
    "no_face": lambda: gettext("no face in view"),
    "no_photo": lambda: gettext("no photo kept"),
    "several_badges": lambda: gettext("one face, several badges"),
    "overlong": lambda: gettext("overlong"),
    "overlong_stay": lambda: gettext("overlong"),
    "uncorrected_time": lambda: gettext("clock not corrected"),
    "untrusted_clock": lambda: gettext("clock not corrected"),
    "kiosk_disagrees": lambda: gettext("kiosk disagrees"),
    "two_sites": lambda: gettext("two sites"),
    "cross_kiosk": lambda: gettext("left at another kiosk"),
    "corrected": lambda: gettext("corrected by staff"),
    "no_arrival": lambda: gettext("no arrival"),
    "no_departure": lambda: gettext("no departure"),
    "manual": lambda: gettext("entered by hand"),
}

KINDS: dict[str, Say] = {
    "arrival": lambda: gettext("arrival"),
    "departure": lambda: gettext("departure"),
    "void": lambda: gettext("void"),
}

SOURCES: dict[str, Say] = {
    "camera": lambda: gettext("camera"),
    "wedge": lambda: gettext("hand scanner"),
    "manual": lambda: gettext("by hand"),
    "staff": lambda: gettext("added by staff"),
}

STAY_STATES: dict[str, Say] = {
    "open": lambda: gettext("present"),
    "closed": lambda: gettext("complete"),
    "no_departure": lambda: gettext("no departure"),
    "no_arrival": lambda: gettext("no arrival"),
}

STATUSES: dict[str, Say] = {
    "present": lambda: gettext("present"),
    "departed": lambda: gettext("departed"),
    "absent": lambda: gettext("absent"),
    "no_departure": lambda: gettext("no departure"),
    "no_arrival": lambda: gettext("no arrival"),
}

TIME_STATUSES: dict[str, Say] = {
    "trusted": lambda: gettext("clock trusted"),
    "corrected": lambda: gettext("corrected"),
    "uncorrected": lambda: gettext("clock not corrected"),
}

ACTIONS: dict[str, Say] = {
    "void": lambda: gettext("void"),
    "replace": lambda: gettext("change"),
    "add": lambda: gettext("add"),
}

ROLES: dict[str, Say] = {
    "admin": lambda: gettext("administrator"),
    "viewer": lambda: gettext("viewer"),
}

# What the kiosks page marks (central/fleet.py).
FLEET_MARKS: dict[str, Say] = {
    "old_version": lambda: gettext("old version"),
    "disk_low": lambda: gettext("disk filling"),
    "hot": lambda: gettext("hot"),
    "throttled": lambda: gettext("throttled"),
    "throttled_before": lambda: gettext("throttled since boot"),
    "log_lost": lambda: gettext("log lost records"),
    "log_repaired": lambda: gettext("log repaired"),
    "restart_needed": lambda: gettext("settings wait for a restart"),
    "settings_refused": lambda: gettext("settings refused"),
    "rolled_back": lambda: gettext("switched back from an update"),
    "update_refused": lambda: gettext("update refused"),
}

# Where a kiosk stands with the release it is offered (sync.protocol.UpdateReport.state).
UPDATE_STATES: dict[str, Say] = {
    "idle": lambda: gettext("up to date"),
    "waiting": lambda: gettext("waiting for a quiet moment"),
    "installing": lambda: gettext("installing"),
    "trial": lambda: gettext("on trial"),
    "refused": lambda: gettext("refused"),
    "failed": lambda: gettext("could not install"),
}

TABLES: dict[str, dict[str, Say]] = {
    "flag": FLAGS,
    "kind": KINDS,
    "source": SOURCES,
    "stay_state": STAY_STATES,
    "status": STATUSES,
    "time_status": TIME_STATUSES,
    "action": ACTIONS,
    "role": ROLES,
    "fleet_mark": FLEET_MARKS,
    "update_state": UPDATE_STATES,
}


def label(table: str, code: str | None) -> str:
    """The word for `code` in the page's language; an unknown code is "other" (never raw)."""
    if code is None or code == "":
        return ""
    say = TABLES[table].get(code)
    if say is not None:
        return str(say())
    return str(gettext("other (%(code)s)", code=code))


def knows(table: str, code: str) -> bool:
    return code in TABLES[table]
