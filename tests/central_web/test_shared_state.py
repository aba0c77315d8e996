"""What staff do is kept in the database, shared by every `central serve` process: sessions,
the login throttle, CSRF and one-time form tokens (issue 11 rows 6 and 7, centre side; issue 16).

"Two processes" here are two apps on one store, as two `central serve` processes are (they share
the instance folder's session secret and the database, nothing else); tests/scale runs real ones.
Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from central import users
from central.app import create_app
from central.db import schema
from central.settings import CentralSettings
from tests.central_web.helpers import PASSWORDS, add_staff_accounts, csrf_from, csrf_of, log_in
from tests.central_web.seed import seed
from tests.central_web.test_once import token_of

COOKIE = "central_session"


@pytest.fixture
def two_processes(central_engine, tmp_path, clock):
    def build(**settings: object) -> tuple[Flask, Flask]:
        with central_engine.begin() as conn:
            add_staff_accounts(conn)
        apps = tuple(
            create_app(
                tmp_path / "instance",  # one instance folder: the same session secret
                CentralSettings(**settings),  # type: ignore[arg-type]
                engine=central_engine,
                now=clock,
                config={"TESTING": True},
            )
            for _ in range(2)
        )
        assert apps[0] is not apps[1]
        return apps  # type: ignore[return-value]

    return build


def cookie_of(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def with_cookie(app: Flask, value: str) -> FlaskClient:
    client = app.test_client()
    client.set_cookie(COOKIE, value)
    return client


def test_a_session_made_on_one_process_works_on_another_and_logout_ends_it_everywhere(
    two_processes,
):
    a, b = two_processes()
    on_a = a.test_client()
    log_in(on_a, "viewer")
    copied = cookie_of(on_a)  # the cookie as a thief (or a forgotten browser tab) keeps it
    on_b = with_cookie(b, copied)
    assert on_b.get("/staff/").status_code == 200, "made on A, works on B"
    assert on_a.get("/staff/").status_code == 200

    assert on_b.post("/staff/logout", data={"csrf_token": csrf_of(on_b)}).status_code == 302
    for app in (a, b):
        replay = with_cookie(app, copied).get("/staff/")
        assert replay.status_code == 302, "logged out on B: the old cookie opens nothing"
        assert "/staff/login" in replay.headers["Location"]
    assert on_a.get("/staff/").status_code == 302


def test_a_password_change_ends_every_session_of_that_user_on_every_process(two_processes):
    a, b = two_processes()
    sessions = [a.test_client(), b.test_client(), a.test_client()]
    for client in sessions:
        log_in(client, "viewer")
    admin = b.test_client()
    log_in(admin, "admin")
    assert all(c.get("/staff/").status_code == 200 for c in sessions)
    users.set_password(a.extensions["central"].engine, "viewer", "a completely new password")
    assert [c.get("/staff/").status_code for c in sessions] == [302, 302, 302]
    assert admin.get("/staff/").status_code == 200, "another user's session is kept"


def test_the_csrf_token_of_a_session_is_the_same_on_every_process(two_processes):
    a, b = two_processes()
    on_a = a.test_client()
    log_in(on_a, "admin")
    token = csrf_of(on_a)
    on_b = with_cookie(b, cookie_of(on_a))
    assert csrf_of(on_b) == token
    assert on_b.post("/staff/logout", data={"csrf_token": "not-it"}).status_code == 400
    assert on_b.post("/staff/logout", data={"csrf_token": "tökén"}).status_code == 400
    assert on_b.post("/staff/logout", data={"csrf_token": token}).status_code == 302


def test_one_address_cannot_lock_an_account_for_everyone(two_processes):
    a, b = two_processes(login_max_failures=3)
    guesser = {"REMOTE_ADDR": "198.51.100.66"}
    for app in (a, b, a):  # the guesses spread over processes count together
        client = app.test_client()
        token = csrf_from(client.get("/staff/login").get_data(as_text=True))
        bad = {"username": "admin", "password": "guess", "csrf_token": token}
        assert client.post("/staff/login", data=bad, environ_base=guesser).status_code == 401
    for app in (a, b):
        client = app.test_client()
        token = csrf_from(client.get("/staff/login").get_data(as_text=True))
        good = {"username": "admin", "password": PASSWORDS["admin"], "csrf_token": token}
        assert client.post("/staff/login", data=good, environ_base=guesser).status_code == 429
        owner = client.post("/staff/login", data=good, environ_base={"REMOTE_ADDR": "10.1.1.1"})
        assert owner.status_code == 302, "the owner, from their own address, gets in"


def test_a_burst_of_parallel_logins_gets_no_extra_guesses(two_processes, monkeypatch):
    """40 wrong passwords at once, half to each process: exactly `login_max_failures` of them
    reach the password check; the rest are refused before it."""
    a, b = two_processes(login_max_failures=5)
    checks = Counter[str]()
    check_lock = threading.Lock()
    real_check = users.check_password_hash

    def counted_check(stored: str, password: str) -> bool:
        with check_lock:
            checks[password] += 1
        return real_check(stored, password)

    monkeypatch.setattr(users, "check_password_hash", counted_check)
    first = a.test_client()
    token = csrf_from(first.get("/staff/login").get_data(as_text=True))
    cookie = cookie_of(first)
    statuses: list[int] = []
    start = threading.Barrier(40)

    def guess(app: Flask, n: int) -> None:
        client = with_cookie(app, cookie)
        start.wait(30)
        answer = client.post(
            "/staff/login",
            data={"username": "admin", "password": f"guess {n}", "csrf_token": token},
            environ_base={"REMOTE_ADDR": "203.0.113.40"},
        )
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=guess, args=((a, b)[n % 2], n)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(checks.values()) == 5, f"password checks made: {sum(checks.values())}"
    assert sorted(statuses) == [401] * 5 + [429] * 35


def test_a_form_sent_twice_is_done_once_whichever_process_gets_it(two_processes):
    a, b = two_processes()
    seeded = seed(a)
    admin_a = a.test_client()
    log_in(admin_a, "admin")
    admin_b = with_cookie(b, cookie_of(admin_a))
    page = admin_a.get("/staff/cadres/C001").get_data(as_text=True)
    form = {
        **token_of(page, "/staff/corrections"),
        "cadre_id": "C001",
        "action": "void",
        "event_id": str(seeded.events["c1_departure"].event_id),
        "reason": "双击",
    }
    first = admin_a.post("/staff/corrections", data=form)
    again = admin_b.post("/staff/corrections", data=form)
    assert first.status_code == 302 and again.status_code == 303, "B knows A did it"
    with a.extensions["central"].engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(schema.corrections)).scalar_one()
    assert stored == 1
