"""Language of the staff pages: Chinese (zh_CN) first, English second.

Choice, strongest first: the language picked on a page (kept in the session), the browser's
Accept-Language, then the `language` setting. Message ids are English; the Simplified Chinese
catalogue in central/translations translates every one (a test checks). Babel names zh-CN
"zh_Hans_CN", and that is the folder it looks in. After changing a template or a message,
update and compile the catalogue:

    cd central/translations
    ../../.venv/bin/pybabel extract -F babel.cfg -o messages.pot --no-location ../web \
        ../words.py ../alerts.py
    ../../.venv/bin/pybabel update -i messages.pot -d . -l zh_Hans_CN --no-location
    (translate the new entries in zh_Hans_CN/LC_MESSAGES/messages.po)
    ../../.venv/bin/pybabel compile -d . -l zh_Hans_CN
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, request, session
from flask_babel import Babel, get_babel

TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
# Babel locale name -> the language tag pages declare (<html lang>).
LOCALES: dict[str, str] = {"zh_CN": "zh-CN", "en": "en"}
SESSION_KEY = "lang"
SETTING_TO_LOCALE = {"zh-CN": "zh_CN", "en": "en"}


def normalise(value: str | None) -> str | None:
    """A Babel locale we serve for a user-supplied language name, else None."""
    if not value:
        return None
    text = value.replace("-", "_").strip()
    if text in LOCALES:
        return text
    if text.lower().startswith("zh"):
        return "zh_CN"
    if text.lower().startswith("en"):
        return "en"
    return None


def select_locale() -> str:
    chosen = normalise(session.get(SESSION_KEY))
    if chosen:
        return chosen
    browser = request.accept_languages.best_match(["zh-CN", "zh", "en"]) if request else None
    from_browser = normalise(browser)
    if from_browser:
        return from_browser
    return str(current_app.config.get("STAFF_DEFAULT_LOCALE", "zh_CN"))


def short_name(locale: object) -> str:
    """ "en" or "zh_CN" for a Babel locale (zh-CN parses as zh_Hans_CN)."""
    return "en" if str(locale).startswith("en") else "zh_CN"


def html_lang(locale: object) -> str:
    return LOCALES[short_name(locale)]


def init_babel(app: Flask, default_language: str) -> None:
    """Set up Flask-Babel for the staff pages, or adopt an instance already set up on `app`."""
    app.config["STAFF_DEFAULT_LOCALE"] = SETTING_TO_LOCALE.get(default_language, "zh_CN")
    if "babel" in app.extensions:
        config = get_babel(app)
        config.locale_selector = select_locale
        if str(TRANSLATIONS_DIR) not in config.translation_directories:
            config.translation_directories.append(str(TRANSLATIONS_DIR))
        return
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    Babel(app, locale_selector=select_locale, default_locale="zh_CN")
