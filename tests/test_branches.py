"""Branches: the service, its admin pages and CLI, and finding a branch by what a file says."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import render_template_string
from sqlalchemy import func, select, update

from bidhub.domain.errors import InvalidRequest, NotFound
from bidhub.domain.imports import COLUMNS, BadValue, ImportKind
from bidhub.domain.text import Text
from bidhub.models import AuditEvent, Branch, Role, Round, User
from bidhub.services.branches import (
    create_branch,
    deactivate_branch,
    find_branch,
    match_branch_in_path,
    reactivate_branch,
    rename_branch,
)
from bidhub.services.limits import MAX_BRANCH_CODE_LENGTH, MAX_BRANCH_NAME_LENGTH
from bidhub.services.rounds import create_round
from bidhub.services.users import create_user, update_user
from tests.conftest import login, reload


@pytest.fixture
def shanghai(session, clock):
    return create_branch(session, None, "SH", "Shanghai", "上海", clock())


@pytest.mark.parametrize("value", ["SH", "sh", " Sh ", "Shanghai", "SHANGHAI ", "上海", " 上海"])
def test_find_branch_matches_code_name_or_chinese_name(session, clock, shanghai, value):
    create_branch(session, None, "BJ", "Beijing", "北京", clock())
    assert find_branch(session, value).id == shanghai.id


@pytest.mark.parametrize("value", ["上海分公司", "上海 分公司", "上海分部", "Shanghai Branch",
                                   "SHANGHAI BRANCH OFFICE", "ＳＨ", "Ｓｈａｎｇｈａｉ", "上 海"])
def test_find_branch_matches_a_branch_as_exports_write_it(session, clock, shanghai, value):
    """Exports write 上海分公司 where bidhub's Chinese name is 上海, in either width."""
    create_branch(session, None, "BJ", "Beijing", "北京", clock())
    assert find_branch(session, value).id == shanghai.id


def test_a_branch_named_with_its_suffix_is_found_without_it(session, clock):
    branch = create_branch(session, None, "GZ", "Guangzhou Branch", "广州分公司", clock())
    assert find_branch(session, "广州").id == find_branch(session, "Guangzhou").id == branch.id


def test_a_suffix_makes_no_guess_between_two_branches(session, clock):
    session.add_all([Branch(code="N1", name="North", name_zh="华北"),
                     Branch(code="N2", name="North Branch", name_zh="华北分部")])
    session.commit()
    assert find_branch(session, "华北分公司") is None
    assert find_branch(session, "华北").code == "N1"  # as written, before any suffix is dropped


@pytest.mark.parametrize("value", ["", "  ", None, "Shang", "上", "BJ", "分公司", "Branch",
                                   "北京分公司"])
def test_find_branch_finds_nothing_for_other_values(session, shanghai, value):
    assert find_branch(session, value) is None


@pytest.mark.parametrize("value", ["华北大区/上海分公司/KA一部", "销售中心 > 上海分公司", "上海分公司｜大客户部",
                                   "KA中心\\Shanghai Branch", "SH／KA二组", "上海分公司—KA部"])
def test_a_department_path_names_its_branch_at_one_level(session, clock, shanghai, value):
    """HR and CRM exports give a rep's department as a path: one of its levels is the branch."""
    create_branch(session, None, "BJ", "Beijing", "北京", clock())
    branches = session.scalars(select(Branch)).all()
    assert find_branch(session, value) is None  # a form or the command line names the branch
    assert match_branch_in_path(branches, value).id == shanghai.id


@pytest.mark.parametrize("value", ["上海分公司/北京分公司", "华北大区/KA一部", "上海", "SH-KA", "",
                                   None, "/", "上海分公司/上海分公司/BJ"])
def test_a_path_naming_no_branch_or_two_names_none(session, clock, shanghai, value):
    create_branch(session, None, "BJ", "Beijing", "北京", clock())
    assert match_branch_in_path(session.scalars(select(Branch)).all(), value) is None


def test_find_branch_prefers_the_code_and_refuses_to_guess_between_two(session, clock):
    # Older data may name two branches alike; the service keeps new ones apart.
    session.add_all([Branch(code="NORTH", name="Beijing"), Branch(code="N2", name="north"),
                     Branch(code="A", name="Same"), Branch(code="B", name="same")])
    session.commit()
    assert find_branch(session, "north").code == "NORTH"
    assert find_branch(session, "same") is None


