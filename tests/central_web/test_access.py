"""Who may reach what: login, roles, CSRF, the login throttle and the session cookie."""

from __future__ import annotations

import io
import re
from datetime import timedelta

from sqlalchemy import func, select

from central import kiosks, users
from central.db import schema
from central.web.security import LoginThrottle
from tests.central_web.helpers import PASSWORDS, csrf_from, csrf_of, log_in
from tests.central_web.seed import ROSTER, seed

# Public on purpose: the login form itself, and the CSS/JS the login page needs.
PUBLIC = {"staff.login", "staff.static"}


def _sample_url(rule) -> str:
    values = {name: "S01" for name in rule.arguments}
    if "filename" in values:
        values["filename"] = "staff.css"
    url = rule.rule
    for name, value in values.items():
        url = re.sub(rf"<(?:[^:<>]+:)?{name}>", value, url)
    return url


def test_every_staff_route_without_login_redirects_or_answers_401(app):
    client = app.test_client()
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("staff.")]
    assert len(rules) >= 15, "the walk must see the staff blueprint's routes"
    checked = 0
    for rule in rules:
        if rule.endpoint in PUBLIC:
            continue
        url = _sample_url(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            if url.endswith(".json"):
                assert response.status_code == 401, (method, url)
                assert response.is_json
            else:
                assert response.status_code == 302, (method, url, response.status_code)
                assert response.headers["Location"].startswith("/staff/login"), (method, url)
            checked += 1
    assert checked >= 15


def test_json_clients_get_401_on_pages_too(app):
    response = app.test_client().get("/staff/", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.get_json() == {"error": "login required"}


def test_login_sets_a_httponly_samesite_cookie_and_logout_ends_the_session(app):
    client = app.test_client()
    page = client.get("/staff/login")
    response = client.post(
        "/staff/login",
        data={
            "username": "viewer",
            "password": PASSWORDS["viewer"],
            "csrf_token": csrf_from(page.get_data(as_text=True)),
        },
    )
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/staff/").status_code == 200
    client.post("/staff/logout", data={"csrf_token": csrf_of(client)})
    assert client.get("/staff/").status_code == 302


def test_wrong_password_is_refused_and_nothing_else_tells_names_apart(app):
    client = app.test_client()
    token = csrf_from(client.get("/staff/login").get_data(as_text=True))
    wrong = client.post(
        "/staff/login", data={"username": "admin", "password": "nope", "csrf_token": token}
    )
    unknown = client.post(
        "/staff/login", data={"username": "ghost", "password": "nope", "csrf_token": token}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert client.get("/staff/").status_code == 302


def test_wrong_passwords_lock_that_address_out_of_that_account_only(make_app):
    app = make_app(login_max_failures=3)
    client = app.test_client()
    token = csrf_from(client.get("/staff/login").get_data(as_text=True))
    guesser = {"REMOTE_ADDR": "10.0.0.66"}
    for _ in range(3):
        bad = {"username": "admin", "password": "guess", "csrf_token": token}
        assert client.post("/staff/login", data=bad, environ_base=guesser).status_code == 401
    good = {"username": "admin", "password": PASSWORDS["admin"], "csrf_token": token}
    refused = client.post("/staff/login", data=good, environ_base=guesser)
    assert refused.status_code == 429, "the guessing address gets no more tries, right or wrong"
    assert 0 < int(refused.headers["Retry-After"]) <= 900
    assert "登录失败次数过多" in refused.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302
    # The account's owner, from their own address, is not locked out by the guesser.
    owner = client.post("/staff/login", data=good, environ_base={"REMOTE_ADDR": "10.0.0.8"})
    assert owner.status_code == 302


def test_throttle_counts_per_pair_and_per_address_and_forgets_after_the_window(engine, clock):
    throttle = LoginThrottle(engine, max_failures=2, window_s=60, address_max_failures=3, now=clock)
    assert throttle.claim("1.2.3.4", "a") == throttle.claim("1.2.3.4", "a") == 0
    assert throttle.claim("1.2.3.4", "a") > 0, "two failures of one name from one address"
    assert throttle.claim("1.2.3.4", "b") == 0
    assert throttle.claim("1.2.3.4", "c") > 0, "one address guessing over many names"
    assert throttle.claim("5.6.7.8", "a") == 0, "other addresses are not held back"
    throttle.succeeded("5.6.7.8", "a")
    clock.value += timedelta(seconds=61)
    assert throttle.claim("1.2.3.4", "a") == 0


def test_posts_without_the_csrf_token_are_refused(app, admin, engine):
    seed(app)
    before = _count(engine, schema.cadres)
    for url, data in [
        ("/staff/badges/revoke", {"cadre_id": "C001"}),
        ("/staff/logout", {}),
        ("/staff/corrections", {"cadre_id": "C001", "action": "void", "reason": "x"}),
    ]:
        assert admin.post(url, data=data).status_code == 400
        assert admin.post(url, data={**data, "csrf_token": "forged"}).status_code == 400
    assert admin.get("/staff/").status_code == 200, "still logged in: logout was refused"
    assert _count(engine, schema.cadres) == before


def test_login_form_needs_its_csrf_token(app):
    client = app.test_client()
    client.get("/staff/login")
    response = client.post(
        "/staff/login", data={"username": "admin", "password": PASSWORDS["admin"]}
    )
    assert response.status_code == 400


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_viewer_cannot_import_print_revoke_enrol_or_correct(app, viewer, engine):
    seed(app)
    token = csrf_of(viewer)
    with engine.connect() as conn:
        revoked_before = conn.execute(
            select(schema.cadres.c.revoked_through).where(schema.cadres.c.cadre_id == "C001")
        ).scalar_one()
    kiosks_before = _count(engine, schema.kiosks)
    attempts = [
        (
            "/staff/roster/import",
            {"file": (io.BytesIO("编号,姓名\nC099,新人\n".encode()), "r.csv")},
        ),
        ("/staff/badges/print", {"site_id": "S01", "layout": "a6-on-a4"}),
        ("/staff/badges/revoke", {"cadre_id": "C001"}),
        ("/staff/kiosks/enrol", {"site_id": "S01"}),
        ("/staff/kiosks/S01-1/revoke", {}),
        ("/staff/kiosks/S01-1/code", {}),
        ("/staff/corrections", {"cadre_id": "C001", "action": "void", "reason": "x"}),
    ]
    for url, data in attempts:
        response = viewer.post(url, data={**data, "csrf_token": token})
        assert response.status_code == 403, url
    assert _count(engine, schema.cadres) == len(ROSTER)
    assert _count(engine, schema.kiosks) == kiosks_before
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(schema.cadres.c.revoked_through).where(schema.cadres.c.cadre_id == "C001")
            ).scalar_one()
            == revoked_before
        )
        identity = kiosks.authenticate(conn, seed_token(app))
    assert identity is not None, "the viewer's revoke did not shut the kiosk out"
    page = viewer.get("/staff/roster").get_data(as_text=True)
    assert 'action="/staff/roster/import"' not in page, "viewers are not offered the forms"


def seed_token(app) -> str:
    return app.extensions["seeded"].kiosks["S01"].token


def test_changing_a_password_logs_out_open_sessions(app, viewer, engine):
    assert viewer.get("/staff/").status_code == 200
    users.set_password(engine, "viewer", "a completely new password")
    assert viewer.get("/staff/").status_code == 302


def test_after_login_only_local_paths_are_followed(app):
    client = app.test_client()
    token = csrf_from(client.get("/staff/login").get_data(as_text=True))
    for target in [
        "//evil.example/x",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\\evil.example/",
    ]:
        response = client.post(
            "/staff/login",
            data={
                "username": "viewer",
                "password": PASSWORDS["viewer"],
                "csrf_token": token,
                "next": target,
            },
        )
        assert response.headers["Location"] == "/staff/", target
        client.post("/staff/logout", data={"csrf_token": csrf_of(client)})
        token = csrf_from(client.get("/staff/login").get_data(as_text=True))
    log_in(client, "viewer")


def test_behind_a_trusted_proxy_the_throttle_counts_the_forwarded_address(make_app):
    app = make_app(login_max_failures_per_address=2, trusted_proxies=1)
    client = app.test_client()
    token = csrf_from(client.get("/staff/login").get_data(as_text=True))

    def attempt(name: str, password: str, forwarded: str) -> int:
        data = {"username": name, "password": password, "csrf_token": token}
        headers = {"X-Forwarded-For": forwarded}
        return client.post("/staff/login", data=data, headers=headers).status_code

    assert attempt("nobody1", "x", "203.0.113.7") == 401
    assert attempt("nobody2", "x", "203.0.113.7") == 401
    assert attempt("viewer", PASSWORDS["viewer"], "203.0.113.7") == 429
    assert attempt("viewer", PASSWORDS["viewer"], "198.51.100.1") == 302


def test_without_trusted_proxies_a_forged_forwarded_for_changes_nothing(make_app):
    app = make_app(login_max_failures_per_address=2)
    client = app.test_client()
    token = csrf_from(client.get("/staff/login").get_data(as_text=True))
    for number in range(2):
        data = {"username": f"nobody{number}", "password": "x", "csrf_token": token}
        headers = {"X-Forwarded-For": f"198.51.100.{number}"}
        assert client.post("/staff/login", data=data, headers=headers).status_code == 401
    data = {"username": "viewer", "password": PASSWORDS["viewer"], "csrf_token": token}
    headers = {"X-Forwarded-For": "192.0.2.99"}
    assert client.post("/staff/login", data=data, headers=headers).status_code == 429
