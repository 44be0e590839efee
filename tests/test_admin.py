"""Admins manage users, roles and branches; every change is audited."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from bidhub.models import AuditEvent, User


def test_an_admin_creates_a_rep_who_can_then_sign_in(app, session, make_admin, make_branch,
                                                     login_as):
    branch = make_branch("SH", "Shanghai")
    client = login_as(make_admin())
    response = client.post("/admin/users/new", data={
        "username": "NewRep", "display_name": "新销售", "password": "long enough pass",
        "role": "rep", "branch_id": str(branch.id), "hired_on": "2025-01-06"})
    assert response.status_code == 303
    user = session.scalars(select(User).where(User.username == "newrep")).one()
    assert user.branch_id == branch.id and user.password_hash.startswith("scrypt:")
    assert session.scalars(select(AuditEvent).where(AuditEvent.action == "user.created")).one()
    other = app.test_client()
    assert other.post("/login", data={"username": "newrep",
                                      "password": "long enough pass"}).status_code == 302


def test_a_rep_without_a_branch_is_refused_on_the_field(app, make_admin, login_as):
    client = login_as(make_admin())
    response = client.post("/admin/users/new", data={
        "username": "nobranch", "display_name": "No Branch", "password": "long enough pass",
        "role": "rep", "branch_id": "0"})
    assert response.status_code == 422
    assert "A rep belongs to a branch." in response.get_data(as_text=True)


@pytest.mark.parametrize("hired_on", ["9999-12-31", "2026-03-03", "1949-12-31"])
def test_a_hire_date_after_today_or_before_1950_is_refused_on_the_field(
        app, session, make_admin, make_branch, login_as, hired_on):
    """A hire date feeds tenure: one not yet come, or decades before anyone now working was
    hired, is a typing slip. Today is 2026-03-02 in the department's time zone."""
    branch = make_branch("SH", "Shanghai")
    client = login_as(make_admin())
    response = client.post("/admin/users/new", headers={"Accept-Language": "en"}, data={
        "username": "NewRep", "display_name": "新销售", "password": "long enough pass",
        "role": "rep", "branch_id": str(branch.id), "hired_on": hired_on})
    assert response.status_code == 422
    hire_field = re.search(r'<div class="field has-error">(?:(?!</div>).)*name="hired_on".*?'
                           r'<p class="error">([^<]*)</p>', response.get_data(as_text=True),
                           re.DOTALL)
    assert hire_field is not None
    assert hire_field.group(1) == "Enter a hire date between 1950-01-01 and today, 2026-03-02."
    assert session.scalars(select(User).where(User.username == "newrep")).first() is None
    assert session.scalars(select(AuditEvent).where(
        AuditEvent.action == "user.created")).first() is None


def test_a_hire_date_is_refused_in_chinese_on_a_chinese_page(app, session, make_admin,
                                                            make_branch, login_as):
    branch = make_branch("SH", "Shanghai")
    response = login_as(make_admin()).post(
        "/admin/users/new", headers={"Accept-Language": "zh-CN"}, data={
            "username": "NewRep", "display_name": "新销售", "password": "long enough pass",
            "role": "rep", "branch_id": str(branch.id), "hired_on": "9999-12-31"})
    assert response.status_code == 422
    assert "请输入 1950年1月1日 到今天（2026年3月2日）之间的入职日期。" in response.get_data(
        as_text=True)


@pytest.mark.parametrize("hired_on", ["1950-01-01", "1998-07-01"])
def test_a_hire_date_the_command_line_takes_the_users_page_takes(
        app, session, make_admin, make_branch, login_as, hired_on):
    """Not refused for a year before 2000, as the form's other dates are: the rule is the
    users service's, the same for the page and `bidhub create-user`."""
    branch = make_branch("SH", "Shanghai")
    response = login_as(make_admin()).post("/admin/users/new", data={
        "username": "NewRep", "display_name": "新销售", "password": "long enough pass",
        "role": "rep", "branch_id": str(branch.id), "hired_on": hired_on})
    assert response.status_code == 303
    assert session.scalars(select(User).where(User.username == "newrep")).one().hired_on == (
        date.fromisoformat(hired_on))


