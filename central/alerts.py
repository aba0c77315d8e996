"""Alerts: a kiosk gone silent, a kiosk whose log lost events at its start (a power cut that
damaged its card), or a site with many absent at a set time; shown at the top of the centre's
pages and sent to a webhook.

A periodic check (`check_and_send`, run by every worker process; see central/jobs/worker.py)
raises an alert by inserting a row whose `key` is unique: a silent kiosk once per silence (the key
holds the time it was last heard), a site once per service day. Any number of processes may run
the check at once: only the one whose insert succeeds owns the alert. Sending is claimed the same
way (a short send lease on the row), retried a few times, and never blocks the check. A kiosk
heard again, or a site whose absent fall below the threshold, resolves its alert.

The webhook gets JSON: either the generic form (kind, subject, site, message, times, detail), or,
with `alert_webhook_format = "robot"`, the text message a WeCom (企业微信) or DingTalk (钉钉) group
robot takes: {"msgtype": "text", "text": {"content": "..."}}. See docs/alerts.md.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, or_, select, update
from sqlalchemy.exc import IntegrityError

from central import kiosks
from central.db.schema import alerts, kiosk_status
from central.db.schema import kiosks as kiosks_table
from central.settings import CentralSettings
from central.stays.pairing import StayRules
from central.stays.queries import all_sites_summary
from central.words import N_, Words

log = logging.getLogger(__name__)
SEND_LEASE = timedelta(seconds=60)
MAX_SENDS = 5
KIOSK_SILENT = "kiosk_silent"
KIOSK_LOST_EVENTS = "kiosk_lost_events"
SITE_ABSENT = "site_absent"
KINDS = (KIOSK_SILENT, KIOSK_LOST_EVENTS, SITE_ABSENT)

MESSAGES = {
    KIOSK_SILENT: N_(
        "Kiosk %(kiosk)s at site %(site)s has not been heard from for %(minutes)d min."
    ),
    KIOSK_LOST_EVENTS: N_(
        "Kiosk %(kiosk)s at site %(site)s could not read back %(lost)d event(s) of its log when "
        "it started at %(started)s; records it sent before are safe at the centre."
    ),
    SITE_ABSENT: N_(
        "Site %(site)s %(name)s: %(absent)d of %(expected)d cadres absent at %(time)s."
    ),
}

# The HTTP seam: (url, JSON body) -> HTTP status. Tests hand in a fake.
Poster = Callable[[str, dict[str, Any]], int]


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class Alert:
    alert_id: int
    kind: str
    subject: str
    site_id: str
    detail: dict[str, Any]
    raised_at: datetime
    resolved_at: datetime | None
    sent_at: datetime | None
    send_error: str | None

    def message(self, words: Words) -> str:
        template = MESSAGES.get(self.kind)
        if template is None:
            return f"{self.kind} {self.subject}"
        values = {key: value for key, value in self.detail.items() if not isinstance(value, dict)}
        return words(template) % values


def alert_of(row: Any) -> Alert:
    m = row._mapping
    return Alert(
        m["alert_id"],
        m["kind"],
        m["subject"],
        m["site_id"] or "",
        json.loads(m["detail"] or "{}"),
        m["raised_at"],
        m["resolved_at"],
        m["sent_at"],
        m["send_error"],
    )


def _raise(
    conn_engine: Engine,
    key: str,
    kind: str,
    subject: str,
    site_id: str,
    detail: dict[str, Any],
    now: datetime,
) -> bool:
    """Insert the alert unless its key is there already; True when this call raised it."""
    try:
        with conn_engine.begin() as conn:
            conn.execute(
                alerts.insert().values(
                    key=key,
                    kind=kind,
                    subject=subject,
                    site_id=site_id,
                    detail=json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
                    raised_at=now,
                    sends=0,
                )
            )
    except IntegrityError:
        return False
    return True


def _resolve(engine: Engine, kind: str, subject: str, keep_key: str | None, now: datetime) -> None:
    condition = [alerts.c.kind == kind, alerts.c.subject == subject, alerts.c.resolved_at.is_(None)]
    if keep_key is not None:
        condition.append(alerts.c.key != keep_key)
    with engine.begin() as conn:
        conn.execute(update(alerts).where(*condition).values(resolved_at=now))


def check_kiosks(engine: Engine, settings: CentralSettings, now: datetime) -> int:
    """Raise an alert for each kiosk silent longer than alert_kiosk_silent_min; resolve the
    alerts of kiosks heard again. Returns alerts raised."""
    moment = _naive(now)
    limit = timedelta(minutes=settings.alert_kiosk_silent_min)
    raised = 0
    with engine.connect() as conn:
        health = kiosks.kiosk_health(conn, moment, int(limit.total_seconds()))
    for kiosk in health:
        active = kiosk["enrolled_at"] is not None and kiosk["revoked_at"] is None
        last = kiosk["last_heartbeat_at"] or kiosk["enrolled_at"]
        if not active or last is None:
            _resolve(engine, KIOSK_SILENT, kiosk["kiosk_id"], None, moment)
            continue
        silent = moment - last
        key = f"{KIOSK_SILENT}:{kiosk['kiosk_id']}:{last.isoformat()}"
        if silent <= limit:
            _resolve(engine, KIOSK_SILENT, kiosk["kiosk_id"], None, moment)
            continue
        _resolve(engine, KIOSK_SILENT, kiosk["kiosk_id"], key, moment)  # an older silence
        detail = {
            "kiosk": kiosk["kiosk_id"],
            "site": kiosk["site_id"],
            "minutes": int(silent.total_seconds() // 60),
            "last_heard": last.isoformat() + "Z",
        }
        raised += _raise(
            engine, key, KIOSK_SILENT, kiosk["kiosk_id"], kiosk["site_id"], detail, moment
        )
    return raised


def check_recoveries(engine: Engine, now: datetime) -> int:
    """Raise an alert for each kiosk whose heartbeat says its log lost events at its last start
    (one alert per start); a later start that lost nothing resolves it. Returns alerts raised."""
    moment = _naive(now)
    raised = 0
    with engine.connect() as conn:
        rows = conn.execute(
            select(kiosk_status.c.kiosk_id, kiosks_table.c.site_id, kiosk_status.c.report)
            .join(kiosks_table, kiosks_table.c.kiosk_id == kiosk_status.c.kiosk_id)
            .where(kiosks_table.c.revoked_at.is_(None))
        ).all()
    for kiosk_id, site_id, report in rows:
        try:
            recovery = (json.loads(report or "{}").get("fleet") or {}).get("recovery") or {}
        except (ValueError, AttributeError):
            continue  # an unreadable stored report: the heartbeat check is not the place to fail
        started = str(recovery.get("opened_at") or "")
        if not started:
            continue  # a kiosk older than recovery reports
        # A kiosk that says it lost records without counting them lost at least one.
        lost = max(int(recovery.get("lost_events") or 0), 1) if recovery.get("lost") else 0
        key = f"{KIOSK_LOST_EVENTS}:{kiosk_id}:{started}"[:200]
        if lost <= 0:
            _resolve(engine, KIOSK_LOST_EVENTS, kiosk_id, None, moment)
            continue
        _resolve(engine, KIOSK_LOST_EVENTS, kiosk_id, key, moment)  # an earlier start's loss
        detail = {
            "kiosk": kiosk_id,
            "site": site_id,
            "lost": lost,
            "started": started[:16].replace("T", " ") + " UTC",
            "summary": str(recovery.get("summary") or "")[:500],
        }
        raised += _raise(engine, key, KIOSK_LOST_EVENTS, kiosk_id, site_id, detail, moment)
    return raised


def absent_check_time(settings: CentralSettings, day: date) -> datetime | None:
    """When the day's absent check falls, as naive UTC; None when it is switched off."""
    if not settings.alert_absent_at:
        return None
    hours, minutes = (int(part) for part in settings.alert_absent_at.split(":"))
    local = datetime.combine(day, time(hours, minutes), ZoneInfo(settings.timezone))
    return _naive(local)


