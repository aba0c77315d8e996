"""Alerts at the top of the staff pages, in the page's language, and their list."""

from __future__ import annotations

from central import alerts
from central.jobs.worker import JobWorker
from central.services import central_of
from tests.central_web.seed import seed
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