def test_branch_name_filter_follows_the_page_language(app, session, shanghai):
    plain = Branch(code="GZ", name="Guangzhou")
    for locale, expected in (("zh_CN", "上海|Guangzhou"), ("en", "Shanghai|Guangzhou")):
        with app.test_request_context(headers={"Accept-Language": locale.replace("_", "-")}):
            from flask import session as web_session

            web_session["locale"] = locale
            assert render_template_string("{{ a|branch_name }}|{{ b|branch_name }}",
                                          a=shanghai, b=plain) == expected


def test_a_branchs_page_is_titled_with_its_name(app, session, shanghai, make_admin):
    """The browser tab reads 上海, as the page's heading does, not the code SH."""
    client = app.test_client()
    login(client, make_admin())
    page = client.get(f"/admin/branches/{shanghai.id}",
                      headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert re.search(r"<title>上海 · bidhub</title>", page)


def test_create_branch_is_audited(session, clock):
    branch = create_branch(session, None, " HZ ", " Hangzhou ", " 杭州 ", clock())
    assert (branch.code, branch.name, branch.name_zh, branch.is_active) == (
        "HZ", "Hangzhou", "杭州", True)
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "branch.created")).one()
    assert event.target == f"branch:{branch.id}"
    assert event.after == {"code": "HZ", "name": "Hangzhou", "name_zh": "杭州", "is_active": True}


def test_a_code_or_name_another_branch_answers_to_is_refused(session, shanghai, clock):
    for code, name, name_zh, field in (("sh", "Other", None, "code"),
                                       ("X1", "shanghai", None, "name"),
                                       ("X2", "Other", "上海", "name_zh"),
                                       ("上海", "Other", None, "code"),
                                       ("X3", "sh", None, "name")):
        with pytest.raises(InvalidRequest) as refused:
            create_branch(session, None, code, name, name_zh, clock())
        assert refused.value.field == field
    assert session.scalar(select(Branch.id).where(Branch.code != "SH")) is None


def audit_actions(session) -> list[str]:
    """The audited actions so far, leaving out the rules the test app adopts at start."""
    reload(session)
    return list(session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.not_like("rules.%")).order_by(AuditEvent.id)))


def test_rename_keeps_the_code_and_is_audited(session, shanghai, make_admin, clock):
    admin = make_admin()
    rename_branch(session, admin, shanghai.id, "Shanghai East", "上海东", clock())
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "branch.renamed")).one()
    assert (event.actor_id, event.before["name"], event.after["name"], event.after["name_zh"]) == (
        admin.id, "Shanghai", "Shanghai East", "上海东")
    assert shanghai.code == "SH"
    rename_branch(session, admin, shanghai.id, "Shanghai East", "上海东", clock())
    assert audit_actions(session).count("branch.renamed") == 1  # nothing changed, nothing audited
    rename_branch(session, admin, shanghai.id, "Shanghai East", "", clock())
    assert shanghai.name_zh is None


@pytest.mark.parametrize(("code", "name", "name_zh", "field"), [
    ("", "Hangzhou", None, "code"), ("  ", "Hangzhou", None, "code"),
    ("H Z", "Hangzhou", None, "code"), ("杭州", "Hangzhou", None, "code"),
    ("HZ;drop", "Hangzhou", None, "code"), ("H" * (MAX_BRANCH_CODE_LENGTH + 1), "x", None, "code"),
    ("HZ", "", None, "name"), ("HZ", "   ", None, "name"),
    ("HZ", "H" * (MAX_BRANCH_NAME_LENGTH + 1), None, "name"),
    ("HZ", "Hang\x00zhou", None, "name"), ("HZ", "Hangzhou", "杭\x07州", "name_zh"),
    ("HZ", "Hangzhou", "州" * (MAX_BRANCH_NAME_LENGTH + 1), "name_zh"),
])
def test_bad_codes_and_names_are_refused_with_their_field(session, clock, code, name, name_zh,
                                                          field):
    with pytest.raises(InvalidRequest) as refused:
        create_branch(session, None, code, name, name_zh, clock())
    assert refused.value.field == field
    assert isinstance(refused.value.message, Text)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Branch)) == 0
    assert audit_actions(session) == []


def test_a_code_typed_in_lower_case_is_stored_in_capitals(session, clock):
    assert create_branch(session, None, " sh-2_b ", "Shanghai 2", None, clock()).code == "SH-2_B"


def test_the_longest_code_and_names_are_accepted(session, clock):
    branch = create_branch(session, None, "A-_9" + "x" * (MAX_BRANCH_CODE_LENGTH - 4),
                           "n" * MAX_BRANCH_NAME_LENGTH, "名" * MAX_BRANCH_NAME_LENGTH, clock())
    assert len(branch.code) == MAX_BRANCH_CODE_LENGTH