def check_sites(engine: Engine, settings: CentralSettings, now: datetime, rules: StayRules) -> int:
    """After the set time of the day, raise an alert for each site whose absent reach both
    thresholds; resolve those that fell below. Returns alerts raised."""
    moment = _naive(now)
    day = rules.day.service_day(moment)
    check_at = absent_check_time(settings, day)
    if check_at is None or moment < check_at:
        return 0
    start, end = rules.day.bounds(day)
    if not start <= check_at < end:
        return 0
    raised = 0
    with engine.connect() as conn:
        summary = all_sites_summary(conn, day, moment, rules)
    for site in summary:
        many = (
            site.expected > 0
            and site.absent >= settings.alert_absent_min_count
            and site.absent / site.expected >= settings.alert_absent_min_share
        )
        key = f"{SITE_ABSENT}:{site.site_id}:{day.isoformat()}"
        if not many:
            _resolve(engine, SITE_ABSENT, site.site_id, None, moment)
            continue
        detail = {
            "site": site.site_id,
            "name": site.site_name,
            "absent": site.absent,
            "expected": site.expected,
            "time": settings.alert_absent_at,
            "day": day.isoformat(),
        }
        raised += _raise(engine, key, SITE_ABSENT, site.site_id, site.site_id, detail, moment)
    return raised