def test_todays_hire_date_is_the_departments_today(app, session, clock, make_admin, make_branch,
                                                   login_as):
    """At 01:00 in Beijing on 2026-03-02 (still 2026-03-01 in UTC) a rep hired today is taken."""
    from datetime import UTC, datetime

    clock.set(datetime(2026, 3, 1, 17, 0, tzinfo=UTC))
    branch = make_branch("SH", "Shanghai")
    client = login_as(make_admin())
    response = client.post("/admin/users/new", data={
        "username": "NewRep", "display_name": "新销售", "password": "long enough pass",
        "role": "rep", "branch_id": str(branch.id), "hired_on": "2026-03-02"})
    assert response.status_code == 303
    assert session.scalars(select(User).where(User.username == "newrep")).one().hired_on == (
        date(2026, 3, 2))


def test_deactivating_a_user_ends_their_sessions(app, session, make_admin, make_rep, login_as):
    rep = make_rep()
    rep_client = app.test_client()
    from tests.conftest import login, reload

    login(rep_client, rep)
    admin_client = login_as(make_admin())
    response = admin_client.post(f"/admin/users/{rep.id}", data={
        "display_name": rep.display_name, "role": "rep", "branch_id": str(rep.branch_id),
        "status": "left"})
    assert response.status_code == 303
    assert rep_client.get("/rounds").status_code == 302
    reload(session)
    assert session.get(User, rep.id).is_active is False
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.updated")).one()
    assert event.before["is_active"] is True and event.after["is_active"] is False


def test_an_admin_sets_a_new_password_and_old_sessions_end(app, session, make_admin, make_rep,
                                                           login_as):
    from tests.conftest import login

    rep = make_rep()
    rep_client = app.test_client()
    login(rep_client, rep)
    admin_client = login_as(make_admin())
    short = admin_client.post(f"/admin/users/{rep.id}/password", data={"new_password": "short"})
    assert short.status_code == 422
    response = admin_client.post(f"/admin/users/{rep.id}/password",
                                 data={"new_password": "a fresh passphrase"})
    assert response.status_code == 303
    assert rep_client.get("/rounds").status_code == 302
    assert app.test_client().post("/login", data={
        "username": rep.username, "password": "a fresh passphrase"}).status_code == 302
    assert session.scalars(select(AuditEvent).where(
        AuditEvent.action == "user.password_set")).one()


def test_the_users_list_has_each_role_in_pinyin_order(app, make_admin, make_manager, make_rep,
                                                      login_as):
    """By role, then by name as the menus order names (domain.collation), not in code point
    order (张 李 王 陈)."""
    admin = make_admin(name="管理员")
    for name in ("张伟", "李娜", "王芳", "陈静"):
        make_rep(name=name)
    for name in ("周经理", "陈经理"):
        make_manager(name=name)
    page = login_as(admin).get("/admin/users", headers={"Accept-Language": "zh-CN"})
    names = re.findall(r'<a href="/admin/users/\d+">([^<]*)</a>', page.get_data(as_text=True))
    assert names == ["管理员", "陈经理", "周经理", "陈静", "李娜", "王芳", "张伟"]


def expected_of(page: str) -> str:
    return re.search(r'name="expected"[^>]*value="([^"]*)"', page).group(1)


