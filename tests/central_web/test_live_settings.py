"""Settings from the centre, live: set on the kiosks page or with `central kiosk set`, taken by
a running kiosk at its next sync. The repeat window changes the very next scan, without a
restart; a setting the kiosk cannot change while running is said to wait for a restart, on the
lead's readiness panel and on the centre's kiosks page."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from central.cli import main as cli
from central.kiosks import set_pushed_setting
from kiosk import settings as kiosk_settings
from kiosk.app import _default_sync_agent
from kiosk.web.status import item_words, readiness
from sync.agent import SyncAgent
from tests.central_web import seed
from tests.central_web.helpers import csrf_of
from tests.central_web.kiosk_app import enrolled_kiosk
from tests.fakes.clock import FakeClock
from tests.proofs import badge, write_issuing_key


@pytest.fixture
def centre(app: Flask) -> Flask:
    write_issuing_key(Path(app.instance_path) / "issuing_key.pem")
    seed.seed(app)
    return app


def sync(services, session) -> None:
    agent = _default_sync_agent(services, session=session)
    assert isinstance(agent, SyncAgent)
    assert agent.run_cycle(), agent.snapshot().last_error


def readiness_line(app: Flask, services, key: str) -> str:
    with app.test_request_context():
        items = [i for i in readiness(services) if i.key == key]
        assert items, f"no {key} line"
        return item_words(items[0])[1]


def set_on_page(admin: FlaskClient, **form: str):
    data = {"csrf_token": csrf_of(admin), **form}
    return admin.post("/staff/kiosks/settings", data=data)


def test_the_repeat_window_set_on_the_page_takes_effect_on_the_next_scan(
    tmp_path: Path, centre: Flask, admin: FlaskClient
) -> None:
    now = centre.extensions["central"].now()
    clock = FakeClock(now)
    app, _mono, kiosk_id, session = enrolled_kiosk(tmp_path, centre, "S01", clock=clock)
    services = app.extensions["kiosk"]
    assert services.settings.repeat_window_s == 120  # the default

    def scan() -> str:
        return services.handle_payload(badge("C003"), "wedge")["outcome"]

    assert scan() == "arrival"
    clock.advance(seconds=90)
    assert scan() == "repeat"  # inside two minutes

    answer = set_on_page(admin, scope="site", target="S01", key="repeat_window_s", value="30")
    assert answer.status_code == 303
    answer = set_on_page(admin, scope="kiosk", target=kiosk_id, key="retention_days", value="45")
    assert answer.status_code == 303
    sync(services, session)

    clock.advance(seconds=10)  # 100 s after the arrival: a repeat for 120 s, not for 30 s
    assert scan() == "departure"
    assert services.settings.repeat_window_s == 30
    assert services.settings.retention_days != 45  # waits for a restart
    line = readiness_line(app, services, "centre_settings")
    assert "retention_days" in line and "repeat_window_s" in line

    # The heartbeat of that same sync told the centre; its page says what waits.
    page = admin.get("/staff/kiosks").get_data(as_text=True)
    row = page[page.index(f'<tr data-kiosk="{kiosk_id}"') :]
    row = row[: row.index("</tr>")]
    assert "retention_days" in row and 'data-mark="restart_needed"' in row
    assert "repeat_window_s" in page[page.index('id="centre-settings"') :]

    # A start reads both from kiosk.toml.
    restarted = kiosk_settings.load(services.instance, env={})
    assert (restarted.repeat_window_s, restarted.retention_days) == (30, 45)


def test_central_kiosk_set_and_what_a_kiosk_refuses(
    tmp_path: Path, centre: Flask, admin: FlaskClient
) -> None:
    app, _mono, kiosk_id, session = enrolled_kiosk(tmp_path, centre, "S01")
    services = app.extensions["kiosk"]
    runner = CliRunner()
    instance = centre.instance_path
    done = runner.invoke(
        cli,
        [
            "--instance",
            instance,
            "kiosk",
            "set",
            "--kiosk",
            kiosk_id,
            "sounds=false",
            "language=en",
        ],
    )
    assert done.exit_code == 0, done.output
    assert "sounds = false" in done.output and 'language = "en"' in done.output
    for wrong in (
        ["kiosk", "set", "--site", "NOPE", "sounds=false"],
        ["kiosk", "set", "--site", "S01", "--kiosk", kiosk_id, "sounds=false"],
        ["kiosk", "set", "--site", "S01", "sounds"],
        ["kiosk", "set", "--site", "S01", "Bad-Name=1"],
        ["kiosk", "set", "--all", "--site", "S01", "sounds=false"],
    ):
        failed = runner.invoke(cli, ["--instance", instance, *wrong])
        assert failed.exit_code != 0 and "Error" in failed.output, wrong

    messages = services.bus.subscribe()
    sync(services, session)
    assert services.settings.sounds is False and services.settings.language == "en"
    assert services.words.locale == "en"
    assert services.handle_payload(badge("C001"), "wedge")["outcome"]  # words in English now
    said = []
    while (message := messages.get(timeout=0)) is not None:
        said.append(message.event)
    assert "reload" in said, "the screen was not told to load its page again"

    # A value that does not fit the kiosk: nothing of that version is taken, and it says why.
    set_pushed_setting(
        centre.extensions["central"].engine,
        f"kiosk:{kiosk_id}",
        "repeat_window_s",
        "soon",
        centre.extensions["central"].now(),
    )
    sync(services, session)
    assert services.settings.repeat_window_s == 120
    assert "repeat_window_s" in services.centre_settings.problem
    page = admin.get("/staff/kiosks?mark=settings_refused").get_data(as_text=True)
    assert f'<tr data-kiosk="{kiosk_id}"' in page


def test_what_the_centre_may_never_set_is_refused_with_a_reason(
    tmp_path: Path, centre: Flask, admin: FlaskClient
) -> None:
    instance = centre.instance_path
    failed = CliRunner().invoke(
        cli,
        ["--instance", instance, "kiosk", "set", "--site", "S01", "sounds=false", "camera_fps=5"],
    )
    assert failed.exit_code != 0 and "cannot be set from the centre" in failed.output
    answer = set_on_page(admin, scope="site", target="S01", key="lead_pin", value="1234")
    assert answer.status_code == 400
    assert "不能由中心设置" in answer.get_data(as_text=True)
    # Nothing of either was stored; a kiosk of the site takes nothing new.
    page = admin.get("/staff/kiosks").get_data(as_text=True)
    settings_part = page[page.index('id="centre-settings"') : page.index('role="search"')]
    assert "camera_fps" not in settings_part and "lead_pin" not in settings_part
    assert "sounds" not in settings_part  # refused with the other key: none of the set stored