def open_alerts(
    conn: Connection, now: datetime, within: timedelta = timedelta(days=1)
) -> list[Alert]:
    """Unresolved alerts raised within `within`, newest first (the pages' banner)."""
    since = _naive(now) - within
    rows = conn.execute(
        select(alerts)
        .where(alerts.c.resolved_at.is_(None), alerts.c.raised_at >= since)
        .order_by(alerts.c.raised_at.desc(), alerts.c.alert_id.desc())
        .limit(50)
    )
    return [alert_of(row) for row in rows]


def payload(alert: Alert, settings: CentralSettings, words: Words) -> dict[str, Any]:
    text = alert.message(words)
    if settings.alert_webhook_format == "robot":
        return {"msgtype": "text", "text": {"content": text}}
    return {
        "kind": alert.kind,
        "subject": alert.subject,
        "site": alert.site_id,
        "message": text,
        "raised_at": alert.raised_at.isoformat() + "Z",
        "detail": alert.detail,
        "centre": settings.public_url,
    }


def send_pending(engine: Engine, settings: CentralSettings, now: datetime, post: Poster) -> int:
    """Send every unsent alert this process can claim; returns how many were delivered."""
    if not settings.alert_webhook_url:
        return 0
    moment = _naive(now)
    words = Words(settings.language)
    with engine.connect() as conn:
        candidates = [
            row.alert_id
            for row in conn.execute(
                select(alerts.c.alert_id).where(
                    alerts.c.sent_at.is_(None),
                    alerts.c.sends < MAX_SENDS,
                    or_(alerts.c.sending_until.is_(None), alerts.c.sending_until < moment),
                    alerts.c.raised_at >= moment - timedelta(days=1),
                )
            )
        ]
    delivered = 0
    for alert_id in candidates:
        token = secrets.token_hex(8)
        with engine.begin() as conn:
            claimed = conn.execute(
                update(alerts)
                .where(
                    alerts.c.alert_id == alert_id,
                    alerts.c.sent_at.is_(None),
                    or_(alerts.c.sending_until.is_(None), alerts.c.sending_until < moment),
                )
                .values(sending_until=moment + SEND_LEASE, sends=alerts.c.sends + 1, sender=token)
            ).rowcount
            row = conn.execute(select(alerts).where(alerts.c.alert_id == alert_id)).first()
        if claimed != 1 or row is None:
            continue
        alert = alert_of(row)
        error = None
        try:
            status = post(settings.alert_webhook_url, payload(alert, settings, words))
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except Exception as exc:  # any failure of the network or the far end: retried later
            error = f"{type(exc).__name__}: {exc}"[:500]
        with engine.begin() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.alert_id == alert_id, alerts.c.sender == token)
                .values(
                    sent_at=None if error else moment,
                    send_error=error,
                    sending_until=None,
                )
            )
        if error:
            log.warning("alert %s: webhook failed: %s", alert_id, error)
        else:
            delivered += 1
    return delivered


def http_post(timeout_s: float = 10.0) -> Poster:
    """The real poster: JSON over HTTP(S) with requests."""
    import requests

    def post(url: str, body: dict[str, Any]) -> int:
        response = requests.post(url, json=body, timeout=timeout_s)
        # Robots answer 200 with {"errcode": n}; non-zero means refused (bad key, rate limit).
        if response.ok and "application/json" in response.headers.get("Content-Type", ""):
            try:
                answer = response.json()
            except ValueError:
                return response.status_code
            if isinstance(answer, dict) and answer.get("errcode", 0) not in (0, None):
                return 502
        return response.status_code

    return post


def check_and_send(
    engine: Engine,
    settings: CentralSettings,
    now: datetime,
    post: Poster | None = None,
) -> tuple[int, int]:
    """One round of the alert duty: (alerts raised, alerts delivered)."""
    rules = StayRules.from_settings(settings)
    raised = (
        check_kiosks(engine, settings, now)
        + check_recoveries(engine, now)
        + check_sites(engine, settings, now, rules)
    )
    sent = send_pending(engine, settings, now, post or http_post())
    return raised, sent