def test_a_form_opened_before_another_admin_marked_the_rep_left_cannot_undo_it(
        app, session, make_admin, make_branch, make_rep, login_as):
    """Two admins open the same rep's form; one marks the rep as left. The other's save, from
    the form drawn before, would put the rep back to active with a branch change: it is refused
    with 409, nothing is written, and the form is drawn again from the rep as they are now,
    from which the change can be made again."""
    from tests.conftest import reload

    rep, other_branch = make_rep(), make_branch("GZ", "Guangzhou")
    first, second = login_as(make_admin()), login_as(make_admin())
    stale = expected_of(second.get(f"/admin/users/{rep.id}").get_data(as_text=True))
    opened = expected_of(first.get(f"/admin/users/{rep.id}").get_data(as_text=True))
    assert opened == stale
    assert first.post(f"/admin/users/{rep.id}", data={
        "display_name": rep.display_name, "role": "rep", "branch_id": str(rep.branch_id),
        "status": "left", "is_active": "y", "expected": opened}).status_code == 303

    response = second.post(f"/admin/users/{rep.id}", headers={"Accept-Language": "zh-CN"}, data={
        "display_name": rep.display_name, "role": "rep", "branch_id": str(other_branch.id),
        "status": "active", "is_active": "y", "expected": stale})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "打开此表单后" in page and "本次未保存任何内容" in page
    assert re.search(r'<option selected value="left">|<option value="left" selected', page)
    reload(session)
    kept = session.get(User, rep.id)
    assert kept.status == "left" and kept.branch_id == rep.branch_id
    assert len(session.scalars(select(AuditEvent).where(
        AuditEvent.action == "user.updated")).all()) == 1

    fresh = expected_of(page)
    assert fresh != stale
    assert second.post(f"/admin/users/{rep.id}", data={
        "display_name": rep.display_name, "role": "rep", "branch_id": str(other_branch.id),
        "status": "left", "is_active": "y", "expected": fresh}).status_code == 303
    reload(session)
    assert session.get(User, rep.id).branch_id == other_branch.id


def test_a_rep_who_holds_accounts_keeps_the_rep_role_until_they_are_handed_on(
        app, session, clock, make_admin, make_rep, give_accounts, login_as):
    """Only a rep holds accounts, and every move of one is filed: a rep made a manager or an
    admin while holding accounts would leave them with someone who is no rep, unfiled. The
    change is refused with the count and where to hand them on; nothing is written. Once the
    accounts are transferred, the same change goes through."""
    import pytest

    from bidhub.domain.errors import InvalidRequest
    from bidhub.models import Account, Role
    from bidhub.services import users
    from bidhub.services.filings import transfer_account
    from tests.conftest import reload

    admin, rep, other = make_admin(), make_rep(name="Promoted Rep"), make_rep()
    give_accounts(rep, 2)
    for role in (Role.KA_MANAGER, Role.ADMIN):
        with pytest.raises(InvalidRequest, match="still holds 2 account") as refused:
            users.update_user(session, admin, rep.id, display_name=rep.display_name, role=role,
                              branch_id=rep.branch_id, status=rep.status, is_active=True,
                              now=clock())
        assert refused.value.field == "role"
        reload(session)
        assert session.get(User, rep.id).role == Role.REP
    assert not session.scalars(select(AuditEvent).where(AuditEvent.action == "user.updated")).all()

    client = login_as(admin)
    form = client.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    assert f'href="/board/reps/{rep.id}"' in form  # where the accounts are handed on
    data = {"display_name": rep.display_name, "role": "ka_manager",
            "branch_id": str(rep.branch_id), "status": "active", "is_active": "y",
            "expected": expected_of(form)}
    response = client.post(f"/admin/users/{rep.id}", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Promoted Rep still holds 2 account(s)" in page
    chinese = client.post(f"/admin/users/{rep.id}", data=data,
                          headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "Promoted Rep名下仍有 2 个客户" in chinese
    reload(session)
    assert session.get(User, rep.id).role == Role.REP

    for account_id in session.scalars(select(Account.id).where(Account.owner_id == rep.id)):
        transfer_account(session, admin, account_id=account_id, to_rep_id=other.id,
                         reason="The rep moves to management.",
                         review_text="Handover done with the client's purchaser.", now=clock())
    reload(session)
    data["expected"] = expected_of(client.get(f"/admin/users/{rep.id}").get_data(as_text=True))
    assert client.post(f"/admin/users/{rep.id}", data=data).status_code == 303
    reload(session)
    assert session.get(User, rep.id).role == Role.KA_MANAGER
