"""Admins manage users, roles and branches; every change is audited."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from bidhub.models import AuditEvent, User
from tests.conftest import reload, user_form_fingerprint


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
    signed_in = other.post("/login", data={"username": "newrep", "password": "long enough pass"})
    # The admin chose the password: it is temporary, as a reset's is.
    assert signed_in.status_code == 302 and signed_in.location == "/password"
    assert user.must_change_password


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


def field_errors(page: str) -> dict[str, str]:
    """Each field the page shows refused, by name, with its message."""
    return dict(re.findall(r'<div class="field has-error">(?:(?!</div>).)*?name="([a-z_]+)".*?'
                           r'<p class="error">([^<]*)</p>', page, re.DOTALL))


def test_every_problem_of_a_new_user_is_shown_in_one_answer(app, session, make_admin,
                                                            login_as):
    """A password too short (the form's own check), a username of an emoji and a rep
    without a branch (the rules for users) are all said at once."""
    response = login_as(make_admin()).post("/admin/users/new", headers={
        "Accept-Language": "en"}, data={"username": "qa😀", "display_name": "新销售",
                                        "password": "short", "role": "rep", "branch_id": ""})
    assert response.status_code == 422
    errors = field_errors(response.get_data(as_text=True))
    assert set(errors) == {"username", "password", "branch_id"}, errors
    assert errors["branch_id"] == "A rep belongs to a branch."
    assert session.scalars(select(User).where(User.display_name == "新销售")).first() is None


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
        "status": "left", "expected": user_form_fingerprint(admin_client, rep.id)})
    assert response.status_code == 303
    assert rep_client.get("/rounds").status_code == 302
    reload(session)
    assert session.get(User, rep.id).is_active is False
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.updated")).one()
    assert event.before["is_active"] is True and event.after["is_active"] is False


def test_an_admin_deactivating_themselves_is_told_so_on_the_box(app, session, make_admin,
                                                                login_as):
    admin = make_admin()
    client = login_as(admin)
    response = client.post(f"/admin/users/{admin.id}", headers={"Accept-Language": "zh-CN"},
                           data={"display_name": admin.display_name, "role": "admin",
                                 "branch_id": "0", "status": "active",
                                 "expected": user_form_fingerprint(client, admin.id)})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "你不能停用自己的账号：须由另一位管理员操作。" in page
    assert "你不能取消自己的管理员权限" not in page
    reload(session)
    assert session.get(User, admin.id).is_active


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


@pytest.mark.parametrize("sent", [None, "", "not-a-fingerprint"], ids=["left out", "empty",
                                                                       "made up"])
def test_a_user_form_without_the_fingerprint_it_was_drawn_with_is_stale(
        session, make_admin, make_rep, login_as, sent):
    """A post that cannot show the form was opened on the user as they are (a hand-made
    request) overwrites nothing: 409, as a stale form, and the form drawn from the user."""
    from tests.conftest import reload

    rep = make_rep(hired_on=date(2023, 5, 1))
    client = login_as(make_admin())
    data = {"display_name": "Renamed", "role": "rep", "branch_id": str(rep.branch_id),
            "status": "left", "is_active": "y", "hired_on": "2020-01-01"}
    if sent is not None:
        data["expected"] = sent
    response = client.post(f"/admin/users/{rep.id}", data=data)
    assert response.status_code == 409
    assert expected_of(response.get_data(as_text=True)) == user_form_fingerprint(client, rep.id)
    reload(session)
    kept = session.get(User, rep.id)
    assert (kept.display_name, kept.status, kept.hired_on) == (
        rep.display_name, "active", date(2023, 5, 1))
    assert session.scalars(select(AuditEvent).where(
        AuditEvent.action == "user.updated")).all() == []


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


# --- the hire date on the edit page ------------------------------------------------------------

def hire_field_of(page: str) -> tuple[str | None, str | None]:
    """The hire date field's value and its error on an edit page (None: none shown)."""
    found = re.search(r'<div class="field( has-error)?">(?:(?!</div>).)*name="hired_on"'
                      r'(?:(?!</div>).)*</div>', page, re.DOTALL)
    if found is None:
        return None, None
    value = re.search(r'name="hired_on"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*name="hired_on"',
                      found.group(0))
    error = re.search(r'<p class="error">([^<]*)</p>', found.group(0))
    return (value and (value.group(1) or value.group(2)) or "",
            error.group(1) if error else None)


def edit_data(rep: User, page: str, **changes) -> dict:
    """What the edit form posts for `rep` as `page` drew it, with `changes`."""
    return {"display_name": rep.display_name, "role": "rep", "branch_id": str(rep.branch_id),
            "status": "active", "is_active": "y", "expected": expected_of(page),
            "hired_on": hire_field_of(page)[0], **changes}


def user_updates(session) -> list[AuditEvent]:
    return session.scalars(select(AuditEvent).where(AuditEvent.action == "user.updated")
                           .order_by(AuditEvent.id)).all()


def test_an_admin_corrects_a_reps_hire_date_and_the_audit_records_it(
        app, session, make_admin, make_rep, login_as):
    """A mistyped hire date is corrected on the rep's edit page, not only by a reps import;
    the audit trail keeps the day before and after, as it keeps the other details."""
    from tests.conftest import reload

    admin, rep = make_admin(), make_rep(hired_on=date(2023, 5, 1))
    client = login_as(admin)
    page = client.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    assert hire_field_of(page) == ("2023-05-01", None)
    response = client.post(f"/admin/users/{rep.id}",
                           data=edit_data(rep, page, hired_on="2021-09-01"))
    assert response.status_code == 303
    reload(session)
    assert session.get(User, rep.id).hired_on == date(2021, 9, 1)
    (event,) = user_updates(session)
    assert event.actor_id == admin.id and event.target == f"user:{rep.id}"
    assert event.before["hired_on"] == "2023-05-01" and event.after["hired_on"] == "2021-09-01"
    assert {key: value for key, value in event.before.items() if key != "hired_on"} == {
        key: value for key, value in event.after.items() if key != "hired_on"}

    # Emptied on purpose: no hire date is known, as a reps import can say too.
    page = client.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    assert hire_field_of(page) == ("2021-09-01", None)
    assert client.post(f"/admin/users/{rep.id}",
                       data=edit_data(rep, page, hired_on="")).status_code == 303
    reload(session)
    assert session.get(User, rep.id).hired_on is None
    assert user_updates(session)[-1].after["hired_on"] is None


def test_a_form_without_the_hire_date_keeps_it(app, session, make_admin, make_manager,
                                               make_rep, login_as):
    """The page shows the hire date for a rep and for anyone who has one; a user without one
    who is no rep (an admin, a manager) has no such field, and saving their form, or any post
    that leaves the field out, keeps the hire date as it is."""
    from tests.conftest import reload

    admin, manager, rep = make_admin(), make_manager(), make_rep(hired_on=date(2024, 2, 1))
    manager.hired_on = None
    session.commit()
    client = login_as(admin)
    page = client.get(f"/admin/users/{manager.id}").get_data(as_text=True)
    assert hire_field_of(page) == (None, None) and 'name="hired_on"' not in page
    assert hire_field_of(client.get(f"/admin/users/{admin.id}").get_data(as_text=True))[0]
    data = edit_data(manager, page, role="ka_manager", branch_id="0")
    del data["hired_on"]
    assert client.post(f"/admin/users/{manager.id}", data=data).status_code == 303
    page = client.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    data = edit_data(rep, page, display_name="Renamed Rep")
    del data["hired_on"]
    assert client.post(f"/admin/users/{rep.id}", data=data).status_code == 303
    reload(session)
    assert session.get(User, manager.id).hired_on is None
    assert session.get(User, rep.id).hired_on == date(2024, 2, 1)
    assert session.get(User, rep.id).display_name == "Renamed Rep"


def hire_date_posts(client, rep, hired_on: str, messages):
    """The rep's edit form posted with `hired_on` (and a status change) in each language of
    `messages` ((language, expected message) pairs): yields (response, expected message)."""
    page = client.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    for language, message in messages:
        yield client.post(f"/admin/users/{rep.id}", headers={"Accept-Language": language},
                          data=edit_data(rep, page, hired_on=hired_on, status="on_leave")), message


@pytest.mark.parametrize("hired_on", ["2026-03-03", "9999-12-31", "1949-12-31", "0001-01-01"])
def test_a_hire_date_edited_after_today_or_before_1950_is_refused_on_the_field(
        app, session, make_admin, make_rep, login_as, hired_on):
    """The rule of the new-user form and `bidhub create-user` (users.check_hire_date): today
    is 2026-03-02 in the department's time zone. Refused on the field, in the page's language;
    the rep, the audit trail and the rep's stored track record are as they were."""
    from bidhub.models import TrackRecordSnapshot
    from tests.conftest import reload

    rep = make_rep(hired_on=date(2023, 5, 1))
    for response, message in hire_date_posts(login_as(make_admin()), rep, hired_on, (
            ("en", "Enter a hire date between 1950-01-01 and today, 2026-03-02."),
            ("zh-CN", "请输入 1950年1月1日 到今天（2026年3月2日）之间的入职日期。"))):
        assert response.status_code == 422
        assert hire_field_of(response.get_data(as_text=True)) == (hired_on, message)
    reload(session)
    kept = session.get(User, rep.id)
    assert kept.hired_on == date(2023, 5, 1) and kept.status == "active"
    assert not user_updates(session)
    assert session.get(TrackRecordSnapshot, rep.id) is None


def test_the_users_service_refuses_the_hire_date_whatever_the_form_says(
        app, session, clock, make_admin, make_rep):
    """`update_user` holds the rule, for any caller, and in the department's time zone: at
    01:00 in Beijing on 2026-03-02 (still 2026-03-01 in UTC) today's day is taken, the next
    one is not. A date it is not asked to change is kept, whatever it is."""
    from datetime import UTC, datetime

    from bidhub.domain.errors import InvalidRequest
    from bidhub.services import users
    from tests.conftest import reload

    clock.set(datetime(2026, 3, 1, 17, 0, tzinfo=UTC))
    admin, rep = make_admin(), make_rep(hired_on=date(2023, 5, 1))

    def edit(**changes):
        details = {"display_name": rep.display_name, "role": rep.role,
                   "branch_id": rep.branch_id, "status": rep.status, "is_active": True}
        return users.update_user(session, admin, rep.id, now=clock(), zone="Asia/Shanghai",
                                 **details | changes)

    with pytest.raises(InvalidRequest, match="between 1950-01-01 and today") as refused:
        edit(hired_on=date(2026, 3, 3))
    assert refused.value.field == "hired_on"
    reload(session)
    assert session.get(User, rep.id).hired_on == date(2023, 5, 1)
    edit(hired_on=date(2026, 3, 2))
    reload(session)
    assert session.get(User, rep.id).hired_on == date(2026, 3, 2)
    edit(display_name="Not asked about the hire date")
    reload(session)
    assert session.get(User, rep.id).hired_on == date(2026, 3, 2)


def test_a_stored_hire_date_the_rule_refuses_is_no_bar_to_other_changes(
        app, session, make_admin, make_rep, login_as):
    """A reps import wrote a hire date next year; marking the rep as left still goes through
    with the date left as it is, and correcting the date then takes only a date in range."""
    from tests.conftest import reload

    rep = make_rep(hired_on=date(2027, 1, 1))
    client = login_as(make_admin())
    page = client.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    assert hire_field_of(page) == ("2027-01-01", None)
    assert client.post(f"/admin/users/{rep.id}",
                       data=edit_data(rep, page, status="on_leave")).status_code == 303
    reload(session)
    assert session.get(User, rep.id).status == "on_leave"
    assert session.get(User, rep.id).hired_on == date(2027, 1, 1)
    page = client.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    assert client.post(f"/admin/users/{rep.id}", data=edit_data(
        rep, page, status="on_leave", hired_on="2027-02-01")).status_code == 422
    assert client.post(f"/admin/users/{rep.id}", data=edit_data(
        rep, page, status="on_leave", hired_on="2025-01-01")).status_code == 303
    reload(session)
    assert session.get(User, rep.id).hired_on == date(2025, 1, 1)


def test_a_form_opened_before_another_admin_changed_the_hire_date_cannot_undo_it(
        app, session, make_admin, make_rep, login_as):
    """The edit form's fingerprint covers the hire date: a save from a form drawn before
    another admin corrected it would put the old day back. Refused with 409, nothing written,
    and the form drawn again shows the day as it is now."""
    from tests.conftest import reload

    rep = make_rep(hired_on=date(2023, 5, 1))
    first, second = login_as(make_admin()), login_as(make_admin())
    stale = second.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    opened = first.get(f"/admin/users/{rep.id}").get_data(as_text=True)
    assert first.post(f"/admin/users/{rep.id}",
                      data=edit_data(rep, opened, hired_on="2021-09-01")).status_code == 303

    response = second.post(f"/admin/users/{rep.id}", headers={"Accept-Language": "zh-CN"},
                           data=edit_data(rep, stale, display_name="Renamed Rep"))
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "打开此表单后" in page and "本次未保存任何内容" in page
    assert hire_field_of(page) == ("2021-09-01", None)
    assert expected_of(page) != expected_of(stale)
    reload(session)
    kept = session.get(User, rep.id)
    assert kept.hired_on == date(2021, 9, 1) and kept.display_name == rep.display_name
    assert len(user_updates(session)) == 1

    assert second.post(f"/admin/users/{rep.id}", data=edit_data(
        rep, page, display_name="Renamed Rep")).status_code == 303
    reload(session)
    kept = session.get(User, rep.id)
    assert kept.hired_on == date(2021, 9, 1) and kept.display_name == "Renamed Rep"


@pytest.mark.parametrize("hired_on", ["2026-02-30", "abc", "9" * 10_000, "2026-13-01",
                                      "２０２６-02-30", "\x00", "2026-03-01T00:00",
                                      "<script>alert(1)</script>"])
def test_garbage_in_the_edited_hire_date_is_a_field_error(
        app, session, make_admin, make_rep, login_as, hired_on):
    """Never a 500: the page again with the field's message, in the page's language, and
    nothing saved (not even the status change the same form asked for)."""
    from tests.conftest import reload

    rep = make_rep(hired_on=date(2023, 5, 1))
    for response, message in hire_date_posts(login_as(make_admin()), rep, hired_on, (
            ("en", "Enter the date as year-month-day, for example 2026-12-31."),
            ("zh-CN", "请按 年-月-日 填写日期，例如 2026-12-31。"))):
        assert response.status_code == 422, response.status_code
        error = hire_field_of(response.get_data(as_text=True))[1]
        # A control character gets the message every field gives it.
        assert error == message if "\x00" not in hired_on else error
    reload(session)
    kept = session.get(User, rep.id)
    assert kept.hired_on == date(2023, 5, 1) and kept.status == "active"
    assert not user_updates(session)
