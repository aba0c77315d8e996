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