def test_a_code_is_as_long_on_the_form_as_in_a_branches_file(session, clock):
    """The branches import and the new-branch form take codes of the same length: a branch
    set up either way could be set up the other way too."""
    read_code = next(column.parse for column in COLUMNS[ImportKind.BRANCHES]
                     if column.name == "code")
    longest = "B" * MAX_BRANCH_CODE_LENGTH
    assert read_code(longest) == longest
    assert create_branch(session, None, longest, "Longest", None, clock()).code == longest
    with pytest.raises(BadValue):
        read_code(longest + "B")
    with pytest.raises(InvalidRequest):
        create_branch(session, None, longest + "B", "Too long", None, clock())


def test_renaming_to_another_branchs_name_is_refused(session, shanghai, clock):
    beijing = create_branch(session, None, "BJ", "Beijing", "北京", clock())
    for name, name_zh, field in (("Shanghai", None, "name"), ("SH", None, "name"),
                                 ("Peking", "上海", "name_zh")):
        with pytest.raises(InvalidRequest) as refused:
            rename_branch(session, None, beijing.id, name, name_zh, clock())
        assert refused.value.field == field
    reload(session)
    assert (beijing.name, beijing.name_zh) == ("Beijing", "北京")
    # Its own names are not "another branch's".
    rename_branch(session, None, beijing.id, "beijing", "北京", clock())


def test_unknown_branch_is_not_found(session, clock):
    with pytest.raises(NotFound):
        rename_branch(session, None, 999, "x", None, clock())
    with pytest.raises(NotFound):
        deactivate_branch(session, None, 999, clock())


def test_deactivated_branch_keeps_its_reps_and_accounts_but_takes_no_new_ones(
        session, clock, make_branch, make_rep, make_account, make_manager, make_admin):
    beijing, shanghai = make_branch(), make_branch("SH", "Shanghai")
    admin, manager = make_admin(), make_manager()
    rep = make_rep(branch=beijing)
    account = make_account(owner=rep, branch=beijing)
    deactivate_branch(session, admin, beijing.id, clock())
    deactivate_branch(session, admin, beijing.id, clock())  # a repeated click does nothing
    assert audit_actions(session) == ["branch.deactivated"]
    reload(session)
    assert (rep.branch_id, account.branch_id, account.owner_id) == (beijing.id, beijing.id, rep.id)

    with pytest.raises(InvalidRequest) as refused:
        create_user(session, admin, username="newrep", display_name="New Rep",
                    password="a long password 123", role=Role.REP, branch_id=beijing.id,
                    now=clock())
    assert refused.value.field == "branch_id" and "deactivated" in refused.value.message
    other = make_rep(branch=shanghai)
    with pytest.raises(InvalidRequest):
        update_user(session, admin, other.id, display_name="Moved", role=Role.REP,
                    branch_id=beijing.id, status="active", is_active=True, now=clock())
    with pytest.raises(InvalidRequest) as refused:
        create_round(session, manager, title="Beijing spring", branch_id=beijing.id,
                     opens_at=clock(), closes_at=clock() + timedelta(days=7), now=clock())
    assert refused.value.field == "branch_id"
    session.rollback()
    assert session.scalar(select(func.count()).select_from(User).where(
        User.username == "newrep")) == 0
    assert session.scalar(select(func.count()).select_from(Round)) == 0
    assert session.get(User, other.id).branch_id == shanghai.id

    # Its own rep can still be edited without leaving it.
    update_user(session, admin, rep.id, display_name="Still Here", role=Role.REP,
                branch_id=beijing.id, status="active", is_active=True, now=clock())
    reactivate_branch(session, admin, beijing.id, clock())
    assert audit_actions(session)[-2:] == ["user.updated", "branch.reactivated"]
    create_round(session, manager, title="Beijing spring", branch_id=beijing.id,
                 opens_at=clock(), closes_at=clock() + timedelta(days=7), now=clock())
    create_user(session, admin, username="newrep", display_name="New Rep",
                password="a long password 123", role=Role.REP, branch_id=beijing.id, now=clock())


# The admin pages.

@pytest.fixture
def admin_client(client, make_admin):
    login(client, make_admin())
    return client


