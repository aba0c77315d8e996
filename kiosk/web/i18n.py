"""Languages of the pages: Chinese (zh-CN) first, English second, through Flask-Babel.

The kiosk screen speaks the kiosk's `language` setting whatever the Pi's browser asks for: it is
the site's voice, and Chromium on a Pi usually asks for en-GB. The site lead's page follows the
lead's own choice (a link on the page, kept in a cookie), then the phone's Accept-Language, then
the setting. Catalogues live in kiosk/translations (see babel.cfg there for the commands).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, force_locale

# Babel names zh-CN "zh_Hans_CN": the catalogue folder carries that name so gettext finds it.
CHINESE = "zh_Hans_CN"
ENGLISH = "en"
SUPPORTED = (CHINESE, ENGLISH)
SETTING_TO_LOCALE = {"zh-CN": CHINESE, "en": ENGLISH}
LOCALE_TO_HTML = {CHINESE: "zh-CN", ENGLISH: "en"}
LANG_COOKIE = "lang"
# What a browser may ask for, mapped to what we have; werkzeug matches "zh-CN" and "zh" to these.
_ACCEPT_CHOICES = {"zh_CN": CHINESE, "zh": CHINESE, "en": ENGLISH}


def setting_locale(app: Flask | None = None) -> str:
    app = app or current_app
    language: str = app.extensions["kiosk"].settings.language
    return SETTING_TO_LOCALE[language]


def select_locale() -> str:
    if not has_request_context():
        return setting_locale()
    forced: str | None = g.get("page_locale")
    if forced:
        return forced
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in SUPPORTED:
        return chosen
    best = request.accept_languages.best_match(list(_ACCEPT_CHOICES))
    if best:
        return _ACCEPT_CHOICES[best]
    return setting_locale()


def html_lang(locale: str) -> str:
    return LOCALE_TO_HTML.get(locale, "zh-CN")


def init_babel(app: Flask) -> Babel:
    return Babel(
        app,
        locale_selector=select_locale,
        default_locale=CHINESE,
        default_timezone="UTC",
        default_translation_directories="translations",
    )


@contextmanager
def in_locale(app: Flask, locale: str) -> Iterator[None]:
    """Word messages in `locale` outside a request (the scan loop's thread, the status ticker)."""
    with app.app_context(), force_locale(locale):
        yield
