"""Staff accounts in the browser (admins): add, disable, enable, reset a password, change the
role; and `central user list` / `central user role` on the command line."""

from __future__ import annotations

import re

from click.testing import CliRunner

from central import users
from central.cli import main as central_cli
from tests.central_web.helpers import PASSWORDS, log_in
from tests.central_web.test_once import token_of
from tests.central_web.test_pages import text_of


def post(client, action: str, **fields: str):
    page = client.get("/staff/accounts").get_data(as_text=True)
    return client.post(action, data={**token_of(page, action), **fields})


def test_an_admin_adds_an_account_that_can_log_in(app, admin, engine):
    answer = post(
        admin,
        "/staff/accounts",
        username="wang",
        role="viewer",
        password="wang password 1",
        password_again="wang password 1",
    )
    assert answer.status_code == 302
    assert "已添加账号 wang" in text_of(admin.get("/staff/accounts"))
    assert users.authenticate(engine, "wang", "wang password 1").role == "viewer"


def test_bad_accounts_are_refused_with_a_reason_and_nothing_stored(app, admin, engine):
    cases = [
        ({"username": "wang li", "password": "long password 1"}, "用户名：1-64"),
        ({"username": "wang", "password": "short"}, "密码太短"),
        ({"username": "viewer", "password": "long password 1"}, "已被占用"),
    ]
    for fields, said in cases:
        answer = post(
            admin, "/staff/accounts", role="viewer", password_again=fields["password"], **fields
        )
        assert answer.status_code == 302
        assert said in text_of(admin.get("/staff/accounts")), said
    answer = post(
        admin,
        "/staff/accounts",
        username="wang",
        role="viewer",
        password="long password 1",
        password_again="long password 2",
    )
    assert "两次输入的密码不一致" in text_of(admin.get("/staff/accounts"))
    assert [u.username for u in users.list_users(engine)] == ["admin", "viewer"]


def test_disabling_an_account_ends_its_session_at_once(app, admin, viewer, engine):
    assert viewer.get("/staff/").status_code == 200
    answer = post(admin, "/staff/accounts/viewer/active", active="0")
    assert answer.status_code == 302
    assert viewer.get("/staff/").status_code == 302, "the open session has ended"
    assert "已停用" in text_of(admin.get("/staff/accounts"))
    post(admin, "/staff/accounts/viewer/active", active="1")
    fresh = app.test_client()
    log_in(fresh, "viewer")
    assert fresh.get("/staff/").status_code == 200


def test_a_password_reset_ends_the_sessions_and_the_new_one_works(app, admin, viewer, engine):
    answer = post(
        admin,
        "/staff/accounts/viewer/password",
        password="a new viewer password",
        password_again="a new viewer password",
    )
    assert answer.status_code == 302
    assert viewer.get("/staff/").status_code == 302
    assert users.authenticate(engine, "viewer", PASSWORDS["viewer"]) is None
    assert users.authenticate(engine, "viewer", "a new viewer password") is not None


def test_role_changes_and_the_admin_cannot_lock_themselves_out(app, admin, viewer, engine):
    post(admin, "/staff/accounts/viewer/role", role="admin")
    assert viewer.get("/staff/accounts").status_code == 200, "the new role applies at once"
    post(admin, "/staff/accounts/viewer/role", role="viewer")
    assert viewer.get("/staff/accounts").status_code == 403
    # The admin's own account: neither disabled nor demoted from the page.
    page = admin.get("/staff/accounts").get_data(as_text=True)
    assert "/staff/accounts/admin/active" not in page and "/staff/accounts/admin/role" not in page
    forged = admin.post(
        "/staff/accounts/admin/active",
        data={**token_of(page, "/staff/accounts/viewer/active"), "active": "0"},
    )
    assert forged.status_code == 302
    assert "不能停用自己的账号" in text_of(admin.get("/staff/accounts"))
    assert users.authenticate(engine, "admin", PASSWORDS["admin"]) is not None


def test_viewers_cannot_reach_the_accounts(app, viewer):
    assert viewer.get("/staff/accounts").status_code == 403
    assert "账号" not in re.sub(r"工作人员", "", text_of(viewer.get("/staff/")).split("退出")[0])


def test_cli_lists_accounts_and_changes_a_role(tmp_path):
    runner = CliRunner()
    instance = tmp_path / "centre"
    assert runner.invoke(central_cli, ["--instance", str(instance), "init"]).exit_code == 0
    for name, role in (("lin", "admin"), ("wang", "viewer")):
        added = runner.invoke(
            central_cli,
            ["--instance", str(instance), "user", "add", name, "--role", role, "--password-stdin"],
            input="a long password 1\n",
        )
        assert added.exit_code == 0, added.output
    listed = runner.invoke(central_cli, ["--instance", str(instance), "user", "list"])
    assert listed.output.splitlines() == ["lin\tadmin\tactive", "wang\tviewer\tactive"]
    last = runner.invoke(
        central_cli, ["--instance", str(instance), "user", "role", "lin", "viewer"]
    )
    assert last.exit_code == 1 and "last admin" in last.output
    made = runner.invoke(
        central_cli, ["--instance", str(instance), "user", "role", "wang", "admin"]
    )
    assert made.exit_code == 0
    listed = runner.invoke(central_cli, ["--instance", str(instance), "user", "list"])
    assert "wang\tadmin\tactive" in listed.output
