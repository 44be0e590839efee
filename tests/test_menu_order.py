"""Menus and pickers list people, branches, industries and accounts in pinyin order;
ownership types by their labels in the page's language."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bidhub.models import Account, Role
from tests.conftest import login

CHINESE = {"Accept-Language": "zh-CN"}
# Pinyin order; code point order would be 刘 周 张 李 王 陈 黄 and 上 北 广 总 成. A branch is
# placed by its Chinese name on both pages: Headquarters (总部) comes last in English too.
REPS = ["陈静", "黄磊", "李娜", "刘洋", "王芳", "张伟", "周杰"]
BRANCHES = [("BJ", "Beijing", "北京"), ("CD", "Chengdu", "成都"), ("GZ", "Guangzhou", "广州"),
            ("SH", "Shanghai", "上海"), ("HQ", "Headquarters", "总部")]
BRANCH_MENU = ["北京", "成都", "广州", "上海", "总部"]
INDUSTRIES = ["互联网", "能源", "物流", "制造业"]


@pytest.fixture
def department(session, make_branch, make_rep, make_user, make_account):
    branches = {}
    for code, name, name_zh in reversed(BRANCHES):
        branches[code] = make_branch(code, name)
        branches[code].name_zh = name_zh
    session.commit()
    reps = [make_rep(name=name, branch=branches[BRANCHES[index % len(BRANCHES)][0]])
            for index, name in enumerate(reversed(REPS))]
    for index, rep in enumerate(reps):
        make_account(owner=rep, branch=rep.branch, industry=INDUSTRIES[index % 4],
                     name=f"{rep.display_name}的客户")
    for name in ("赵总", "白总", "安总"):
        make_user(Role.EXECUTIVE, name=name)
    return reps


def shown(page: str, name: str) -> list[str]:
    """The options' texts of the <select name=`name`>, the empty choice left out."""
    body = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.DOTALL)
    return [text.strip() for value, text in re.findall(
        r'<option value="([^"]*)"[^>]*>([^<]*)</option>', body.group(1)) if value not in ("", "0")]


def test_menus_and_pickers_list_names_in_pinyin_order(app, session, department, make_admin,
                                                      make_manager, make_round):
    admin, manager = make_admin(), make_manager()
    client = app.test_client()
    login(client, admin)
    page = client.get("/admin/users/new", headers=CHINESE).get_data(as_text=True)
    assert shown(page, "branch_id") == BRANCH_MENU
    page = client.get("/admin/users/new").get_data(as_text=True)
    assert shown(page, "branch_id") == ["Beijing", "Chengdu", "Guangzhou", "Shanghai",
                                        "Headquarters"]

    login(client, manager)
    page = client.get("/manage/filings", headers=CHINESE).get_data(as_text=True)
    assert shown(page, "rep") == REPS and shown(page, "branch") == BRANCH_MENU
    page = client.get("/manage/accounts", headers=CHINESE).get_data(as_text=True)
    assert shown(page, "owner") == REPS
    assert re.findall(r"<option >([^<]*)</option>", page) == INDUSTRIES
    page = client.get("/manage/reviews", headers=CHINESE).get_data(as_text=True)
    assert shown(page, "rep") == REPS
    page = client.get("/sponsors", headers=CHINESE).get_data(as_text=True)
    assert [text.split("·")[0].strip() for text in shown(page, "sponsor")] == ["安总", "白总",
                                                                              "赵总"]
    page = client.get("/manage/transfer/reps", query_string={"q": "rep"},
                      headers=CHINESE).get_data(as_text=True)
    assert re.findall(r"<strong>([^<]*)</strong>", page) == REPS
    page = client.get("/manage/transfer/accounts", query_string={"q": "的客户"},
                      headers=CHINESE).get_data(as_text=True)
    assert re.findall(r"<strong>([^<]*)的客户</strong>", page) == REPS

    round_ = make_round(accounts=accounts_of(session, department))
    page = client.get(f"/manage/rounds/{round_.id}", headers=CHINESE).get_data(as_text=True)
    assert shown(page, "branch") == BRANCH_MENU
    assert re.findall(r"<option >([^<]*)</option>", page) == INDUSTRIES


def accounts_of(session, reps) -> list[Account]:
    return list(session.scalars(select(Account).where(
        Account.owner_id.in_([rep.id for rep in reps]))))


def test_the_reviewer_picker_lists_managers_in_pinyin_order(session, make_manager):
    from bidhub.web.review_panels import reviewer_candidates

    for name in ("周经理", "陈经理", "Amy Li", "李经理"):
        make_manager(name=name)
    assert [user.display_name for user in reviewer_candidates(session)] == [
        "Amy Li", "陈经理", "李经理", "周经理"]


# The ownership types by their labels: pinyin order on a Chinese page, alphabetical on an
# English one. By code they would read 政府机关 中外合资 上市公司 民营 国有.
OWNERSHIP_CODES = ["government", "joint_venture", "listed", "private", "state_owned"]
OWNERSHIP_MENU = {"zh": ["国有", "民营", "上市公司", "政府机关", "中外合资"],
                  "en": ["Government agency", "Listed company", "Private",
                         "Sino-foreign joint venture", "State-owned"]}


def test_ownership_menus_list_the_types_by_their_labels_in_the_pages_language(
        app, make_rep, make_manager, make_account, make_round):
    rep, manager = make_rep(), make_manager()
    accounts = [make_account(ownership_type=code) for code in reversed(OWNERSHIP_CODES)]
    round_ = make_round(accounts=accounts)
    client = app.test_client()
    for user, urls in ((manager, ["/manage/accounts", f"/manage/rounds/{round_.id}"]),
                       (rep, [f"/rounds/{round_.id}"])):
        login(client, user)
        for url in urls:
            for language, headers in (("zh", CHINESE), ("en", {"Accept-Language": "en"})):
                page = client.get(url, headers=headers).get_data(as_text=True)
                assert shown(page, "ownership") == OWNERSHIP_MENU[language], (url, language)