def test_branches_page_lists_counts(admin_client, session, make_branch, make_rep, make_account,
                                    make_manager):
    beijing, shanghai = make_branch(), make_branch("SH", "Shanghai")
    rep = make_rep(branch=beijing)
    make_rep(branch=beijing)
    make_manager()
    for _ in range(3):
        make_account(owner=rep, branch=beijing)
    make_account(branch=shanghai)
    page = admin_client.get("/admin/branches").get_data(as_text=True)
    rows = {cells[0]: cells[1:] for cells in table_rows(page)}
    assert rows["BJ"] == ["Beijing", "—", "2", "3", "yes"]
    assert rows["SH"] == ["Shanghai", "—", "0", "1", "yes"]
    assert 'href="/admin/branches"' in admin_client.get("/admin/users").get_data(as_text=True)


def table_rows(html: str) -> list[list[str]]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>",
                                                                           row, re.S)]
            for row in re.findall(r"<tr.*?</tr>", body, re.S)]


def test_an_admin_creates_a_branch_on_the_page(admin_client, session):
    assert "No branches yet" in admin_client.get("/admin/branches").get_data(as_text=True)
    assert admin_client.get("/admin/branches/new").status_code == 200
    response = admin_client.post("/admin/branches/new", data={
        "code": "GZ", "name": "Guangzhou", "name_zh": "广州"})
    assert response.status_code == 303 and response.location.endswith("/admin/branches")
    branch = session.scalars(select(Branch)).one()
    assert (branch.code, branch.name, branch.name_zh) == ("GZ", "Guangzhou", "广州")
    assert audit_actions(session) == ["branch.created"]
    assert "Branch GZ created." in admin_client.get("/admin/branches").get_data(as_text=True)


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"code": "", "name": "Guangzhou"}, "code", ""),
    ({"code": "G Z", "name": "Guangzhou"}, "code", "A code uses only letters"),
    ({"code": "GZ" * 20, "name": "Guangzhou"}, "code", ""),
    ({"code": "GZ", "name": ""}, "name", ""),
    ({"code": "GZ", "name": "x" * 5000}, "name", ""),
    ({"code": "GZ", "name": "Guang\x00zhou"}, "name", "Control characters"),
    ({"code": "bj", "name": "Guangzhou"}, "code", "already known as"),
    ({"code": "GZ", "name": "BEIJING"}, "name", "already known as"),
    ({"code": "GZ", "name": "Guangzhou", "name_zh": "北京"}, "name_zh", "already known as"),
    ({"code": "\u202e", "name": "😀"}, "code", ""),
    ({}, "code", ""),
])
def test_garbage_on_the_create_form_is_a_422_with_the_fields_message_and_writes_nothing(
        admin_client, session, make_branch, data, field, message):
    make_branch()  # BJ Beijing, no Chinese name
    session.execute(update(Branch).values(name_zh="北京"))
    session.commit()
    before = audit_actions(session)
    response = admin_client.post("/admin/branches/new", data=data)
    assert response.status_code == 422
    assert field_errors(response.get_data(as_text=True), field), response.get_data(as_text=True)
    if message:
        assert message in " ".join(field_errors(response.get_data(as_text=True), field))
    assert session.scalar(select(func.count()).select_from(Branch)) == 1
    assert audit_actions(session) == before


def field_errors(html: str, field: str) -> list[str]:
    """The error messages shown under the form field named `field`."""
    blocks = re.findall(r'<div class="field has-error">(.*?)</div>', html, re.S)
    return [error for block in blocks if f'name="{field}"' in block
            for error in re.findall(r'<p class="error">(.*?)</p>', block, re.S)]


def test_an_admin_renames_a_branch_and_garbage_changes_nothing(admin_client, session,
                                                              make_branch):
    branch = make_branch("SH", "Shanghai")
    page = admin_client.get(f"/admin/branches/{branch.id}").get_data(as_text=True)
    assert 'value="Shanghai"' in page and "Deactivate" in page
    response = admin_client.post(f"/admin/branches/{branch.id}",
                                 data={"name": "", "name_zh": "上海"})
    assert response.status_code == 422 and field_errors(response.get_data(as_text=True), "name")
    response = admin_client.post(f"/admin/branches/{branch.id}",
                                 data={"name": "Shanghai", "name_zh": "上\x00海"})
    assert response.status_code == 422 and field_errors(response.get_data(as_text=True),
                                                        "name_zh")
    reload(session)
    assert (branch.name, branch.name_zh) == ("Shanghai", None) and audit_actions(session) == []
    response = admin_client.post(f"/admin/branches/{branch.id}",
                                 data={"name": "Shanghai", "name_zh": "上海", "code": "XX"})
    assert response.status_code == 303
    reload(session)
    assert (branch.code, branch.name_zh) == ("SH", "上海")
    assert audit_actions(session) == ["branch.renamed"]
    assert admin_client.get("/admin/branches/99999").status_code == 404
    assert admin_client.post("/admin/branches/99999/deactivate",
                             data={"confirm": "y"}).status_code == 404


