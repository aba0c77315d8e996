"""Alerts at the top of the staff pages, in the page's language, and their list."""

from __future__ import annotations

from datetime import timedelta

from central import alerts
from central.jobs.worker import JobWorker
from central.services import central_of
from sync.protocol import FleetReport, RecoveryNote
from tests.central_web.seed import heartbeat, seed
from tests.central_web.test_pages import text_of


def test_a_silent_kiosk_shows_at_the_top_of_every_page_until_it_is_heard(app, admin, viewer):
    seed(app)  # kiosk S02-1 has been silent for three hours
    central = central_of(app)
    sent: list[dict] = []
    worker = JobWorker(
        central.engine,
        central.settings.model_copy(update={"alert_webhook_url": "https://hook.example/a"}),
        central.instance,
        now=central.now,
        isolation="thread",
        post=lambda _url, body: sent.append(body) or 200,
    )
    worker.run_duties(force=True)  # what every worker does every alert_check_s
    assert [body["subject"] for body in sent] == ["S02-1"]

    for client, path in ((viewer, "/staff/"), (admin, "/staff/roster"), (viewer, "/staff/exports")):
        page = client.get(path)
        banner = page.get_data(as_text=True).split('<section class="alerts"', 1)
        assert len(banner) == 2, path
        assert "站点 S02 的签到机 S02-1 已 180 分钟没有联系。" in text_of(page)
    english = text_of(viewer.get("/staff/alerts?lang=en"))
    assert "Kiosk S02-1 at site S02 has not been heard from for 180 min." in english
    assert "sent 12:00" in english

    with central.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE kiosk_status SET received_at = ? WHERE kiosk_id = 'S02-1'",
            (central.now().replace(tzinfo=None),),
        )
    alerts.check_kiosks(central.engine, central.settings, central.now())
    assert '<section class="alerts"' not in viewer.get("/staff/").get_data(as_text=True)


def test_a_kiosk_that_lost_events_at_its_start_is_an_alert_until_a_clean_start(app, viewer):
    seeded = seed(app)
    central = central_of(app)
    now = central.now()
    east = seeded.kiosks["S01"]
    kiosk_id = east.identity.kiosk_id
    damaged_start = RecoveryNote(
        opened_at=now - timedelta(minutes=5),
        clean=False,
        lost=True,
        lost_events=6,
        summary="salvaged damaged segment(s) seg-000000000011.json; events lost: seq 15-20",
    )
    heartbeat(central.engine, east, now, app, fleet=FleetReport(recovery=damaged_start))
    assert alerts.check_recoveries(central.engine, now) == 1
    assert alerts.check_recoveries(central.engine, now) == 0  # one alert per start
    said = f"站点 S01 的签到机 {kiosk_id} 于"
    page = text_of(viewer.get("/staff/"))
    assert said in page and "有 6 条记录无法读回" in page
    english = text_of(viewer.get("/staff/alerts?lang=en"))
    assert f"Kiosk {kiosk_id} at site S01 could not read back 6 event(s)" in english

    # The kiosk restarts and opens clean: the alert of the earlier start is resolved.
    later = now + timedelta(minutes=10)
    clean_start = RecoveryNote(opened_at=later, clean=True)
    heartbeat(central.engine, east, later, app, fleet=FleetReport(recovery=clean_start))
    assert alerts.check_recoveries(central.engine, later) == 0
    assert said not in text_of(viewer.get("/staff/"))
