"""The kiosk screen's words for what the services publish, from threads with no request.

The scan loop's thread words each scan, the status ticker the top bar; both speak the kiosk's
`language` setting. The app factory makes one `ScreenWording` and hands it to the services, which
sit below the pages and so cannot import them (see kiosk/services.py).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_babel import gettext as _

from kiosk.rules import ScanOutcome
from kiosk.services import ForcedKind, KioskServices
from kiosk.web import i18n
from kiosk.web.present import scan_message
from kiosk.web.status import screen_status


class ScreenWording:
    """`kiosk.services.ScreenWords` in the language the kiosk's settings name."""

    def __init__(self, app: Flask, language: str) -> None:
        self._app = app
        self._locale = i18n.SETTING_TO_LOCALE[language]

    @property
    def locale(self) -> str:
        return self._locale

    def scan(self, outcome: ScanOutcome, previous_kind: str | None) -> dict[str, Any]:
        with i18n.in_locale(self._app, self._locale):
            return scan_message(outcome, previous_kind)

    def mode_text(self, kind: ForcedKind) -> str:
        with i18n.in_locale(self._app, self._locale):
            return str(
                _("Next badge: arrival") if kind == "arrival" else _("Next badge: departure")
            )

    def face_prompt(self) -> str:
        with i18n.in_locale(self._app, self._locale):
            return str(_("Please face the camera"))

    def status(self, services: KioskServices) -> dict[str, Any]:
        with i18n.in_locale(self._app, self._locale):
            return screen_status(services)

    def in_language(self, language: str) -> ScreenWording:
        return ScreenWording(self._app, language)

    def setup(self, code: str, **values: str) -> dict[str, Any]:
        with i18n.in_locale(self._app, self._locale):
            return setup_message(code, **values)


def setup_message(code: str, **values: str) -> dict[str, Any]:
    """The set-up screen's answer to what the camera read (kiosk/setup.py), shaped as a scan
    result: `outcome` colours it (repeat: working on it, arrival: done, refused: not taken)."""
    if code == "enrolling":
        outcome, headline = "repeat", _("Enrolling this kiosk…")
        detail = _("Keep the code in view for a moment.")
    elif code == "enrolled":
        outcome, headline = "arrival", _("Kiosk enrolled")
        detail = _(
            "Kiosk %(kiosk)s at %(site)s",
            kiosk=values.get("kiosk", ""),
            site=values.get("site", ""),
        )
    else:
        outcome, headline = "refused", _("Not enrolled")
        details = {
            "not_a_code": _("This is not a kiosk enrolment code. Show the code from the centre."),
            "damaged": _("This enrolment code cannot be read whole: show it again, flat."),
            "used": _("This code was used already or has expired: ask the centre for a new one."),
            "unknown": _("The centre does not know this code: ask the centre for a new one."),
            "refused": _("The centre refused this code: ask the centre for a new one."),
            "old_code": _("This enrolment code is of an older kind: ask the centre for a new one."),
            "untrusted": _(
                "The centre did not prove it is the one this code names: the code was not sent. "
                "See the site lead."
            ),
            "unreachable": _(
                "Cannot reach the centre: check the network, then show the code again."
            ),
            "failed": _("This kiosk could not save its enrolment: see the site lead."),
        }
        detail = details.get(code, details["failed"])
    return {
        "outcome": outcome,
        "reason": code,
        "headline": str(headline),
        "name": "",
        "detail": str(detail),
        "extra": "",
    }