def test_deactivating_needs_the_confirmation_box(admin_client, session, make_branch, make_rep):
    branch = make_branch()
    make_rep(branch=branch)
    response = admin_client.post(f"/admin/branches/{branch.id}/deactivate", data={})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert field_errors(page, "confirm") == ["Tick the box to confirm."]
    assert "keeps its 1 reps, 0 accounts" in page
    reload(session)
    assert branch.is_active and audit_actions(session) == []

    response = admin_client.post(f"/admin/branches/{branch.id}/deactivate", data={"confirm": "y"})
    assert response.status_code == 303
    reload(session)
    assert not branch.is_active and audit_actions(session) == ["branch.deactivated"]
    page = admin_client.get(f"/admin/branches/{branch.id}").get_data(as_text=True)
    assert "Reactivate this branch" in page
    # The new-user form offers only branches that take new reps.
    assert f'value="{branch.id}"' not in admin_client.get("/admin/users/new").get_data(
        as_text=True)
    # A page loaded before someone else deactivated it cannot undo that by reactivating.
    assert admin_client.post(f"/admin/branches/{branch.id}/deactivate",
                             data={"confirm": "y"}).status_code == 303
    reload(session)
    assert not branch.is_active and audit_actions(session) == ["branch.deactivated"]
    assert admin_client.post(f"/admin/branches/{branch.id}/reactivate",
                             data={"confirm": "y"}).status_code == 303
    reload(session)
    assert branch.is_active and audit_actions(session)[-1] == "branch.reactivated"


def test_a_rep_or_manager_cannot_manage_branches(client, make_rep, make_manager, make_branch,
                                                 session):
    branch = make_branch()
    for user in (make_rep(), make_manager()):
        login(client, user)
        assert client.get("/admin/branches").status_code == 403
        assert client.post("/admin/branches/new", data={"code": "X", "name": "X"}).status_code == 403
        assert client.post(f"/admin/branches/{branch.id}/deactivate",
                           data={"confirm": "y"}).status_code == 403
    assert session.scalar(select(func.count()).select_from(Branch)) == 1


# The command line.

def test_cli_adds_and_lists_branches(app, session, make_admin):
    make_admin(username="boss")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["branches", "list"])
    assert result.exit_code == 0 and "No branches yet" in result.output
    result = runner.invoke(args=["branches", "add", "SH", "Shanghai", "--name-zh", "上海",
                                 "--by", "boss"])
    assert result.exit_code == 0, result.output
    assert "Created branch SH (Shanghai / 上海)." in result.output
    result = runner.invoke(args=["branches", "add", "sh", "Other", "--by", "boss"])
    assert result.exit_code == 1 and "CODE: The branch SH is already known as 'SH'" in result.output
    result = runner.invoke(args=["branches", "add", "BJ", "", "--by", "boss"])
    assert result.exit_code == 1 and "NAME: Give the branch a name." in result.output
    result = runner.invoke(args=["branches", "add", "BJ", "Beijing", "--by", "nobody"])
    assert result.exit_code == 2 and "not an active admin" in result.output
    result = runner.invoke(args=["branches", "add", "BJ", "Beijing"])
    assert result.exit_code == 2
    result = runner.invoke(args=["branches", "list"])
    assert result.exit_code == 0
    assert result.output.splitlines() == ["code\tname\tname_zh\treps\taccounts\tactive",
                                          "SH\tShanghai\t上海\t0\t0\tyes"]
    assert audit_actions(session) == ["branch.created"]
    # create-user finds the branch by its Chinese name too.
    result = runner.invoke(args=["create-user", "--username", "rep9", "--name", "Rep Nine",
                                 "--role", "rep", "--branch", "上海",
                                 "--password", "a long password 123"])
    assert result.exit_code == 0, result.output
    reload(session)
    assert session.scalars(select(User).where(User.username == "rep9")).one().branch.code == "SH"


def test_branch_choices_read_in_the_pages_language(admin_client, session, shanghai):
    for language, shown in (("zh-CN", "上海"), ("en", "Shanghai")):
        page = admin_client.get("/admin/users/new", headers={"Accept-Language": language})
        assert f'<option value="{shanghai.id}">{shown}</option>' in page.get_data(as_text=True)
