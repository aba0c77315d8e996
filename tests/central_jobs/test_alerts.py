"""Alerts on SQLite and PostgreSQL: a silent kiosk, a site with many absent at the set time,
raised once however many processes check, sent to a webhook (generic JSON or a WeCom/DingTalk
robot's text message), retried when the far end fails."""

from __future__ import annotations

import json
import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, func, insert, select, update

from central import alerts, roster
from central.db import schema
from central.db.engine import make_engine
from central.roster_file import RosterRow
from central.settings import CentralSettings
from central.stays.pairing import StayRules
from central.words import Words

# 07:00 in Shanghai on 2026-11-29.
T0 = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)


def _settings(**values: Any) -> CentralSettings:
    return CentralSettings(**values)


def _kiosk(engine: Engine, kiosk_id: str, site_id: str, heard: datetime | None) -> None:
    naive = T0.replace(tzinfo=None) - timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(
            insert(schema.kiosks).values(
                kiosk_id=kiosk_id, site_id=site_id, name="", created_at=naive, enrolled_at=naive
            )
        )
    if heard is not None:
        _hear(engine, kiosk_id, heard)


def _hear(engine: Engine, kiosk_id: str, when: datetime) -> None:
    naive = when.astimezone(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        done = conn.execute(
            update(schema.kiosk_status)
            .where(schema.kiosk_status.c.kiosk_id == kiosk_id)
            .values(received_at=naive)
        ).rowcount
        if not done:
            conn.execute(insert(schema.kiosk_status).values(kiosk_id=kiosk_id, received_at=naive))


def _alerts(engine: Engine) -> list[alerts.Alert]:
    with engine.connect() as conn:
        return [
            alerts.alert_of(row)
            for row in conn.execute(select(schema.alerts).order_by(schema.alerts.c.alert_id))
        ]


class Hook:
    """A fake webhook: records what it was sent, answers with a status (or raises)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, url: str, body: dict[str, Any]) -> int:
        self.sent.append((url, body))
        if self.status < 0:
            raise ConnectionError("network down")
        return self.status


def test_a_silent_kiosk_raises_one_alert_per_silence(central_engine):
    _kiosk(central_engine, "S01-1", "S01", heard=T0)
    settings = _settings(alert_kiosk_silent_min=15)
    assert alerts.check_kiosks(central_engine, settings, T0 + timedelta(minutes=14)) == 0
    assert alerts.check_kiosks(central_engine, settings, T0 + timedelta(minutes=16)) == 1
    assert alerts.check_kiosks(central_engine, settings, T0 + timedelta(minutes=30)) == 0
    [alert] = _alerts(central_engine)
    assert (alert.kind, alert.subject, alert.detail["minutes"]) == ("kiosk_silent", "S01-1", 16)
    with central_engine.connect() as conn:
        assert [a.alert_id for a in alerts.open_alerts(conn, T0 + timedelta(minutes=31))] == [
            alert.alert_id
        ]

    _hear(central_engine, "S01-1", T0 + timedelta(minutes=40))  # back
    alerts.check_kiosks(central_engine, settings, T0 + timedelta(minutes=41))
    assert _alerts(central_engine)[0].resolved_at is not None
    # Silent again later: a new alert, for the new silence.
    assert alerts.check_kiosks(central_engine, settings, T0 + timedelta(minutes=60)) == 1
    assert len(_alerts(central_engine)) == 2


def _roster(engine: Engine) -> None:
    rows = [RosterRow(n, f"A{n:02d}", f"人{n}", "东城区", "S01", "东湖站") for n in range(10)]
    rows += [RosterRow(20 + n, f"B{n:02d}", f"人{n}", "西城区", "S02", "西山站") for n in range(3)]
    roster.import_roster(engine, rows)


def _arrive(engine: Engine, cadre_id: str, site_id: str, when: datetime) -> None:
    naive = when.astimezone(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            insert(schema.stays).values(
                cadre_id=cadre_id,
                site_id=site_id,
                service_day=datetime(2026, 11, 29).date(),
                arrival_time=naive,
                state="open",
                flags="[]",
            )
        )


def test_a_site_with_many_absent_at_the_set_time_raises_one_alert_a_day(central_engine):
    _roster(central_engine)
    for n in range(2):
        _arrive(central_engine, f"A{n:02d}", "S01", T0)
    settings = _settings(
        alert_absent_at="08:00", alert_absent_min_count=5, alert_absent_min_share=0.3
    )
    rules = StayRules.from_settings(settings)
    before = T0 + timedelta(minutes=59)  # 07:59
    assert alerts.check_sites(central_engine, settings, before, rules) == 0
    at_eight = T0 + timedelta(hours=1)
    # S01: 8 of 10 absent. S02: 3 of 3 absent, but fewer than five: no alert.
    assert alerts.check_sites(central_engine, settings, at_eight, rules) == 1
    assert alerts.check_sites(central_engine, settings, at_eight + timedelta(minutes=5), rules) == 0
    [alert] = _alerts(central_engine)
    assert alert.detail == {
        "site": "S01",
        "name": "东湖站",
        "absent": 8,
        "expected": 10,
        "time": "08:00",
        "day": "2026-11-29",
    }
    for n in range(2, 6):
        _arrive(central_engine, f"A{n:02d}", "S01", at_eight)
    alerts.check_sites(central_engine, settings, at_eight + timedelta(minutes=10), rules)
    assert _alerts(central_engine)[0].resolved_at is not None, "4 absent: below the count"


def test_the_webhook_gets_json_or_a_robot_text_and_failures_are_retried(central_engine):
    _kiosk(central_engine, "S01-1", "S01", heard=T0)
    later = T0 + timedelta(minutes=20)
    hook = Hook(status=500)
    settings = _settings(alert_webhook_url="https://hook.example/x", language="zh-CN")
    assert alerts.check_and_send(central_engine, settings, later, hook) == (1, 0)
    assert len(hook.sent) == 1 and _alerts(central_engine)[0].send_error == "HTTP 500"
    hook.status = 200
    assert alerts.check_and_send(central_engine, settings, later + timedelta(minutes=1), hook) == (
        0,
        1,
    )
    url, body = hook.sent[-1]
    assert url == "https://hook.example/x"
    assert body["kind"] == "kiosk_silent" and body["subject"] == "S01-1"
    assert body["message"] == "站点 S01 的签到机 S01-1 已 20 分钟没有联系。"
    assert alerts.check_and_send(central_engine, settings, later + timedelta(minutes=2), hook) == (
        0,
        0,
    )
    assert len(hook.sent) == 2, "delivered once: never again"

    robot = _settings(
        alert_webhook_url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
        alert_webhook_format="robot",
        language="en",
    )
    [alert] = _alerts(central_engine)
    assert alerts.payload(alert, robot, Words("en")) == {
        "msgtype": "text",
        "text": {"content": "Kiosk S01-1 at site S01 has not been heard from for 20 min."},
    }


def test_an_unreachable_webhook_is_tried_at_most_five_times(central_engine):
    _kiosk(central_engine, "S01-1", "S01", heard=T0)
    hook = Hook(status=-1)
    settings = _settings(alert_webhook_url="https://hook.example/x")
    moment = T0 + timedelta(minutes=20)
    for _ in range(8):
        alerts.check_and_send(central_engine, settings, moment, hook)
        moment += timedelta(minutes=2)  # past the send lease
    assert len(hook.sent) == alerts.MAX_SENDS
    assert "network down" in _alerts(central_engine)[0].send_error


class _Robot(BaseHTTPRequestHandler):
    answers: ClassVar[list[bytes]] = []
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        answer = type(self).answers.pop(0) if type(self).answers else b'{"errcode": 0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def robot():
    _Robot.answers, _Robot.bodies = [], []
    server = HTTPServer(("127.0.0.1", 0), _Robot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/cgi-bin/webhook/send?key=k", _Robot
    server.shutdown()
    thread.join(timeout=5)


def test_a_robot_that_answers_an_error_code_counts_as_not_delivered(central_engine, robot):
    url, handler = robot
    handler.answers = [b'{"errcode": 93000, "errmsg": "invalid webhook url"}']
    _kiosk(central_engine, "S01-1", "S01", heard=T0)
    settings = _settings(alert_webhook_url=url, alert_webhook_format="robot")
    moment = T0 + timedelta(minutes=20)
    assert alerts.check_and_send(central_engine, settings, moment) == (1, 0)
    assert _alerts(central_engine)[0].send_error == "HTTP 502"
    assert alerts.check_and_send(central_engine, settings, moment + timedelta(minutes=2)) == (0, 1)
    assert [body["msgtype"] for body in handler.bodies] == ["text", "text"]
    assert "S01-1" in handler.bodies[0]["text"]["content"]


def _check_in_a_process(url: str, search_path: str | None, hook_url: str, out: Any) -> None:
    args = {"connect_args": {"options": f"-csearch_path={search_path}"}} if search_path else {}
    engine = make_engine(url, **args)
    settings = CentralSettings(alert_webhook_url=hook_url, alert_webhook_format="robot")
    out.put(alerts.check_and_send(engine, settings, T0 + timedelta(minutes=20)))
    engine.dispose()


def test_processes_checking_at_once_raise_and_send_each_alert_once(central_engine, robot):
    hook_url, handler = robot
    for n in range(5):
        _kiosk(central_engine, f"S01-{n}", "S01", heard=T0)
    url = central_engine.url.render_as_string(hide_password=False)
    search_path = None
    if central_engine.dialect.name == "postgresql":
        with central_engine.connect() as conn:
            search_path = conn.exec_driver_sql("SHOW search_path").scalar()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_check_in_a_process, args=(url, search_path, hook_url, results))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert sum(raised for raised, _ in answers) == 5
    assert sum(sent for _, sent in answers) == 5
    assert sorted(body["text"]["content"].split()[3] for body in handler.bodies) == [
        f"S01-{n}" for n in range(5)
    ]
    with central_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.alerts)).scalar_one() == 5


def test_alert_times_are_checked():
    with pytest.raises(ValueError, match="HH:MM"):
        CentralSettings(alert_absent_at="8am")
    assert CentralSettings(alert_absent_at="").alert_absent_at == ""
