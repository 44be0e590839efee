"""Menus and pickers list people, branches, industries and accounts in pinyin order;
ownership types by their labels in the page's language."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bidhub.domain.collation import name_key, name_sort_bytes
from bidhub.models import Account, Role
from bidhub.services.transfer_preview import search_accounts, search_reps
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
    page = client.get("/manage/transfer/reps", query_string={"rep_q": "rep"},
                      headers=CHINESE).get_data(as_text=True)
    assert re.findall(r"<strong>([^<]*)</strong>", page) == REPS
    page = client.get("/manage/transfer/accounts", query_string={"account_q": "的客户"},
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


# More matches than a picker ever read before it sorted (50): the best must still come first.
# GB2312's first level-1 characters, in pinyin order (啊 阿 埃 挨 ...), make the names distinct.
MANY = [bytes([0xB0, 0xA1 + index]).decode("gbk") for index in range(57)]


def best_first(names: list[str], typed: str, limit: int = 10) -> list[str]:
    """What a picker should show: what was typed, then what begins with it, then what
    contains it; each group in pinyin order (collation.name_key is the reference)."""
    def place(name: str) -> tuple:
        return (0 if name == typed else 1 if name.startswith(typed) else 2), name_key(name)

    return sorted(names, key=place)[:limit]


def test_the_account_picker_takes_the_best_matches_of_many(app, session, make_manager,
                                                          make_account):
    """57 accounts that only contain 科技 and come first by code point (张 U+5F20 < 科 U+79D1)
    do not crowd out the account named 科技 and those that begin with it, nor 阿里科技, first
    of those that contain it in pinyin order but last by code point."""
    names = ["阿里科技", "科技东方", "科技", "科技北方"] + [f"张{c}科技" for c in MANY]
    for name in names:
        make_account(name=name)
    make_account(name="无关公司")
    client = app.test_client()
    login(client, make_manager())
    page = client.get("/manage/transfer/accounts", query_string={"account_q": "科技"},
                      headers=CHINESE).get_data(as_text=True)
    shown_names = re.findall(r"<strong>([^<]*)</strong>", page)
    assert shown_names == best_first(names, "科技")
    assert shown_names[:5] == ["科技", "科技北方", "科技东方", "阿里科技", f"张{MANY[0]}科技"]


def test_the_rep_picker_takes_the_best_matches_of_many(app, session, make_manager, make_rep):
    names = ["阿王芳", "王芳林", "王芳", "王芳华"] + [f"张{c}王芳" for c in MANY]
    for name in names:
        make_rep(name=name)
    make_rep(name="李娜")
    client = app.test_client()
    login(client, make_manager())
    page = client.get("/manage/transfer/reps", query_string={"rep_q": "王芳"},
                      headers=CHINESE).get_data(as_text=True)
    shown_names = re.findall(r"<strong>([^<]*)</strong>", page)
    assert shown_names == best_first(names, "王芳")
    assert shown_names[:5] == ["王芳", "王芳华", "王芳林", "阿王芳", f"张{MANY[0]}王芳"]


def test_a_typed_customer_number_or_username_comes_first_in_any_case(
        app, session, make_manager, make_rep, make_account):
    """What was typed, case aside, is the best match, ahead of names that begin with it."""
    wanted = make_account(name="Zeta Logistics")
    for name in ("ka-Alpha", "KA-Beta"):
        make_account(name=name)
    shown_accounts = search_accounts(session, wanted.external_id.lower())
    assert shown_accounts[0].id == wanted.id
    rep = make_rep(username="wang", name="汪洋")
    make_rep(username="wangfang", name="阿芳")
    assert [found.id for found in search_reps(session, "WANG")][:1] == [rep.id]


def test_a_renamed_rep_or_account_moves_to_its_new_place(session, clock, make_admin, make_rep,
                                                        make_account):
    from bidhub.services.users import update_user

    zhang, li = make_rep(name="张伟"), make_rep(name="李伟")
    assert [rep.id for rep in search_reps(session, "伟")] == [li.id, zhang.id]
    update_user(session, make_admin(), zhang.id, display_name="陈伟", role=Role.REP,
                branch_id=zhang.branch_id, status="active", is_active=True, now=clock())
    assert [rep.id for rep in search_reps(session, "伟")] == [zhang.id, li.id]
    first, second = make_account(name="北方物流"), make_account(name="东方物流")
    assert [found.id for found in search_accounts(session, "物流")] == [first.id, second.id]
    session.get(Account, first.id).name = "西方物流"
    session.commit()
    assert [found.id for found in search_accounts(session, "物流")] == [second.id, first.id]


@settings(max_examples=500, deadline=None)
@given(st.text(st.one_of(st.characters(), st.sampled_from("陈李王张婷昊鑫璐琪張䶮aAáÁßﬁ 1-")),
               max_size=6),
       st.text(st.one_of(st.characters(), st.sampled_from("陈李王张婷昊鑫璐琪張䶮aAáÁßﬁ 1-")),
               max_size=6))
def test_the_sort_key_bytes_order_names_as_the_collation_does(first, second):
    """The bytes the database orders by give the order (and the ties) of name_key."""
    assert (name_sort_bytes(first) < name_sort_bytes(second)) == (
        name_key(first) < name_key(second))
    assert (name_sort_bytes(first) == name_sort_bytes(second)) == (
        name_key(first) == name_key(second))


@pytest.mark.parametrize(("path", "box"), [("/manage/transfer/accounts", "account_q"),
                                           ("/manage/transfer/reps", "rep_q")])
def test_a_picker_box_of_spaces_is_an_empty_box(app, session, make_manager, make_account, path,
                                                box):
    make_account(name="北京空格测试有限公司")
    client = app.test_client()
    login(client, make_manager())
    for typed in (" ", "\u3000 \t"):
        page = client.get(path, query_string={box: typed}, headers=CHINESE)
        assert page.status_code == 200
        assert "匹配" not in page.get_data(as_text=True)
