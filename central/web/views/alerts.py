"""Alerts on the staff pages: the open ones at the top of every page, and the list of the last
days with whether each reached the webhook (central/alerts.py raises and sends them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import render_template
from sqlalchemy import select

from central import alerts
from central.db import schema
from central.web import i18n
from central.web.auth import current_user
from central.web.blueprint import staff
from central.web.context import state
from central.words import Words

BANNER_MAX = 5


def _words() -> Words:
    from flask_babel import get_locale

    return Words("en" if i18n.short_name(get_locale()) == "en" else "zh-CN")


def _shown(alert: alerts.Alert, words: Words) -> dict[str, Any]:
    return {
        "kind": alert.kind,
        "subject": alert.subject,
        "site_id": alert.site_id,
        "message": alert.message(words),
        "raised_at": alert.raised_at,
        "resolved_at": alert.resolved_at,
        "sent_at": alert.sent_at,
        "send_error": alert.send_error,
    }


@staff.context_processor
def _open_alerts() -> dict[str, object]:
    """The open alerts for the banner (one indexed query; none before login)."""
    if current_user() is None:
        return {"open_alerts": [], "more_alerts": 0}
    with state().engine.connect() as conn:
        found = alerts.open_alerts(conn, state().now())
    words = _words()
    return {
        "open_alerts": [_shown(alert, words) for alert in found[:BANNER_MAX]],
        "more_alerts": max(0, len(found) - BANNER_MAX),
    }


@staff.route("/alerts")
def alerts_list() -> str:
    since = state().now().replace(tzinfo=None) - timedelta(days=7)
    with state().engine.connect() as conn:
        rows = conn.execute(
            select(schema.alerts)
            .where(schema.alerts.c.raised_at >= since)
            .order_by(schema.alerts.c.raised_at.desc(), schema.alerts.c.alert_id.desc())
            .limit(500)
        )
        found = [alerts.alert_of(row) for row in rows]
    words = _words()
    return render_template(
        "alerts.html",
        section="alerts",
        rows=[_shown(alert, words) for alert in found],
        webhook=bool(state().settings.alert_webhook_url),
    )
